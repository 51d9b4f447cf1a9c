"""Run the service under uvicorn with :class:`~wavemae_service.settings.Settings`.

``wavemae serve`` and ``python -m wavemae_service`` both end here.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .settings import Settings, get_settings

__all__ = ["check_library_host", "serve"]

log = logging.getLogger("wavemae_service")


class _DrainingServer:
    """uvicorn.Server whose SIGTERM first turns /readyz to 503 and keeps serving for
    ``delay_s`` (so load balancers stop sending and requests already on the wire are read),
    then shuts down gracefully. A second signal, or SIGINT, stops at once."""

    @staticmethod
    def build(config: Any, app: Any, delay_s: float) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: FrameType | None) -> None:
                state = app.state
                if sig == signal.SIGTERM and delay_s > 0 and not state.draining:
                    state.draining = True
                    log.info("SIGTERM: draining for %.1f s before shutdown", delay_s)
                    timer = threading.Timer(delay_s, super().handle_exit, args=(sig, frame))
                    timer.daemon = True
                    timer.start()
                    return
                super().handle_exit(sig, frame)

        return Server(config)


def check_library_host(library_url: str) -> None:
    """Refuse to start when a PostgreSQL library URL names a host that does not resolve.

    A database that is down is waited for (library calls answer 503 until it is back), but a
    name that does not exist is a configuration error, e.g. compose started without the
    ``postgres`` profile. Unix-socket URLs and SQLite paths are not checked.

    Raises:
        SystemExit: with one line naming the host and the variable to fix.
    """
    if not library_url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return
    parts = urlsplit(library_url)
    hosts = [parts.hostname] if parts.hostname else []
    hosts += [h for v in parse_qs(parts.query).get("host", []) for h in v.split(",")]
    for host in hosts:
        if not host or host.startswith("/"):  # a Unix socket folder
            continue
        try:
            socket.getaddrinfo(host, parts.port or 5432, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise SystemExit(
                f"wavemae serve: the library database host {host!r} in WAVEMAE_LIBRARY_URL does "
                f"not resolve ({exc.strerror or exc}); start the database (compose: "
                "--profile postgres) or fix the URL"
            ) from None


def serve(settings: Settings | None = None) -> None:
    """Serve until SIGINT/SIGTERM; on SIGTERM in-flight requests finish (up to
    ``drain_timeout_s``) before the process exits. Start-up failures exit non-zero."""
    import uvicorn

    from .app import create_app

    settings = settings or get_settings()
    check_library_host(settings.library_url)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=settings.drain_timeout_s,
        access_log=False,  # per-request logging costs throughput; /metrics counts requests
        lifespan="on",
    )
    server = _DrainingServer.build(config, app, settings.shutdown_delay_s)
    server.run()
    if not server.started:  # lifespan start-up failed: the reason was logged above
        raise SystemExit(3)

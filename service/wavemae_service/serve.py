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

from .connections import ConnectionLimits, fit_to_file_limit, guarded_protocol
from .settings import Settings, get_settings

__all__ = ["check_library_host", "serve"]


def _operator_errors() -> tuple[type[BaseException], ...]:
    from wavemae.manifest import ArtifactError

    from .library.base import LibraryError
    from .runtime import ModelLoadError

    return (ArtifactError, LibraryError, ModelLoadError)


class _OneLineStartupErrors:
    """ASGI wrapper: when start-up fails for a reason the operator can fix (artifact, model,
    library), uvicorn logs one line naming it instead of a traceback. Other failures (bugs)
    keep their traceback."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[dict[str, Any]] = []

        async def hold_failure(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.failed":
                held.append(message)  # sent below, once the exception is known
                return
            await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except BaseException as exc:
            if held:
                text = held[0].get("message", "")
                if isinstance(exc, _operator_errors()):
                    text = f"start-up failed: {exc}"
                await send({"type": "lifespan.startup.failed", "message": text})
            raise


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


def _reasons(exc: Any) -> str:
    """A settings ValidationError as one line naming each environment variable."""
    reasons = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        names = [f"WAVEMAE_{str(part).upper()}" for part in error["loc"]]
        reasons.append(f"{'.'.join(names)}: {message}" if names else message)
    return "; ".join(reasons)


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

    if settings is None:
        from pydantic import ValidationError

        try:
            settings = get_settings()
        except ValidationError as exc:
            raise SystemExit(f"wavemae serve: invalid settings: {_reasons(exc)}") from None
    check_library_host(settings.library_url)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    max_connections = fit_to_file_limit(settings.max_connections)
    limits = ConnectionLimits(settings.header_timeout_s, settings.max_header_bytes, max_connections)
    config = uvicorn.Config(
        _OneLineStartupErrors(app),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=settings.drain_timeout_s,
        access_log=False,  # per-request logging costs throughput; /metrics counts requests
        lifespan="on",
        http=guarded_protocol(limits),
        timeout_keep_alive=settings.keep_alive_timeout_s,  # type: ignore[arg-type]
        # No limit_concurrency: at its limit uvicorn answers 503 to every client, those already
        # connected included; the protocol's cap turns away only the connections beyond it.
    )
    server = _DrainingServer.build(config, app, settings.shutdown_delay_s)
    server.run()
    if not server.started:  # lifespan start-up failed: the reason was logged above
        raise SystemExit(3)

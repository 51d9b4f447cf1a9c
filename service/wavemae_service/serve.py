"""Run the service under uvicorn with :class:`~wavemae_service.settings.Settings`.

``wavemae serve`` and ``python -m wavemae_service`` both end here.
"""

from __future__ import annotations

import logging

from .settings import Settings, get_settings

__all__ = ["serve"]


def serve(settings: Settings | None = None) -> None:
    """Serve until SIGINT/SIGTERM; on SIGTERM in-flight requests finish (up to
    ``drain_timeout_s``) before the process exits. Start-up failures exit non-zero."""
    import uvicorn

    from .app import create_app

    settings = settings or get_settings()
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
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # lifespan start-up failed: the reason was logged above
        raise SystemExit(3)

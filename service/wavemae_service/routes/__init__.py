"""HTTP routes, one router per endpoint group: each handler validates, makes ONE call into the
inference layer or the library service, and shapes the answer."""

from . import embed, health, library, reconstruct, similar

ROUTERS = (embed.router, reconstruct.router, similar.router, library.router, health.router)

__all__ = ["ROUTERS"]

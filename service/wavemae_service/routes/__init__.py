"""HTTP routes, one router per endpoint group. Routes validate, call the pipeline, shape answers."""

from . import embed, health, library, reconstruct, similar

ROUTERS = (embed.router, reconstruct.router, similar.router, library.router, health.router)

__all__ = ["ROUTERS"]

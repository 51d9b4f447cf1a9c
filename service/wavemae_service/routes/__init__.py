"""HTTP routes, one router per endpoint group: each handler validates, makes ONE call into the
inference layer or the library service, and shapes the answer."""

from . import analysis, cube, embed, health, library, parse, reconstruct, similar

# analysis before library: its /library/clusters and /library/map must win over /library/{id}
ROUTERS = (
    embed.router,
    cube.router,
    reconstruct.router,
    parse.router,
    similar.router,
    analysis.router,
    library.router,
    health.router,
)

__all__ = ["ROUTERS"]

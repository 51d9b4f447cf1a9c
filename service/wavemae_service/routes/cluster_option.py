"""The ``include_cluster`` option of /embed and /similar: where each query falls in the
library's stored clustering (the assignment itself is :meth:`AnalysisService.assign`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import Request

from ..errors import InvalidInput
from .analysis import get_analysis
from .common import query_flag, wants_npy

__all__ = ["cluster_answer", "requested_clustering"]


async def requested_clustering(request: Request, body_flag: bool) -> dict[str, Any] | None:
    """The stored clustering to assign queries to, when the request asks for it (the JSON
    field ``body_flag`` or the query parameter ``include_cluster``); None when it does not.
    Called before any inference, so a request that cannot be answered costs none.

    Raises:
        ClustersNotComputed: asked, but none is stored for the served model version (409).
        InvalidInput: asked together with a .npy answer (it has no room for labels), or a
            non-boolean query parameter.
    """
    if not (query_flag(request, "include_cluster") or body_flag):
        return None
    if wants_npy(request):
        raise InvalidInput(
            "include_cluster needs a JSON answer; drop 'Accept: application/x-npy'",
            field="include_cluster",
        )
    return await get_analysis(request).current_clustering()


async def cluster_answer(
    request: Request, embeddings: np.ndarray, clustering: dict[str, Any]
) -> dict[str, Any]:
    """The answer's ``clusters`` field for ``(Q, latent_dim)`` query embeddings."""
    assigned = await get_analysis(request).assign(embeddings, clustering)
    return assigned.public()

"""Operations: /healthz (alive), /readyz (ready to serve), /model, /metrics."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse

from ..auth import require_read
from ..errors import NotReady
from ..metrics import CONTENT_TYPE_LATEST
from ..schemas import ModelInfo
from .common import ERROR_RESPONSES, get_pipeline, json_response

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> Response:
    """200 while the process runs (does not check the model)."""
    return json_response({"status": "ok"})


@router.get("/readyz", responses={503: ERROR_RESPONSES[503]}, summary="Readiness")
async def readyz(request: Request) -> Response:
    """200 once the model is loaded and warmed up and while the batch loops are healthy."""
    pipeline = get_pipeline(request)
    if request.app.state.draining:
        raise NotReady("the server is shutting down")
    if not pipeline.healthy:
        raise NotReady("the inference loop is stalled or stopped")
    return json_response(
        {
            "status": "ready",
            "model": pipeline.model_id,
            "library": {
                "model_version": None if pipeline.store is None else pipeline.store.model_version,
                "reembedding": pipeline.reembedding,
            },
            "batchers": {
                "embed": pipeline.embedder.health(),
                "reconstruct": pipeline.reconstructor.health(),
            },
        }
    )


@router.get(
    "/model",
    response_model=ModelInfo,
    responses=ERROR_RESPONSES,
    dependencies=[Depends(require_read)],
    summary="What is served",
)
async def model(request: Request) -> Response:
    """The manifest summary, the execution providers, batching settings and limits."""
    pipeline = get_pipeline(request)
    settings = request.app.state.settings
    artifact = pipeline.artifact
    store = pipeline.store
    grid = artifact.wavelengths
    return json_response(
        {
            "model": artifact.model_id,
            "name": artifact.name,
            "version": artifact.version,
            "seq_len": artifact.seq_len,
            "latent_dim": artifact.latent_dim,
            "wavelength_unit": artifact.wavelength_unit,
            "wavelength_range": [float(grid.min()), float(grid.max())],
            "engine": pipeline.model.describe(),
            "batching": pipeline.embedder.describe(),
            "limits": {
                "max_spectra_per_request": settings.max_spectra_per_request,
                "max_body_bytes": settings.max_body_bytes,
                "max_metadata_bytes": settings.max_metadata_bytes,
                "max_search_response_bytes": settings.max_search_response_bytes,
            },
            "library": {
                "backend": None if store is None else type(store).__name__,
                "model_version": None if store is None else store.model_version,
            },
            "manifest": artifact.manifest.to_dict(),
        }
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}
    },
)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics
    store = getattr(getattr(request.app.state, "pipeline", None), "store", None)
    if store is not None:
        # A metrics scrape must not fail because the database is away.
        with contextlib.suppress(Exception):
            registry.library_entries.set(await asyncio.to_thread(store.count))
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)

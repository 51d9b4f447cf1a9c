"""Operations: /healthz (alive), /readyz (ready to serve), /model, /metrics."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse

from ..auth import require_read
from ..errors import NotReady, openapi_responses
from ..metrics import CONTENT_TYPE_LATEST
from ..schemas import ModelInfo
from .common import REQUEST_ERRORS, get_inference, get_library, json_response

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> Response:
    """200 while the process runs (does not check the model)."""
    return json_response({"status": "ok"})


@router.get("/readyz", responses=openapi_responses(NotReady), summary="Readiness")
async def readyz(request: Request) -> Response:
    """200 once the model is loaded and warmed up and while the batch loops are healthy."""
    inference = get_inference(request)
    if request.app.state.draining:
        raise NotReady("the server is shutting down")
    if not inference.healthy:
        raise NotReady("the inference loop is stalled or stopped")
    library = await get_library(request).state()
    return json_response(
        {
            "status": "ready",
            "model": inference.model_id,
            "library": {
                "model_version": library.model_version,
                "reembedding": library.reembedding,
            },
            "batchers": inference.health(),
            # per stored map looked at here: its fitted transform "loading" (placements wait
            # for it), "ready" or "unavailable: <why>" (map_warmup loads them at start-up)
            "maps": request.app.state.analysis.maps.states(),
        }
    )


@router.get(
    "/model",
    response_model=ModelInfo,
    responses=openapi_responses(*REQUEST_ERRORS),
    dependencies=[Depends(require_read)],
    summary="What is served",
)
async def model(request: Request) -> Response:
    """The manifest summary, the execution providers, batching settings and limits."""
    inference = get_inference(request)
    library = await get_library(request).state()
    settings = request.app.state.settings
    artifact = inference.artifact
    grid = artifact.wavelengths
    return json_response(
        {
            "model": artifact.model_id,
            "name": artifact.name,
            "version": artifact.version,
            "seq_len": artifact.seq_len,
            "latent_dim": artifact.latent_dim,
            "wavelength_unit": artifact.wavelength_unit,
            "axis": artifact.preprocessor.axis,
            "wavelength_range": [float(grid.min()), float(grid.max())],
            "engine": inference.model.describe(),
            "batching": inference.embedder.describe(),
            "limits": {
                "max_spectra_per_request": settings.max_spectra_per_request,
                "max_body_bytes": settings.max_body_bytes,
                "max_metadata_bytes": settings.max_metadata_bytes,
                "max_search_response_bytes": settings.max_search_response_bytes,
            },
            "library": {
                "backend": library.backend,
                "model_version": library.model_version,
            },
            "qc": qc_summary(artifact.manifest.qc),
            # The QC calibration's arrays (a PCA basis: ~100 kB) stay out; "qc" summarises it.
            "manifest": {k: v for k, v in artifact.manifest.to_dict().items() if k != "qc"},
        }
    )


def qc_summary(qc: dict | None) -> dict:
    """What ``GET /model`` says about the manifest's QC calibration (``wavemae.qc``)."""
    if qc is None:
        return {
            "calibrated": False,
            "components": [],
            "flag_percentile": None,
            "pca_components": None,
            "note": "no QC calibration in this model's manifest: no 'out of distribution' "
            "warnings; /reconstruct's rmse is the only quality figure. Calibrate one on your "
            "domain with `wavemae evaluate CHECKPOINT --data mine.csv --report DIR "
            "--artifact ARTIFACT`.",
        }
    pca = qc.get("pca")
    return {
        "calibrated": True,
        "components": list(qc.get("use") or qc.get("components") or []),
        "flag_percentile": qc.get("flag_percentile"),
        "pca_components": len(pca["variance"]) if pca else None,
        "note": "spectra whose QC score is at or above flag_percentile of the calibration's "
        "clean held-out spectra get an 'out of distribution' warning.",
    }


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
    library = request.app.state.library
    if library is not None:
        # A metrics scrape must not fail because the database is away.
        with contextlib.suppress(Exception):
            count = await library.count()
            if count is not None:
                registry.library_entries.set(count)
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)

"""Clusters and 2-D maps of the library: recompute (admin, background job), read (read key)."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from ..auth import require_admin, require_read
from ..errors import (
    AnalysisInProgress,
    LibraryVersionMismatch,
    MapNotLoaded,
    NotFound,
    openapi_responses,
)
from ..inputs import check_json, parse_json
from ..library.analysis_service import AnalysisService
from ..schemas import ClustersRequest, MapPlaceRequest, MapRequest
from ..validation import parse_filter
from .common import REQUEST_ERRORS, body_doc, decode, json_response, media_type, read_body

router = APIRouter(prefix="/library", tags=["library analysis"])

_RESPONSES = openapi_responses(*REQUEST_ERRORS, NotFound, LibraryVersionMismatch)
_START_RESPONSES = openapi_responses(
    *REQUEST_ERRORS, NotFound, LibraryVersionMismatch, AnalysisInProgress
)

ModelT = TypeVar("ModelT", bound=BaseModel)


def get_analysis(request: Request) -> AnalysisService:
    """The analysis service (503 while starting, like every library route)."""
    from .common import get_library

    get_library(request)  # NotReady while starting or stopping
    return request.app.state.analysis


def _job_answer(job: object) -> Response:
    """202 with the job and where to poll it."""
    body = job.public()  # type: ignore[attr-defined]
    body["status_url"] = f"/library/jobs/{job.id}"  # type: ignore[attr-defined]
    return json_response(body, status_code=202)


async def _read_json(request: Request, model: type[ModelT], empty: bytes | None = None) -> ModelT:
    """The JSON body as ``model`` (415 for another media type, 422 naming the field);
    ``empty`` stands in for an empty body when the request's fields all have defaults."""
    body = await read_body(request, request.app.state.settings.max_body_bytes)
    check_json(media_type(request))
    if not body and empty is not None:
        body = empty
    return await decode(body, lambda b: parse_json(model, b))


@router.post(
    "/clusters",
    status_code=202,
    responses=_START_RESPONSES,
    openapi_extra=body_doc(ClustersRequest),
    dependencies=[Depends(require_admin)],
    summary="Cluster the library's embeddings (background job)",
)
async def start_clusters(request: Request) -> Response:
    """Start a spherical k-means or vMF-mixture clustering; answers 202 with the job, whose
    progress is at `status_url`. The result (labels per entry, sizes, centroids, the chosen k
    and its BIC per k) is stored with the model version and read at GET /library/clusters."""
    analysis = get_analysis(request)
    req = await _read_json(request, ClustersRequest, empty=b"{}")
    job = await analysis.start_clusters(
        method=req.method, k=req.k, metadata_filter=parse_filter(req.filter)
    )
    return _job_answer(job)


@router.get(
    "/clusters",
    responses=_RESPONSES,
    dependencies=[Depends(require_read)],
    summary="The stored clustering",
)
async def get_clusters(
    request: Request,
    include_labels: Annotated[bool, Query(description="Also the label of every entry.")] = False,
) -> Response:
    """Method, k, how k was chosen, cluster sizes and centroids (unit vectors), for the served
    model version; 404 until POST /library/clusters has finished."""
    result = dict(await get_analysis(request).clusters())
    if not include_labels:
        result.pop("labels", None)
    return json_response(result)


@router.post(
    "/map",
    status_code=202,
    responses=_START_RESPONSES,
    openapi_extra=body_doc(MapRequest),
    dependencies=[Depends(require_admin)],
    summary="Fit a 2-D map of the library (background job)",
)
async def start_map(request: Request) -> Response:
    """Fit UMAP or t-SNE (metric cosine, fixed seed) on every entry's embedding; answers 202
    with the job. Coordinates are stored with the model version (GET /library/map)."""
    analysis = get_analysis(request)
    req = await _read_json(request, MapRequest, empty=b"{}")
    job = await analysis.start_map(method=req.method)
    return _job_answer(job)


@router.get(
    "/map",
    responses=_RESPONSES,
    dependencies=[Depends(require_read)],
    summary="Map coordinates of the library, paged",
)
async def get_map(
    request: Request,
    method: Annotated[str, Query(description="umap or tsne.")] = "umap",
    offset: Annotated[int, Query(ge=0, le=2**53, description="Entries to skip (by id).")] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000, description="Entries to return.")] = 10_000,
    fields: Annotated[
        str | None,
        Query(max_length=1000, description="Comma-separated metadata keys (default: all)."),
    ] = None,
) -> Response:
    """`items`: per entry `id`, `x`, `y`, its `cluster` (when clusters are stored) and its
    metadata (only `fields` when given). Entries added since the fit are placed by the fitted
    map without moving the others."""
    analysis = get_analysis(request)
    wanted = None if fields is None else [f.strip() for f in fields.split(",") if f.strip()]
    page = await analysis.map_page(method=method, offset=offset, limit=limit, fields=wanted)
    return json_response(page)


@router.post(
    "/map/place",
    responses=openapi_responses(*REQUEST_ERRORS, NotFound, MapNotLoaded),
    openapi_extra=body_doc(MapPlaceRequest),
    dependencies=[Depends(require_read)],
    summary="Place query embeddings on the stored map",
)
async def place_on_map(request: Request) -> Response:
    """`points`: the `x`, `y` of each embedding in the stored map (its fitted transform, stored
    with the map, so any replica and a restarted server place points alike; the library's
    points unmoved, nothing stored). 404 without a map; 409 when the stored transform cannot be
    loaded (a map stored before transforms were kept, or one too large or refused: the message
    says why; refit it)."""
    analysis = get_analysis(request)
    req = await _read_json(request, MapPlaceRequest)
    return json_response(await analysis.place(method=req.method, embeddings=req.embeddings))


@router.get(
    "/jobs/{job_id}",
    responses=_RESPONSES,
    dependencies=[Depends(require_read)],
    summary="State and progress of a clustering or map job",
)
async def get_job(
    request: Request, job_id: Annotated[str, Path(min_length=1, max_length=64)]
) -> Response:
    """`state` (queued, running, done, failed, cancelled: the server stopped during the fit),
    `progress` (0-1), `stage`, the `error` of a failed job, and the result's summary once done
    (for a map, `transform`: its stored fitted transform's format, size and digest)."""
    return json_response(get_analysis(request).job(job_id))

"""POST /similar: nearest reference-library entries for spectra or embeddings."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from wavemae.similarity import HQIOptions

from ..auth import require_read
from ..errors import InvalidInput, LibraryVersionMismatch, openapi_responses
from ..inputs import check_json, parse_json, spectra_array, vector_array
from ..library.service import SimilarQuery
from ..schemas import SimilarRequest, SimilarResponse
from ..validation import parse_filter
from .common import (
    REQUEST_ERRORS,
    body_doc,
    decode,
    get_library,
    json_response,
    media_type,
    read_body,
)

router = APIRouter(tags=["library"], dependencies=[Depends(require_read)])


@router.post(
    "/similar",
    response_model=SimilarResponse,
    responses=openapi_responses(*REQUEST_ERRORS, LibraryVersionMismatch),
    openapi_extra=body_doc(SimilarRequest),
    summary="Search the reference library",
)
async def similar(request: Request) -> Response:
    """Per query, the `k` most similar library entries, each with its gap to the next hit.

    `space="embedding"`: cosine of the served model's embeddings of `spectra` (or of the given
    `embeddings`). `space="spectrum"`: the Hit Quality Index of `spectra` against every
    candidate on the model grid, after `preprocessing` (default: 2nd Savitzky-Golay derivative,
    9 bands), with `exclude`d ranges left out. `filter` restricts candidates by metadata.
    """
    library = get_library(request)
    settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    check_json(media_type(request))
    req = await decode(body, lambda b: parse_json(SimilarRequest, b))
    limit = settings.max_spectra_per_request
    query = SimilarQuery(
        k=req.k,
        space=req.space,
        metadata_filter=parse_filter(req.filter),
        spectra=None
        if req.spectra is None
        else spectra_array(req.spectra, field="spectra", max_spectra=limit),
        wavelengths=vector_array(req.wavelengths, field="wavelengths"),
        embeddings=None
        if req.embeddings is None
        else spectra_array(req.embeddings, field="embeddings", max_spectra=limit),
        include_metadata=req.include_metadata,
        fields=req.fields,
        hqi=_hqi_options(req),
    )
    results = await library.similar(query)
    return json_response({"results": results, "model": library.model_id, "space": req.space})


def _hqi_options(req: SimilarRequest) -> HQIOptions:
    """The request's HQI options; a wrong combination answers 422 naming the field."""
    try:
        return HQIOptions(
            preprocessing=req.preprocessing,
            window=req.window,
            exclude=tuple((low, high) for low, high in req.exclude),
            scale=req.scale,
        )
    except ValueError as exc:
        message = str(exc)
        field = next((f for f in ("window", "polyorder", "exclude") if f in message), "exclude")
        raise InvalidInput(message, field="window" if field == "polyorder" else field) from None

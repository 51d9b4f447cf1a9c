"""POST /similar: nearest reference-library entries for spectra or embeddings."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from ..auth import require_read
from ..errors import LibraryVersionMismatch, openapi_responses
from ..inputs import check_json, check_no_nul, parse_json, spectra_array, vector_array
from ..library.service import SimilarQuery
from ..schemas import SimilarRequest, SimilarResponse
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
    """Per query, the `k` most similar library entries by cosine similarity.

    Queries are `spectra` (preprocessed and, for `space="embedding"`, embedded by the served
    model) or `embeddings` from this model version. `filter` restricts candidates by metadata.
    """
    library = get_library(request)
    settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    check_json(media_type(request))
    req = await decode(body, lambda b: parse_json(SimilarRequest, b))
    check_no_nul(req.filter, "filter")
    limit = settings.max_spectra_per_request
    query = SimilarQuery(
        k=req.k,
        space=req.space,
        spectra=None
        if req.spectra is None
        else spectra_array(req.spectra, field="spectra", max_spectra=limit),
        wavelengths=vector_array(req.wavelengths, field="wavelengths"),
        embeddings=None
        if req.embeddings is None
        else spectra_array(req.embeddings, field="embeddings", max_spectra=limit),
        metadata_filter=req.filter,
    )
    hits = await library.similar(query)
    return json_response(
        {
            "results": [
                [{"id": h.id, "score": h.score, "metadata": h.metadata} for h in row]
                for row in hits
            ],
            "model": library.model_id,
            "space": req.space,
        }
    )

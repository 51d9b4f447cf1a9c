"""POST /similar: nearest reference-library entries for spectra or embeddings."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from ..auth import require_read
from ..errors import InvalidInput
from ..inputs import parse_json_as, spectra_array, vector_array
from ..schemas import SimilarRequest, SimilarResponse
from ..validation import bounded_hits, parse_filter, unit_rows
from .common import (
    ERROR_RESPONSES,
    body_doc,
    check_json,
    decode,
    get_pipeline,
    json_response,
    media_type,
    read_body,
)

router = APIRouter(tags=["library"], dependencies=[Depends(require_read)])


@router.post(
    "/similar",
    response_model=SimilarResponse,
    responses={**ERROR_RESPONSES, 409: {"description": "Library embedded by another model"}},
    openapi_extra=body_doc(SimilarRequest),
    summary="Search the reference library",
)
async def similar(request: Request) -> Response:
    """Per query, the `k` most similar library entries by cosine similarity.

    Queries are `spectra` (preprocessed and, for `space="embedding"`, embedded by the served
    model) or `embeddings` from this model version. `filter` restricts candidates by metadata.
    """
    pipeline = get_pipeline(request)
    settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    check_json(media_type(request))
    req = await decode(body, parse_json_as, SimilarRequest)
    metadata_filter = parse_filter(req.filter)
    limit = settings.max_spectra_per_request
    if (req.spectra is None) == (req.embeddings is None):
        raise InvalidInput("send exactly one of 'spectra' or 'embeddings'", field="spectra")
    if req.embeddings is not None:
        if req.space != "embedding":
            raise InvalidInput(
                "space='spectrum' needs 'spectra', not 'embeddings'", field="embeddings"
            )
        queries = spectra_array(req.embeddings, field="embeddings", max_spectra=limit)
        if queries.shape[1] != pipeline.latent_dim:
            raise InvalidInput(
                f"embeddings have {queries.shape[1]} values but this model's embeddings have "
                f"latent_dim={pipeline.latent_dim}",
                field="embeddings",
            )
    else:
        values = spectra_array(req.spectra, field="spectra", max_spectra=limit)
        wavelengths = vector_array(req.wavelengths, field="wavelengths")
        if req.space == "embedding":
            queries, _ = await pipeline.embed(values, wavelengths)
        else:
            queries, _ = await pipeline.preprocess(values, wavelengths)
            queries = unit_rows(queries, "spectra", zero_reason="is flat after preprocessing")
    hits = await pipeline.similar(
        unit_rows(queries, "embeddings" if req.embeddings is not None else "spectra"),
        req.k,
        space=req.space,
        metadata_filter=metadata_filter,
    )
    results = bounded_hits(
        hits, req.include_metadata, req.fields, max_bytes=settings.max_search_response_bytes
    )
    return json_response({"results": results, "model": pipeline.model_id, "space": req.space})

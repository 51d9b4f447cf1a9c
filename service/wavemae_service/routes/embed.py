"""POST /embed: spectra -> embeddings (JSON, .npy or a spectra file in; JSON or .npy out)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from ..auth import require_read
from ..errors import ClustersNotComputed, openapi_responses
from ..schemas import EmbedRequest, EmbedResponse
from .cluster_option import cluster_answer, requested_clustering
from .common import (
    FILE_DOC,
    NPY_RESPONSE,
    REQUEST_ERRORS,
    body_doc,
    get_inference,
    json_response,
    npy_response,
    read_request_spectra,
    wants_npy,
)

router = APIRouter(tags=["inference"], dependencies=[Depends(require_read)])

_NPY_DOC = "numpy.save of float32 (N, seq_len) spectra on the model's grid"


@router.post(
    "/embed",
    response_model=EmbedResponse,
    responses={**openapi_responses(*REQUEST_ERRORS, ClustersNotComputed), 200: NPY_RESPONSE},
    openapi_extra=body_doc(EmbedRequest, npy=_NPY_DOC, csv=FILE_DOC, form=FILE_DOC),
    summary="Embed spectra",
)
async def embed(request: Request) -> Response:
    """L2-normalised embeddings of the spectra, in request order.

    The body is JSON, a .npy array, or a spectra file (CSV, JCAMP-DX, SPC, OPUS, SPA, .npz) as
    the raw body or a multipart file; query options `format`, `filename`, `unit`,
    `nan_as_missing`. Bands of the model's grid outside the caller's range and `missing` ones
    are hidden from the masked encoder; `coverage` says how much of the grid each spectrum
    covers. Send `Accept: application/x-npy` to receive a float32 `(N, latent_dim)` .npy.
    `include_cluster` (JSON field, or query parameter for any body) also answers each
    spectrum's cluster in the library's stored clustering (409 when there is none).
    """
    inference = get_inference(request)
    spectra, _ = await read_request_spectra(request, model_unit=inference.unit)
    clustering = await requested_clustering(
        request, getattr(spectra.request, "include_cluster", False)
    )
    embeddings, model_input = await inference.embed(
        spectra.values, spectra.wavelengths, missing=spectra.missing, unit=spectra.unit
    )
    if wants_npy(request):
        return npy_response(embeddings, inference.model_id)
    answer = {
        "embeddings": embeddings,
        "model": inference.model_id,
        "coverage": model_input.coverage,
        "warnings": await inference.qc_warnings(model_input),
    }
    if spectra.ids is not None:
        answer["ids"] = spectra.ids
    if clustering is not None:
        answer["clusters"] = await cluster_answer(request, embeddings, clustering)
    return json_response(answer)

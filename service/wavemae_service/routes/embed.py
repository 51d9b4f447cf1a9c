"""POST /embed: spectra -> embeddings (JSON, .npy or CSV in; JSON or .npy out)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from ..auth import require_read
from ..errors import InvalidInput, openapi_responses
from ..inputs import read_spectra
from ..schemas import EmbedRequest, EmbedResponse
from .common import (
    NPY_RESPONSE,
    REQUEST_ERRORS,
    body_doc,
    decode,
    get_inference,
    json_response,
    media_type,
    npy_response,
    read_body,
    wants_npy,
)

router = APIRouter(tags=["inference"], dependencies=[Depends(require_read)])

_NPY_DOC = "numpy.save of float32 (N, seq_len) spectra on the model's grid"
_CSV_DOC = "training CSV format: header row = wavelengths, optional leading id/metadata columns"


async def _uploaded_file(request: Request, body: bytes) -> bytes:
    """The bytes of the (first) file part of a multipart form (``curl -F file=@x.csv``)."""

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=16)
    except HTTPException as exc:  # starlette: malformed multipart
        raise InvalidInput(
            f"the multipart body is malformed ({exc.detail})", field="body"
        ) from None
    upload = next((v for v in form.values() if isinstance(v, UploadFile)), None)
    if upload is None:
        raise InvalidInput("the form has no file part; send the CSV file as a field", field="file")
    return await upload.read()


@router.post(
    "/embed",
    response_model=EmbedResponse,
    responses={**openapi_responses(*REQUEST_ERRORS), 200: NPY_RESPONSE},
    openapi_extra=body_doc(EmbedRequest, npy=_NPY_DOC, csv=_CSV_DOC, form=_CSV_DOC),
    summary="Embed spectra",
)
async def embed(request: Request) -> Response:
    """L2-normalised embeddings of the spectra, in request order.

    Send `Accept: application/x-npy` to receive a float32 `(N, latent_dim)` .npy instead of JSON.
    """
    inference = get_inference(request)
    settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    kind = media_type(request)
    if kind == "multipart/form-data":
        body, kind = await _uploaded_file(request, body), "text/csv"
    spectra = await decode(
        body,
        lambda b: read_spectra(b, kind, max_spectra=settings.max_spectra_per_request, csv=True),
    )
    embeddings, _ = await inference.embed(spectra.values, spectra.wavelengths)
    if wants_npy(request):
        return npy_response(embeddings, inference.model_id)
    answer = {"embeddings": embeddings, "model": inference.model_id}
    if spectra.ids is not None:
        answer["ids"] = spectra.ids
    return json_response(answer)

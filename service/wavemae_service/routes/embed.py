"""POST /embed: spectra -> embeddings (JSON, .npy or CSV in; JSON or .npy out)."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from ..auth import require_read
from ..errors import InvalidInput
from ..inputs import NPY_MEDIA_TYPE, load_npy, parse_csv, parse_json, spectra_array, vector_array
from ..schemas import EmbedRequest, EmbedResponse
from .common import (
    ERROR_RESPONSES,
    NPY_RESPONSE,
    body_doc,
    check_json,
    decode,
    get_pipeline,
    json_response,
    media_type,
    npy_response,
    read_body,
    wants_npy,
)

router = APIRouter(tags=["inference"], dependencies=[Depends(require_read)])

_NPY_DOC = "numpy.save of float32 (N, seq_len) spectra on the model's grid"
_CSV_DOC = "training CSV format: header row = wavelengths, optional leading id/metadata columns"


def _decode(
    body: bytes, kind: str, max_spectra: int
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Body -> (spectra (N, L) f64, wavelengths or None, CSV row ids or None)."""
    if kind == NPY_MEDIA_TYPE:
        return load_npy(body, max_spectra=max_spectra), None, None
    if kind in ("text/csv", "application/csv"):
        return parse_csv(body, max_spectra=max_spectra)
    check_json(kind)
    req = parse_json(EmbedRequest, body)
    values = spectra_array(req.spectra, field="spectra", max_spectra=max_spectra)
    return values, vector_array(req.wavelengths, field="wavelengths"), None


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
    responses={**ERROR_RESPONSES, 200: NPY_RESPONSE},
    openapi_extra=body_doc(EmbedRequest, npy=_NPY_DOC, csv=_CSV_DOC, form=_CSV_DOC),
    summary="Embed spectra",
)
async def embed(request: Request) -> Response:
    """L2-normalised embeddings of the spectra, in request order.

    Send `Accept: application/x-npy` to receive a float32 `(N, latent_dim)` .npy instead of JSON.
    """
    pipeline = get_pipeline(request)
    settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    kind = media_type(request)
    if kind == "multipart/form-data":
        body, kind = await _uploaded_file(request, body), "text/csv"
    values, wavelengths, ids = await decode(body, _decode, kind, settings.max_spectra_per_request)
    embeddings, _ = await pipeline.embed(values, wavelengths)
    if wants_npy(request):
        return npy_response(embeddings, pipeline.model_id)
    answer = {"embeddings": embeddings, "model": pipeline.model_id}
    if ids is not None:
        answer["ids"] = ids
    return json_response(answer)

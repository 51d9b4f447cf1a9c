"""POST /parse: a spectra file -> its spectra as JSON (read with the same reader as /embed),
so a client without a parser for JCAMP-DX, SPC, OPUS, SPA or numpy files (the dashboard) can
show them as measured. Nothing is run through the model and nothing is stored."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from ..auth import require_read
from ..errors import InvalidInput, UnsupportedMediaType, openapi_responses
from ..inputs import NPY_MEDIA_TYPE
from ..schemas import ParseResponse
from ..uploads import UPLOAD_MEDIA_TYPES
from .common import (
    FILE_DOC,
    REQUEST_ERRORS,
    get_inference,
    json_response,
    media_type,
    read_request_spectra,
)

router = APIRouter(tags=["inference"], dependencies=[Depends(require_read)])

_NPY_DOC = "numpy.save of (N, seq_len) or (seq_len,) numbers on the model's grid"


def _body_doc() -> dict[str, Any]:
    """The request body: a file raw (any upload media type, or .npy) or as a multipart form."""
    file = {"schema": {"type": "string", "format": "binary", "description": FILE_DOC}}
    content: dict[str, Any] = {kind: file for kind in UPLOAD_MEDIA_TYPES}
    content["text/csv"] = {"schema": {"type": "string", "description": FILE_DOC}}
    content[NPY_MEDIA_TYPE] = {
        "schema": {"type": "string", "format": "binary", "description": _NPY_DOC}
    }
    content["multipart/form-data"] = {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary", "description": FILE_DOC}},
            "required": ["file"],
        }
    }
    return {"requestBody": {"required": True, "content": content}}


def _check_media_type(request: Request) -> None:
    """415 for a body that is not a spectra file (JSON holds spectra already), unless
    ``?format=`` says how to read it."""
    kind = media_type(request)
    files = (*UPLOAD_MEDIA_TYPES, NPY_MEDIA_TYPE, "multipart/form-data")
    if kind not in files and not request.query_params.get("format"):
        raise UnsupportedMediaType(
            f"Content-Type {kind or '(none)'!r}: /parse reads spectra files; send the file raw "
            "with its media type (or application/octet-stream and ?filename=), as a multipart "
            "form, or give ?format="
        )


@router.post(
    "/parse",
    response_model=ParseResponse,
    responses=openapi_responses(*REQUEST_ERRORS),
    openapi_extra=_body_doc(),
    summary="Read a spectra file into JSON",
)
async def parse(request: Request) -> Response:
    """The spectra of a file as the service reads it for /embed, /reconstruct and /similar:
    per spectrum its `id` (null when the file names none), `values`, `metadata` from the file;
    the shared `wavelengths` in the model's `unit` (converted from the file's `file_unit`; an
    axis-relative model keeps the file's axis and unit), and
    the detected `format`. The answer's spectra and wavelengths can be sent as is to the other
    endpoints.

    The body is a spectra file (CSV, JCAMP-DX, SPC, OPUS, SPA, .npz; a bare .npy as
    `application/x-npy`, on the model's grid) raw or as a multipart file; query options
    `format`, `filename`, `unit`, `nan_as_missing`. Same size limits as /embed. A JSON body
    is refused (415).
    """
    _check_media_type(request)
    inference = get_inference(request)
    spectra, _ = await read_request_spectra(request, model_unit=inference.unit)
    wavelengths = spectra.wavelengths
    if wavelengths is None:  # a bare .npy: values on the model's grid
        length = spectra.values.shape[1]
        if length != inference.grid.size:
            raise InvalidInput(
                f"the .npy holds {length} values per spectrum and no wavelengths; without "
                f"wavelengths they must be the model's {inference.grid.size} grid points",
                field="body",
            )
        wavelengths = inference.grid
    count = spectra.values.shape[0]
    ids = spectra.ids or [None] * count
    metadata = spectra.metadata or [{}] * count
    missing = spectra.missing or [[]] * count
    return json_response(
        {
            "format": spectra.format,
            "filename": spectra.name,
            # to_model_unit converts the axis (not for an axis-relative model), keeps the unit read
            "unit": (spectra.unit or inference.unit) if inference.relative else inference.unit,
            "file_unit": spectra.unit,
            "wavelengths": wavelengths.tolist(),  # (a reversed axis is a view: not orjson's)
            "spectra": [
                {"id": i, "values": v.tolist(), "metadata": m, "missing": gaps}
                for i, v, m, gaps in zip(ids, spectra.values, metadata, missing, strict=True)
            ],
            "model": inference.model_id,
        }
    )

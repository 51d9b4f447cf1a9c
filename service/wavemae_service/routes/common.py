"""What the routes share: the services, body reading with a size limit, answers, API docs."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import Request, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from ..errors import (
    Forbidden,
    InvalidInput,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from ..inference import Inference
from ..inputs import NPY_MEDIA_TYPE, SpectraBody, read_spectra, to_model_unit
from ..library.service import LibraryService
from ..schemas import EmbedRequest, SpectraRequest
from ..uploads import UploadOptions

__all__ = [
    "FILE_DOC",
    "REQUEST_ERRORS",
    "body_doc",
    "decode",
    "get_inference",
    "get_library",
    "json_response",
    "media_type",
    "npy_response",
    "query_flag",
    "read_body",
    "read_request_spectra",
    "single_valued_query",
    "uploaded_file",
    "wants_npy",
]

T = TypeVar("T")

#: Documents a spectra file body (raw or multipart).
FILE_DOC = (
    "A spectra file: CSV (wide with a wavelength header row, or long wavelength/value "
    "columns), JCAMP-DX, SPC, OPUS, SPA or .npz; format detected from content and name "
    "(?filename=) or given by ?format="
)

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def single_valued_query(request: Request) -> None:
    """Every query parameter of this API takes one value: a repeated one (``?k=3&k=5``) is
    refused by name rather than silently answered with the last value."""
    params = request.query_params
    for name in params:
        count = len(params.getlist(name))
        if count > 1:
            raise InvalidInput(
                f"query parameter {name!r} is given {count} times; give it once", field=name
            )


#: The errors any authenticated request can meet (documented on every such route).
REQUEST_ERRORS = (
    Unauthorized,
    Forbidden,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidInput,
    Overloaded,
    NotReady,
)

#: Documents the binary alternative of a 200 answer (sent with ``Accept: application/x-npy``).
NPY_RESPONSE: dict[str, Any] = {
    "content": {NPY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}
}


def _ready_state(request: Request) -> Any:
    state = request.app.state
    if not state.ready:
        raise NotReady("the model is not loaded yet; retry shortly")
    return state


def get_inference(request: Request) -> Inference:
    """The served model, or NotReady (503) while starting or after shutdown began."""
    return _ready_state(request).inference


def get_library(request: Request) -> LibraryService:
    """The library service, or NotReady (503) while starting or after shutdown began."""
    return _ready_state(request).library


def media_type(request: Request) -> str:
    """The request's Content-Type without parameters, lower-case ('' when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def query_flag(request: Request, name: str) -> bool:
    """A boolean query parameter (``true``/``false``, ``1``/``0``, ``yes``/``no``; absent =
    false), or a 422 naming it."""
    value = request.query_params.get(name, "false").strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise InvalidInput(f"{name}={value!r} is not a boolean (true or false)", field=name)
    return value in ("true", "1", "yes")


def wants_npy(request: Request) -> bool:
    return NPY_MEDIA_TYPE in request.headers.get("accept", "")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refusing (413) more than ``max_bytes`` before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(
            f"the body has {int(declared)} bytes; at most {max_bytes} are accepted", field="body"
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"the body exceeds {max_bytes} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


# Bodies larger than this are decoded (JSON parse, validation, stacking) in a worker thread so
# the event loop keeps accepting and parsing other requests meanwhile.
_INLINE_DECODE_MAX_BYTES = 64 * 1024


async def decode(body: bytes, decoder: Callable[[bytes], T]) -> T:
    """``decoder(body)`` inline for small bodies, in a worker thread for large ones."""
    if len(body) <= _INLINE_DECODE_MAX_BYTES:
        return decoder(body)
    return await asyncio.to_thread(decoder, body)


async def uploaded_file(request: Request, body: bytes) -> tuple[bytes, str | None]:
    """The bytes and file name of the (first) file part of a multipart form
    (``curl -F file=@x.jdx``)."""

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
        raise InvalidInput(
            "the form has no file part; send the spectra file as a field", field="file"
        )
    return await upload.read(), upload.filename


def _disposition_name(request: Request) -> str | None:
    header = request.headers.get("content-disposition", "")
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value:
            return value.strip('"')
    return None


async def read_request_spectra(
    request: Request,
    *,
    model: type[SpectraRequest] = EmbedRequest,
    model_unit: str,
    body: bytes | None = None,
) -> tuple[SpectraBody, bool]:
    """The request's spectra in any accepted body (JSON, .npy, a spectra file raw or as a
    multipart form), wavelengths in ``model_unit``; and whether the axis was reversed by the
    unit conversion (see :func:`~..inputs.to_model_unit`).

    Query options: ``format``, ``filename``, ``unit``, ``nan_as_missing``.
    """
    settings = request.app.state.settings
    if body is None:
        body = await read_body(request, settings.max_body_bytes)
    kind = media_type(request)
    filename = _disposition_name(request)
    if kind == "multipart/form-data":
        body, filename = await uploaded_file(request, body)
        kind = "application/octet-stream"
    options = UploadOptions.from_query(request.query_params, filename)
    spectra = await decode(
        body,
        lambda b: read_spectra(
            b, kind, max_spectra=settings.max_spectra_per_request, model=model, options=options
        ),
    )
    inference = _ready_state(request).inference
    return to_model_unit(spectra, model_unit, inference.grid, relative=inference.relative)


def json_response(content: Any, status_code: int = 200) -> Response:
    return Response(
        orjson.dumps(content, option=_JSON_OPTIONS),
        status_code=status_code,
        media_type="application/json",
    )


def npy_response(array: np.ndarray, model_id: str) -> Response:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return Response(
        buffer.getvalue(), media_type=NPY_MEDIA_TYPE, headers={"X-WaveMAE-Model": model_id}
    )


def body_doc(
    model: type, *, npy: str | None = None, csv: str | None = None, form: str | None = None
) -> dict[str, Any]:
    """``openapi_extra`` documenting a request body parsed by hand (JSON plus optional binary)."""
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    }
    if npy:
        content[NPY_MEDIA_TYPE] = {
            "schema": {"type": "string", "format": "binary", "description": npy}
        }
    if csv:
        content["text/csv"] = {"schema": {"type": "string", "description": csv}}
    if form:
        content["multipart/form-data"] = {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary", "description": form}},
                "required": ["file"],
            }
        }
    return {"requestBody": {"required": True, "content": content}}

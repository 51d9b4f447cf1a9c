"""What the routes share: the services, body reading with a size limit, answers, API docs."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import Request, Response

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
from ..inputs import NPY_MEDIA_TYPE
from ..library.service import LibraryService

__all__ = [
    "REQUEST_ERRORS",
    "body_doc",
    "decode",
    "get_inference",
    "get_library",
    "json_response",
    "media_type",
    "npy_response",
    "read_body",
    "wants_npy",
]

T = TypeVar("T")

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

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

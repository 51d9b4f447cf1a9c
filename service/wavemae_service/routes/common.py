"""Helpers shared by the routes: body reading with a size limit, content negotiation, answers."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import Request, Response

from ..errors import NotReady, PayloadTooLarge, UnsupportedMediaType
from ..inputs import NPY_MEDIA_TYPE
from ..pipeline import SpectraPipeline
from ..schemas import ErrorResponse

__all__ = [
    "ERROR_RESPONSES",
    "body_doc",
    "decode",
    "get_pipeline",
    "json_response",
    "media_type",
    "npy_response",
    "read_body",
    "wants_npy",
]

T = TypeVar("T")

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (401, "Missing or invalid API key"),
        (403, "The key lacks the admin scope"),
        (413, "Too many spectra or too large a body"),
        (415, "Unsupported Content-Type"),
        (422, "Invalid input: the error names the field and the reason"),
        (429, "Overloaded: retry after the Retry-After header's seconds"),
        (503, "Not ready (loading, draining or unhealthy)"),
    )
}


#: Documents the binary alternative of a 200 answer (sent with ``Accept: application/x-npy``).
NPY_RESPONSE: dict[str, Any] = {
    "content": {NPY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}
}


def get_pipeline(request: Request) -> SpectraPipeline:
    """The ready pipeline, or NotReady (503) while starting or after shutdown began."""
    state = request.app.state
    pipeline = getattr(state, "pipeline", None)
    if pipeline is None or not state.ready:
        raise NotReady("the model is not loaded yet; retry shortly")
    return pipeline


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


async def decode(body: bytes, decoder: Callable[..., T], *args: Any) -> T:
    """``decoder(body, *args)`` inline for small bodies, in a worker thread for large ones."""
    if len(body) <= _INLINE_DECODE_MAX_BYTES:
        return decoder(body, *args)
    return await asyncio.to_thread(decoder, body, *args)


def check_json(kind: str, allowed: tuple[str, ...] = ()) -> None:
    """Accept JSON (or no Content-Type) and the media types in ``allowed``; else 415."""
    if kind in ("", "application/json", *allowed) or kind.endswith("+json"):
        return
    accepted = ", ".join(("application/json", *allowed))
    raise UnsupportedMediaType(f"Content-Type {kind!r} is not accepted here; send {accepted}")


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

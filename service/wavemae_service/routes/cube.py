"""POST /embed/cube: a hyperspectral cube -> per-pixel embeddings as ``.npy``.

A route of its own rather than another body of ``/embed``: its answer is a
``(rows, cols, latent_dim)`` array file instead of JSON rows, its upload is streamed to disk
under its own limits (``max_cube_bytes``, ``max_cube_pixels``) instead of being held in memory
under ``max_body_bytes``, and an ENVI cube needs two files in one request.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

from wavemae.data.cubes import npy_cube_pixels

from ..auth import require_read
from ..cubes import CubeOptions, check_pixels, embed_cube, open_cube, parse_wavelengths
from ..errors import (
    ClustersNotComputed,
    InvalidInput,
    Overloaded,
    PayloadTooLarge,
    UnsupportedMediaType,
    openapi_responses,
)
from ..inputs import NPY_MEDIA_TYPE
from .analysis import get_analysis
from .common import REQUEST_ERRORS, get_inference, media_type

router = APIRouter(tags=["inference"], dependencies=[Depends(require_read)])

_COPY_BYTES = 1 << 20
_NPY_HEAD_BYTES = 1 << 16  # a .npy header is far shorter; past this, stop looking

_HEADERS_DOC = {
    "X-WaveMAE-Model": "the model version that embedded the cube",
    "X-WaveMAE-Coverage": "fraction of the model's grid the cube's wavelengths cover",
    "X-WaveMAE-Missing-Pixels": "pixels with NaN bands hidden from the encoder",
    "X-WaveMAE-Warnings": "JSON list of warnings that hold for every pixel",
    "X-WaveMAE-Clusters": "output=labels: JSON summary of the clustering the labels come from",
}
_LABEL_ROWS_PIXELS = 65_536  # pixels assigned per step of a label image
_CUBE_RETRY_AFTER_S = 10  # a cube takes seconds to minutes


class CubeSlots:
    """At most ``limit`` cube requests at once (``max_concurrent_cubes``); used from the event
    loop only, so a plain counter is enough."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0

    @contextlib.contextmanager
    def take(self) -> Iterator[None]:
        """Hold one slot for the block.

        Raises:
            Overloaded: every slot is taken (429, Retry-After).
        """
        if self.running >= self.limit:
            raise Overloaded(
                f"{self.running} cube requests are being embedded, the most this server takes "
                f"at once (max_concurrent_cubes={self.limit}); retry later",
                retry_after_s=_CUBE_RETRY_AFTER_S,
            )
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1


_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            NPY_MEDIA_TYPE: {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "numpy.save of a (rows, cols, bands) numeric array",
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "cube": {
                            "type": "string",
                            "format": "binary",
                            "description": "a (rows, cols, bands) .npy, or the ENVI data file",
                        },
                        "header": {
                            "type": "string",
                            "format": "binary",
                            "description": "the ENVI .hdr of the data file in 'cube'",
                        },
                        "wavelengths": {
                            "type": "string",
                            "description": "one number per band (commas or spaces)",
                        },
                    },
                    "required": ["cube"],
                }
            },
        },
    }
}


@router.post(
    "/embed/cube",
    response_class=Response,
    responses={
        **openapi_responses(*REQUEST_ERRORS, ClustersNotComputed),
        200: {
            "description": "float32 (rows, cols, latent_dim) embeddings, one per pixel; with "
            "output=labels int32 (rows, cols) cluster labels",
            "content": {NPY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
            "headers": {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in _HEADERS_DOC.items()
            },
        },
    },
    openapi_extra=_BODY_DOC,
    summary="Embed every pixel of a hyperspectral cube",
)
async def embed_cube_route(
    request: Request,
    wavelengths: str | None = Query(
        None,
        description="The cube's axis, one number per band (commas or spaces); overrides an "
        "ENVI header's. Without it and without a header: the model's grid.",
    ),
    unit: str | None = Query(None, description="Unit of the axis: nm, um or cm-1."),
    nan_as_missing: bool = Query(
        False, description="Treat NaN values as missing bands instead of refusing them."
    ),
    output: Literal["embeddings", "labels"] = Query(
        "embeddings",
        description="embeddings: (rows, cols, latent_dim) float32; labels: a (rows, cols) "
        "int32 label image, each pixel's cluster in the library's stored clustering (409 "
        "clusters_not_computed without one for the served model).",
    ),
) -> Response:
    """L2-normalised embeddings of every pixel of a cube, as a float32 ``.npy`` of shape
    ``(rows, cols, latent_dim)``.

    The body is a ``(rows, cols, bands)`` ``.npy`` (``Content-Type: application/x-npy``), or a
    multipart form with the file ``cube`` (a .npy, or ENVI data with its ``.hdr`` as
    ``header``: wavelengths, unit and bad bands come from the header) and optionally the field
    ``wavelengths``. The upload is streamed to a temporary file and embedded a chunk of pixels
    at a time; cubes over ``max_cube_pixels`` pixels or ``max_cube_bytes`` bytes answer 413.
    Coverage, hidden pixels and warnings come back as ``X-WaveMAE-*`` headers. With
    ``output=labels`` the answer is the cube's label image instead: each pixel's cluster in the
    library's stored clustering (the same assignment as ``include_cluster`` on ``/embed``).
    More than ``max_concurrent_cubes`` cube requests at once: 429 with Retry-After.
    """
    get_inference(request)  # 503 while not ready, before anything else
    options = CubeOptions.from_request(wavelengths, unit, nan_as_missing)  # before the upload
    clustering = None
    if output == "labels":  # before the upload too: a request that cannot be answered is cheap
        clustering = await get_analysis(request).current_clustering(field="output")
    with request.app.state.cube_slots.take():  # 429 before the upload is read
        return await _embed_cube(request, options, clustering)


async def _embed_cube(
    request: Request, options: CubeOptions, clustering: dict[str, Any] | None
) -> Response:
    """The route's work once it holds a cube slot: receive, embed, answer."""
    settings = request.app.state.settings
    inference = get_inference(request)
    folder = Path(tempfile.mkdtemp(prefix="wavemae-cube-"))
    try:
        data, header, form_wavelengths = await _receive_cube(
            request, folder, settings.max_cube_bytes, settings.max_cube_pixels
        )
        if form_wavelengths:
            options = replace(options, wavelengths=parse_wavelengths(form_wavelengths))
        cube = open_cube(data, header, name=data.name)
        answer = await embed_cube(
            inference,
            cube,
            options,
            folder / "embeddings.npy",
            max_pixels=settings.max_cube_pixels,
            chunk_pixels=settings.cube_chunk_pixels,
            abandoned=request.is_disconnected,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if answer is None:  # the client has gone: nobody reads this
        shutil.rmtree(folder, ignore_errors=True)
        return Response(status_code=499)
    path, headers = answer.path, answer.headers(inference.model_id)
    if clustering is not None:
        try:
            path, summary = await _label_image(request, answer.path, clustering)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        headers["X-WaveMAE-Clusters"] = json.dumps(summary, ensure_ascii=True)
    return FileResponse(
        path,
        media_type=NPY_MEDIA_TYPE,
        headers=headers,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


async def _label_image(
    request: Request, embeddings_path: Path, clustering: dict[str, Any]
) -> tuple[Path, dict[str, Any]]:
    """The per-pixel embeddings in ``embeddings_path`` assigned to ``clustering``, a block of
    rows at a time (memory-mapped in and out), as an int32 ``(rows, cols)`` ``.npy`` beside it,
    and the clustering's summary."""
    analysis = get_analysis(request)
    embeddings = np.load(embeddings_path, mmap_mode="r")
    rows, cols, dim = embeddings.shape
    path = embeddings_path.with_name("labels.npy")
    labels = np.lib.format.open_memmap(path, mode="w+", dtype=np.int32, shape=(rows, cols))
    step = max(1, _LABEL_ROWS_PIXELS // max(cols, 1))
    summary: dict[str, Any] = {}
    for start in range(0, rows, step):
        block = np.asarray(embeddings[start : start + step]).reshape(-1, dim)
        assigned = await analysis.assign(block, clustering)
        labels[start : start + step] = assigned.labels.reshape(-1, cols)
        summary = assigned.clustering
    labels.flush()
    del labels, embeddings
    return path, summary


async def _receive_cube(
    request: Request, folder: Path, max_bytes: int, max_pixels: int
) -> tuple[Path, Path | None, str | None]:
    """The upload written into ``folder`` as it arrives: ``(data file, ENVI header or None,
    the form's wavelengths or None)``.

    Raises:
        PayloadTooLarge: more than ``max_bytes``, or a raw .npy whose header declares more
            than ``max_pixels`` pixels (refused before the rest of it is read).
        UnsupportedMediaType: neither application/x-npy nor multipart/form-data.
        InvalidInput: a malformed form, or one without the file ``cube``.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes, f"the body has {int(declared)} bytes")
    kind = media_type(request)
    receive = _limited(request.receive, max_bytes)
    if kind == NPY_MEDIA_TYPE:
        data = folder / "cube.npy"
        await _write(data, Request(request.scope, receive).stream(), max_pixels=max_pixels)
        return data, None, None
    if kind != "multipart/form-data":
        raise UnsupportedMediaType(
            f"Content-Type {kind!r} is not accepted here; send {NPY_MEDIA_TYPE} or "
            "multipart/form-data"
        )
    try:
        form = await Request(request.scope, receive).form(max_files=2, max_fields=8)
    except HTTPException as exc:  # starlette: malformed multipart
        raise InvalidInput(
            f"the multipart body is malformed ({exc.detail})", field="body"
        ) from None
    try:
        cube, header = form.get("cube"), form.get("header")
        if not isinstance(cube, UploadFile):
            raise InvalidInput(
                "the form has no file 'cube'; send the .npy or ENVI data file as 'cube'",
                field="cube",
            )
        if header is not None and not isinstance(header, UploadFile):
            raise InvalidInput("'header' must be a file (the ENVI .hdr)", field="header")
        data = folder / ("cube.img" if header is not None else "cube.npy")
        await _write(data, _chunks(cube))
        header_path = None
        if header is not None:
            header_path = folder / "cube.hdr"
            await _write(header_path, _chunks(header))
        wavelengths = form.get("wavelengths")
        if wavelengths is not None and not isinstance(wavelengths, str):
            raise InvalidInput("'wavelengths' must be a text field", field="wavelengths")
        return data, header_path, wavelengths
    finally:
        await form.close()


def _too_large(max_bytes: int, what: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{what}; a cube upload takes at most {max_bytes} bytes (max_cube_bytes)", field="body"
    )


def _limited(receive: Receive, max_bytes: int) -> Receive:
    """``receive`` that raises PayloadTooLarge once the body passes ``max_bytes``."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise _too_large(max_bytes, "the body is larger")
        return message

    return limited


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    await upload.seek(0)
    while chunk := await upload.read(_COPY_BYTES):
        yield chunk


async def _write(
    path: Path, chunks: AsyncIterator[bytes], *, max_pixels: int | None = None
) -> None:
    """``chunks`` into ``path``; with ``max_pixels``, a .npy header declaring more pixels is
    refused as soon as it has arrived."""
    head = b""
    with open(path, "wb") as handle:
        async for chunk in chunks:
            if max_pixels is not None and len(head) < _NPY_HEAD_BYTES:
                head += chunk
                pixels = npy_cube_pixels(head)
                if pixels is not None:
                    check_pixels(*pixels, max_pixels)
                    max_pixels = None
            handle.write(chunk)

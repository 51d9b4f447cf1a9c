"""Hyperspectral cubes -> per-pixel embeddings, streamed: the cube is read lazily (a memmap),
a chunk of pixels at a time is preprocessed and embedded through the bounded embed batcher in
its background mode (a full queue is waited out, never 429, so interactive requests keep
priority), and each chunk's embeddings are written into the answer's ``.npy`` file on disk.
Memory per cube request stays near one chunk (two with the read-ahead) plus the pages of the
answer file being written; no whole-cube copy is ever made.

NaN values follow the rules of every other body: refused (422 naming ``cube[row][col][band]``)
unless ``nan_as_missing``, then hidden from the encoder like ``missing`` bands. Bands an ENVI
header flags bad (``bbl``) are always hidden. No FastAPI here: the route hands over the files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import InvalidInput, PayloadTooLarge
from .inference import Inference, ModelInput
from .inputs import SpectraBody, nan_as_missing, to_model_unit
from .uploads import check_unit

if TYPE_CHECKING:
    from wavemae.data.cubes import Cube

__all__ = [
    "CubeEmbedding",
    "CubeOptions",
    "check_pixels",
    "embed_cube",
    "open_cube",
    "parse_wavelengths",
]

_NUMBER_SEPARATORS = re.compile(r"[\s,;\[\]]+")


@dataclass(frozen=True)
class CubeOptions:
    """How to read a cube, from the request.

    Attributes:
        wavelengths: ``(bands,)`` the cube's axis in ``unit`` (overrides an ENVI header's), or
            None: the header's, else the model's grid.
        unit: the unit of the axis (nm, um, cm-1), or None: the header's, else the model's.
        nan_as_missing: NaN values are hidden bands instead of a 422.
    """

    wavelengths: np.ndarray | None = None
    unit: str | None = None
    nan_as_missing: bool = False

    @classmethod
    def from_request(
        cls, wavelengths: str | None, unit: str | None, nan_as_missing: bool
    ) -> CubeOptions:
        """Options from the request's text fields.

        Raises:
            InvalidInput: wavelengths that are not numbers, or an unknown unit.
        """
        return cls(parse_wavelengths(wavelengths), check_unit(unit), nan_as_missing)


def check_pixels(rows: int, cols: int, max_pixels: int) -> None:
    """Raises PayloadTooLarge (naming ``max_cube_pixels``) for more than ``max_pixels``."""
    if rows * cols > max_pixels:
        raise PayloadTooLarge(
            f"the cube has {rows} x {cols} = {rows * cols} pixels; at most "
            f"{max_pixels} per request (max_cube_pixels)",
            field="cube",
        )


def parse_wavelengths(text: str | None) -> np.ndarray | None:
    """``"1100, 1102.5, ..."`` (commas, spaces or a JSON list) -> float64 array; ``""``/None ->
    None.

    Raises:
        InvalidInput: an item that is not a finite number.
    """
    if text is None or not text.strip():
        return None
    items = [t for t in _NUMBER_SEPARATORS.split(text) if t]
    values = []
    for i, item in enumerate(items):
        try:
            value = float(item)
        except ValueError:
            value = float("nan")
        if not np.isfinite(value):
            raise InvalidInput(
                f"wavelengths[{i}]={item[:40]!r} is not a finite number", field=f"wavelengths[{i}]"
            )
        values.append(value)
    if not values:
        raise InvalidInput("wavelengths holds no number", field="wavelengths")
    return np.array(values, dtype=np.float64)


def open_cube(data: Path, header: Path | None = None, *, name: str | None = None) -> Cube:
    """The uploaded cube: a 3-D ``.npy`` file, or ENVI ``data`` described by ``header``.

    Raises:
        InvalidInput: the file(s) cannot be read as a cube (the message says why).
    """
    from wavemae.data import SpectraFormatError
    from wavemae.data.cubes import open_envi_cube, open_npy_cube

    try:
        if header is None:
            return open_npy_cube(data, name=name)
        return open_envi_cube(header, data, name=name)
    except SpectraFormatError as exc:
        field = "header" if header is not None and "header" in exc.problem else "cube"
        raise InvalidInput(f"the cube upload: {exc.problem}", field=field) from None


@dataclass(frozen=True)
class CubeEmbedding:
    """The answer to a cube: ``path`` holds ``(rows, cols, latent_dim)`` float32 as ``.npy``.

    Attributes:
        coverage: the fraction of the model's grid the cube's wavelengths cover.
        warnings: doubts that hold for every pixel (low coverage, coarse grid, hidden bands).
        pixels_with_missing: pixels with NaN bands hidden from the encoder.
    """

    path: Path
    shape: tuple[int, int, int]
    coverage: float
    warnings: list[str]
    pixels_with_missing: int

    def headers(self, model_id: str) -> dict[str, str]:
        """What the answer says besides the array, as (ASCII) HTTP headers."""
        return {
            "X-WaveMAE-Model": model_id,
            "X-WaveMAE-Coverage": f"{self.coverage:.6g}",
            "X-WaveMAE-Missing-Pixels": str(self.pixels_with_missing),
            "X-WaveMAE-Warnings": json.dumps(self.warnings, ensure_ascii=True),
        }


@dataclass(frozen=True)
class _Axis:
    """The cube's bands on the model's side: ``order`` (file band index of each position of
    ``wavelengths``, ascending in the model's unit; None = file order), ``wavelengths``
    (None = the model's grid), ``bad`` (``(bands,)`` bool in file order, always hidden; or
    None)."""

    order: np.ndarray | None
    wavelengths: np.ndarray | None
    bad: np.ndarray | None
    unit: str | None = None  # the caller's unit, for messages (None: the model's)


def _axis(cube: Cube, options: CubeOptions, inference: Inference) -> _Axis:
    """Check the cube's axis against the model and put it in the model's unit, ascending.

    Raises:
        InvalidInput: a wavelength count that is not the band count, no wavelengths for a cube
            off the model's grid, every band flagged bad, an axis that is not monotonic, or
            one in another unit than the one named (see :func:`~.inputs.to_model_unit`).
    """
    bands = cube.shape[2]
    wavelengths, source = options.wavelengths, "wavelengths"
    if wavelengths is None and cube.wavelengths is not None:
        wavelengths, source = cube.wavelengths, "the header's 'wavelength' list"
    unit = options.unit or (cube.unit if options.wavelengths is None else None)
    bad = cube.bad_bands
    if bad is not None and bad.all():
        raise InvalidInput("the header's 'bbl' flags every band bad", field="header")
    if wavelengths is None:
        if bands != inference.seq_len:
            raise InvalidInput(
                f"the cube has {bands} bands but the model's grid has seq_len="
                f"{inference.seq_len} points; send 'wavelengths' (one per band) to resample",
                field="wavelengths",
            )
        if unit is not None and unit != inference.unit:
            raise InvalidInput(
                f"unit={unit!r} but no wavelengths: a cube without wavelengths is on the "
                f"model's grid, in {inference.unit}",
                field="unit",
            )
        return _Axis(None, None, bad)
    if wavelengths.size != bands:
        raise InvalidInput(
            f"{source} has {wavelengths.size} values but the cube has {bands} bands",
            field="wavelengths",
        )
    # The probe carries each band's file index through the unit conversion (which may reverse).
    probe = SpectraBody(np.arange(bands, dtype=np.float64)[None, :], wavelengths, unit=unit)
    converted, _ = to_model_unit(probe, inference.unit, inference.grid, relative=inference.relative)
    order, axis = converted.values[0].astype(np.int64), converted.wavelengths
    assert axis is not None
    if axis.size > 1 and np.all(np.diff(axis) < 0):
        order, axis = order[::-1], axis[::-1]
    if axis.size > 1 and not np.all(np.diff(axis) > 0):
        raise InvalidInput(
            f"{source} is neither increasing nor decreasing (or repeats a value)",
            field="wavelengths",
        )
    identity = np.array_equal(order, np.arange(bands))
    return _Axis(None if identity else order, np.ascontiguousarray(axis), bad, unit)


def _blocks(rows: int, cols: int, chunk_pixels: int) -> Iterator[tuple[slice, slice]]:
    """Row-major blocks of at most ``chunk_pixels`` pixels: whole rows when a row fits, else
    pieces of one row."""
    if cols <= chunk_pixels:
        step = chunk_pixels // cols
        for r in range(0, rows, step):
            yield slice(r, min(rows, r + step)), slice(0, cols)
        return
    for r in range(rows):
        for c in range(0, cols, chunk_pixels):
            yield slice(r, r + 1), slice(c, min(cols, c + chunk_pixels))


@dataclass(frozen=True)
class _Chunk:
    rows: slice
    cols: slice
    values: np.ndarray  # (n, bands) finite, in axis order
    missing: list[list[int]] | None
    pixels_with_missing: int


def _read_chunk(cube: Cube, axis: _Axis, block: tuple[slice, slice], allow_nan: bool) -> _Chunk:
    """One block of pixels, read, checked and ordered (in a worker thread).

    Raises:
        InvalidInput: an infinite value, a NaN without ``allow_nan``, or a pixel without one
            finite value; each named ``cube[row][col][band]`` in the file's band order.
    """
    rows, cols = block
    raw = cube.read(rows, cols)  # (n, bands) float64, file order: this chunk's one copy
    width = cols.stop - cols.start

    def where(flat: int, band: int | None = None) -> str:
        r, c = rows.start + flat // width, cols.start + flat % width
        return f"cube[{r}][{c}]" + ("" if band is None else f"[{band}]")

    if axis.bad is not None:
        raw[:, axis.bad] = 0.0  # what a bad band holds is never looked at
    nan = np.isnan(raw)
    if np.isinf(raw).any():
        pixel, band = (int(v) for v in np.argwhere(np.isinf(raw))[0])
        at = where(pixel, band)
        raise InvalidInput(f"{at} is infinite; values must be finite numbers", field=at)
    if nan.any() and not allow_nan:
        pixel, band = (int(v) for v in np.argwhere(nan)[0])
        at = where(pixel, band)
        raise InvalidInput(
            f"{at} is NaN, not a finite number; send nan_as_missing=true to treat NaN values "
            "as missing bands",
            field=at,
        )
    with_nan = int(nan.any(axis=1).sum())
    if axis.bad is not None:
        raw[:, axis.bad] = np.nan
        nan[:, axis.bad] = True
    empty = nan.all(axis=1)
    if empty.any():
        at = where(int(np.argmax(empty)))
        raise InvalidInput(f"{at} has no finite value", field=at)
    values = raw if axis.order is None else raw[:, axis.order]
    values, missing = nan_as_missing(values, None, True, "cube")  # NaN -> hidden bands
    return _Chunk(rows, cols, values, missing, with_nan)


async def _embed_in_batches(inference: Inference, model_input: ModelInput) -> np.ndarray:
    """The chunk's embeddings, queued one batch (``max_batch_size`` rows) at a time with at
    most ``2 x workers`` batches queued or running: a request arriving meanwhile waits behind
    that many cube batches, not behind the whole chunk, and no batch waits long enough to
    time out on a busy server. Background submits: a full queue is waited out, never 429."""
    batcher = inference.embedder
    size = batcher.max_batch_size
    in_flight = asyncio.Semaphore(2 * batcher.workers)
    x, visible = model_input.x, model_input.visible

    async def one(start: int) -> np.ndarray:
        rows = slice(start, start + size)
        async with in_flight:
            return await inference.embed_model_input(
                x[rows], visible=None if visible is None else visible[rows], background=True
            )

    tasks = [asyncio.ensure_future(one(start)) for start in range(0, len(x), size)]
    try:
        return np.concatenate(await asyncio.gather(*tasks))
    finally:  # one failed (or the request was cancelled): the rest never reach the engine
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def embed_cube(
    inference: Inference,
    cube: Cube,
    options: CubeOptions,
    out_path: Path,
    *,
    max_pixels: int,
    chunk_pixels: int,
    abandoned: Callable[[], Awaitable[bool]] | None = None,
) -> CubeEmbedding | None:
    """Embed every pixel of ``cube`` (a :class:`wavemae.data.cubes.Cube`) into ``out_path``.

    Args:
        inference: the served model.
        cube: the lazily read cube.
        options: the request's wavelengths, unit and NaN rule.
        out_path: the ``.npy`` file to write, ``(rows, cols, latent_dim)`` float32.
        max_pixels: larger cubes are refused before anything is read.
        chunk_pixels: pixels read, preprocessed and queued at once.
        abandoned: checked between chunks; True (the client has gone) stops the work.

    Returns:
        The answer, or None when ``abandoned`` said so.

    Raises:
        PayloadTooLarge: more than ``max_pixels`` pixels.
        InvalidInput: see :func:`_axis`, :func:`_read_chunk` and
            :meth:`~.inference.Inference.preprocess_sync` (coverage, unit).
        NotReady, InferenceFailed: from the batcher.
    """
    rows, cols, _ = cube.shape
    check_pixels(rows, cols, max_pixels)
    axis = _axis(cube, options, inference)
    blocks = list(_blocks(rows, cols, chunk_pixels))
    out = np.lib.format.open_memmap(
        out_path, mode="w+", dtype=np.float32, shape=(rows, cols, inference.latent_dim)
    )

    def read(i: int) -> asyncio.Task[_Chunk]:
        return asyncio.ensure_future(
            asyncio.to_thread(_read_chunk, cube, axis, blocks[i], options.nan_as_missing)
        )

    coverage, warnings, with_missing = 1.0, [], 0
    ahead = read(0)
    try:
        for i in range(len(blocks)):
            chunk = await ahead
            if i + 1 < len(blocks):
                ahead = read(i + 1)  # the next block is read while this one is embedded
            model_input = await inference.preprocess(
                chunk.values, axis.wavelengths, field="cube", missing=chunk.missing, unit=axis.unit
            )
            embeddings = await _embed_in_batches(inference, model_input)
            n_rows, n_cols = chunk.rows.stop - chunk.rows.start, chunk.cols.stop - chunk.cols.start
            out[chunk.rows, chunk.cols] = embeddings.reshape(n_rows, n_cols, -1)
            with_missing += chunk.pixels_with_missing
            if i == 0:
                coverage = (
                    float(model_input.coverage[0]) if model_input.coverage is not None else 1.0
                )
                warnings = list((model_input.warnings or [[]])[0])
            if abandoned is not None and await abandoned():
                return None
    finally:
        if not ahead.done():
            ahead.cancel()
        with contextlib.suppress(BaseException):
            await ahead
        out.flush()
        del out
    if axis.bad is not None:
        warnings.append(
            f"{int(axis.bad.sum())} bands flagged bad by the header (bbl) are hidden from the "
            "encoder"
        )
    if with_missing:
        warnings.append(f"{with_missing} pixels have NaN bands, hidden from the encoder")
    return CubeEmbedding(
        out_path, (rows, cols, inference.latent_dim), coverage, warnings, with_missing
    )

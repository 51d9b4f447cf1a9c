"""Hyperspectral cubes opened lazily: a ``(rows, cols, bands)`` view onto the file, read a
block of pixels at a time, so that a cube larger than memory can be embedded in chunks.

Two formats: a 3-D ``.npy`` (numpy's memmap; it carries no wavelengths) and an ENVI cube
(``.hdr`` + data file, through ``spectral``'s memmap, any interleave; wavelengths, their unit
and the bad band list from the header). :func:`wavemae.data.read_envi` reads a whole cube into
memory as :class:`~wavemae.data.Spectra`; this module never does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wavemae.data.parsing import guess_unit, unit_from_text
from wavemae.data.readers import npy_header
from wavemae.data.spectra import SpectraFormatError

__all__ = ["Cube", "npy_cube_pixels", "open_envi_cube", "open_npy_cube"]


@dataclass(frozen=True)
class Cube:
    """A hyperspectral cube on disk.

    Attributes:
        data: ``(rows, cols, bands)`` read-only memmap (a strided view for ENVI BSQ/BIL files);
            indexing it reads only the pixels asked for.
        wavelengths: ``(bands,)`` float64 in file order, or None (a ``.npy`` carries none).
        unit: the unit of ``wavelengths`` named by the file, or None.
        bad_bands: ``(bands,)`` bool, True = flagged bad by the file (ENVI ``bbl``), or None.
        name: the file name, for messages.
    """

    data: np.ndarray
    wavelengths: np.ndarray | None = None
    unit: str | None = None
    bad_bands: np.ndarray | None = None
    name: str = "cube"

    @property
    def shape(self) -> tuple[int, int, int]:
        rows, cols, bands = self.data.shape
        return int(rows), int(cols), int(bands)

    def read(self, rows: slice, cols: slice) -> np.ndarray:
        """The pixels of ``data[rows, cols]`` -> ``(n_pixels, bands)`` float64, row-major: one
        copy of that block (file order of the bands)."""
        block = np.asarray(self.data[rows, cols], dtype=np.float64)
        return block.reshape(-1, block.shape[-1])


def _check_array(data: np.ndarray, path: Path) -> None:
    if data.dtype.kind not in "fiu":
        raise SpectraFormatError(path, f"the cube has dtype {data.dtype}; send float32")
    if data.ndim != 3:
        raise SpectraFormatError(
            path, f"the array has shape {data.shape}; a cube is (rows, cols, bands)"
        )
    if 0 in data.shape:
        raise SpectraFormatError(path, f"the cube has shape {data.shape}; it is empty")


def open_npy_cube(path: str | Path, *, name: str | None = None) -> Cube:
    """A 3-D ``.npy`` file as a :class:`Cube` (memory-mapped, nothing read yet).

    Raises:
        SpectraFormatError: not a .npy file, pickled objects, a non-numeric dtype, not 3-D,
            empty, or a file shorter than its header declares.
    """
    path = Path(path)
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        problem = "a numpy.save file holding an array (no pickled objects)"
        raise SpectraFormatError(path, f"the cube is not {problem} ({exc})") from None
    if not isinstance(data, np.ndarray):  # np.load of an .npz archive
        raise SpectraFormatError(path, "the cube is an .npz archive; send one .npy array")
    _check_array(data, path)
    return Cube(data, name=name or path.name)


def npy_cube_pixels(head: bytes) -> tuple[int, int] | None:
    """``(rows, cols)`` of a 3-D array from the first bytes of its ``.npy`` file, or None while
    ``head`` is too short to tell (or it is no 3-D .npy: opening the whole file will say so)."""
    try:
        shape, _, _, _ = npy_header(head)
    except ValueError:  # truncated or not a .npy header
        return None
    if len(shape) != 3:
        return None
    return int(shape[0]), int(shape[1])


def open_envi_cube(header: str | Path, data: str | Path, *, name: str | None = None) -> Cube:
    """An ENVI cube (``header`` .hdr + its ``data`` file) as a :class:`Cube`, read through
    ``spectral``'s memmap (any interleave, byte order and header offset it supports).

    The wavelengths are the header's ``wavelength`` list (None without one), their unit its
    ``wavelength units`` (or guessed from the range), bad bands its ``bbl`` zeros.

    Raises:
        SpectraFormatError: a header ``spectral`` cannot parse, a data file shorter than the
            header declares, a non-numeric data type, or a ``wavelength`` or ``bbl`` list that
            is not one number per band.
    """
    import spectral.io.envi as envi

    header = Path(header)
    try:
        image = envi.open(str(header), str(data))
        cube = image.open_memmap(interleave="bip", writable=False)
    except Exception as exc:  # spectral raises its own, ValueError and OS errors on bad pairs
        raise SpectraFormatError(header, f"the ENVI cube could not be read ({exc})") from None
    _check_array(cube, header)
    bands = cube.shape[2]
    meta = image.metadata
    wavelengths = _band_list(meta, "wavelength", bands, header)
    unit = None
    if wavelengths is not None:
        unit = unit_from_text(str(meta.get("wavelength units", ""))) or guess_unit(wavelengths)
    bbl = _band_list(meta, "bbl", bands, header)
    bad = None if bbl is None else bbl == 0
    return Cube(cube, wavelengths, unit, bad, name=name or header.name)


def _band_list(meta: dict, key: str, bands: int, header: Path) -> np.ndarray | None:
    """The header's per-band list ``key`` as float64, or None when absent."""
    if key not in meta:
        return None
    items = meta[key] if isinstance(meta[key], list) else [meta[key]]
    try:
        values = np.array([float(v) for v in items], dtype=np.float64)
    except ValueError:
        raise SpectraFormatError(header, f"the header's '{key}' list is not numeric") from None
    if values.size != bands:
        raise SpectraFormatError(
            header, f"the header's '{key}' list has {values.size} values for {bands} bands"
        )
    if not np.all(np.isfinite(values)):
        raise SpectraFormatError(header, f"the header's '{key}' list holds NaN or inf")
    return values

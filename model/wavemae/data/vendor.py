"""Binary instrument formats: Bruker OPUS, Thermo/Galactic SPC, Thermo OMNIC SPA, ENVI cubes.

OPUS, SPC and ENVI go through maintained libraries (``brukeropus``, ``spc-io``, ``spectral``),
imported inside the reader that needs them. OMNIC ``.spa`` is read here, after the layout
that SpectroChemPy documents and pynir's ``spaReader`` also follows (pynir's reader pairs an
OMNIC file's descending wavenumber axis with its values in the wrong order and needs pandas;
this one does neither).

Every reader returns a :class:`~wavemae.data.spectra.Spectra` on a strictly increasing grid
and raises :class:`~wavemae.data.spectra.SpectraFormatError` naming the file and the problem,
never a library's own exception.
"""

from __future__ import annotations

import contextlib
import io
import logging
import struct
from pathlib import Path
from typing import Any

import numpy as np

from wavemae.data.parsing import guess_unit, ordered_grid
from wavemae.data.spectra import Spectra, SpectraFormatError

__all__ = ["OPUS_MAGIC", "SPA_MAGIC", "read_envi", "read_opus", "read_spa", "read_spc"]

OPUS_MAGIC = b"\n\n\xfe\xfe"
SPA_MAGIC = b"Spectral Data File"


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpectraFormatError(path, f"cannot read the file: {exc.strerror or exc}") from None
    if not raw:
        raise SpectraFormatError(path, "the file is empty")
    return raw


def _spectrum(path: Path, x: np.ndarray, y: np.ndarray, unit: str, meta: dict[str, Any]) -> Spectra:
    y = np.asarray(y, dtype=np.float64).reshape(len(y) if y.ndim == 2 else 1, -1)
    if y.shape[1] != x.size:
        raise SpectraFormatError(path, f"{x.size} axis points for {y.shape[1]} values")
    if y.shape[1] < 2:
        raise SpectraFormatError(path, f"the spectrum has {y.shape[1]} points; need >= 2")
    if not np.all(np.isfinite(y)):
        raise SpectraFormatError(path, "the spectrum holds NaN or inf values")
    grid, values = ordered_grid(path, np.asarray(x, dtype=np.float64), y)
    ids = [path.stem] if len(values) == 1 else [f"{path.stem}-{k}" for k in range(len(values))]
    return Spectra(values, grid, unit, ids=ids, metadata=[dict(meta) for _ in ids])


# --------------------------------------------------------------------------- Bruker OPUS

# OPUS data blocks in order of preference, and what they hold.
_OPUS_QUANTITIES = {
    "a": "absorbance",
    "r": "reflectance",
    "t": "transmittance",
    "logr": "log reflectance",
    "km": "kubelka-munk",
    "atr": "atr",
    "ra": "raman",
    "e": "emission",
    "sm": "sample single channel",
    "rf": "reference single channel",
}
# DXU codes -> unit (LGW, log wavenumber, is exponentiated first)
_OPUS_UNITS = {"WN": "cm-1", "LGW": "cm-1", "MI": "um", "NM": "nm"}


def read_opus(path: str | Path, *, quantity: str | None = None) -> Spectra:
    """Read a Bruker OPUS file (``sample.0``, ``sample.1`` ...) through ``brukeropus``.

    Args:
        quantity: which data block to read, by its OPUS key (``"a"`` absorbance, ``"r"``
            reflectance, ``"t"`` transmittance, ``"sm"`` sample single channel ...); None picks
            the first present in that order.

    Returns:
        One spectrum; metadata ``quantity``, ``opus_block`` and, where the file has them,
        ``sample`` (SNM), ``instrument`` (INS) and ``measured_at`` (ISO date).

    Raises:
        SpectraFormatError: not an OPUS file, no spectral data block (or not the requested
            one), an x unit that is not a wavenumber or wavelength.
    """
    from brukeropus import OPUSFile

    path = Path(path)
    if not _read_bytes(path).startswith(OPUS_MAGIC):
        raise SpectraFormatError(path, "not a Bruker OPUS file (its first bytes are wrong)")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # brukeropus prints some warnings
            opus = OPUSFile(str(path))
    except Exception as exc:  # the parser fails in assorted ways on broken files
        raise SpectraFormatError(path, f"the OPUS file could not be parsed ({exc})") from None
    present = [k for k in _OPUS_QUANTITIES if k in opus.data_keys]
    if quantity is not None:
        if quantity not in opus.data_keys:
            raise SpectraFormatError(
                path, f"no {quantity!r} data block; the file holds {sorted(opus.data_keys)}"
            )
        present = [quantity]
    if not present:
        raise SpectraFormatError(
            path, f"no spectral data block; the file holds {sorted(opus.all_data_keys) or 'none'}"
        )
    key = present[0]
    data = getattr(opus, key)
    dxu = str(data.params.dxu).strip().upper()
    if dxu not in _OPUS_UNITS:
        raise SpectraFormatError(
            path, f"x unit DXU={dxu!r} of block {key!r} is not a wavenumber or wavelength"
        )
    x = np.exp(data.x) if dxu == "LGW" else np.asarray(data.x)
    meta: dict[str, Any] = {"quantity": _OPUS_QUANTITIES.get(key, key), "opus_block": key}
    for param, label in (("snm", "sample"), ("ins", "instrument")):
        if param in opus.params.keys():  # noqa: SIM118 (Parameters is no dict)
            meta[label] = str(getattr(opus.params, param)).strip()
    with contextlib.suppress(Exception):
        meta["measured_at"] = data.datetime.isoformat()
    return _spectrum(path, x, np.asarray(data.y), _OPUS_UNITS[dxu], meta)


# --------------------------------------------------------------------------- Galactic SPC

_SPC_UNITS = {"XWAVEN": "cm-1", "XRAMANS": "cm-1", "XUMETR": "um", "XNMETR": "nm"}


def read_spc(path: str | Path) -> Spectra:
    """Read a Thermo/Galactic ``.spc`` file (new LSB format) through ``spc-io``.

    Every subfile becomes one spectrum; subfiles must share one x axis. The x unit comes
    from the file's ``fxtype`` (wavenumber, Raman shift, µm, nm); an arbitrary axis
    (``XARB``) gets its unit guessed from the range.

    Returns:
        ``Spectra`` with ids ``<stem>`` (one subfile) or ``<stem>-<k>``; metadata ``x_type``,
        ``y_type`` and the file's log-book text entries.

    Raises:
        SpectraFormatError: not an SPC file or an old/MSB variant, subfiles on different axes,
            an x unit that is not spectral (time, mass, ...).
    """
    from spc_io import SPC

    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 512 or raw[1] not in (0x4B, 0x4C, 0x4D):
        raise SpectraFormatError(path, "not a Galactic SPC file (its version byte is wrong)")
    if raw[1] != 0x4B:
        variant = "old (0x4D)" if raw[1] == 0x4D else "big-endian (0x4C)"
        raise SpectraFormatError(path, f"{variant} SPC files are not supported; re-save as new")
    logger = logging.getLogger("spc_io")
    level = logger.level
    logger.setLevel(logging.ERROR)  # spc-io warns on padding bytes many writers leave
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # spc-io prints arrays on errors
            spc = SPC.from_bytes_io(io.BytesIO(raw))
        subs = list(spc)
        axes = [np.asarray(sub.xarray, dtype=np.float64) for sub in subs]
        values = [np.asarray(sub.yarray, dtype=np.float64) for sub in subs]
    except Exception as exc:
        raise SpectraFormatError(path, f"the SPC file could not be parsed ({exc})") from None
    finally:
        logger.setLevel(level)
    if not subs:
        raise SpectraFormatError(path, "the SPC file holds no subfiles")
    for k, axis in enumerate(axes[1:], start=1):
        if axis.shape != axes[0].shape or not np.allclose(axis, axes[0]):
            raise SpectraFormatError(path, f"subfile {k} has a different x axis than subfile 0")
    xtype = str(spc.xtype)
    if xtype == "XARB":
        unit = guess_unit(axes[0])
    elif xtype in _SPC_UNITS:
        unit = _SPC_UNITS[xtype]
    else:
        raise SpectraFormatError(path, f"x axis type {xtype} is not a wavenumber or wavelength")
    meta: dict[str, Any] = {"x_type": xtype, "y_type": str(spc.ytype)}
    with contextlib.suppress(Exception):
        meta.update({str(k): str(v) for k, v in dict(spc.log_book.text).items()})
    return _spectrum(path, axes[0], np.vstack(values), unit, meta)


# --------------------------------------------------------------------------- OMNIC SPA

_SPA_UNITS = {1: "cm-1", 3: "nm", 4: "um", 32: "cm-1"}  # 32: Raman shift
_SPA_QUANTITIES = {
    11: "reflectance",
    12: "log(1/R)",
    16: "transmittance",
    17: "absorbance",
    20: "kubelka-munk",
    21: "reflectance",
    22: "detector signal",
}


def read_spa(path: str | Path) -> Spectra:
    """Read a Thermo OMNIC ``.spa`` spectrum.

    The file's directory (16-byte records from offset 304) points at the spectrum header
    (key 2: point count, x unit, y quantity, first and last x) and the float32 values (key 3).

    Returns:
        One spectrum; metadata ``title`` (the name OMNIC stored), ``quantity``.

    Raises:
        SpectraFormatError: not an SPA file, no header or data record, a point count that
            disagrees with the data, an x unit that is not spectral.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if not raw.startswith(SPA_MAGIC):
        raise SpectraFormatError(path, "not an OMNIC .spa file (no 'Spectral Data File' mark)")
    try:
        title = raw[30:286].split(b"\x00", 1)[0].decode("latin-1").strip()
        header = values = None
        for position in range(304, len(raw) - 16, 16):
            key = raw[position]
            offset, size = struct.unpack_from("<II", raw, position + 2)
            if key == 2:
                n_points, x_key, y_key = (
                    struct.unpack_from("<I", raw, offset + 4)[0],
                    raw[offset + 8],
                    raw[offset + 12],
                )
                first_x, last_x = struct.unpack_from("<ff", raw, offset + 16)
                header = (n_points, x_key, y_key, first_x, last_x)
            elif key == 3:
                values = np.frombuffer(raw, dtype="<f4", count=size // 4, offset=offset)
            elif key in (0, 1):
                break
    except (struct.error, ValueError, IndexError) as exc:
        raise SpectraFormatError(path, f"the file is truncated ({exc})") from None
    if header is None or values is None:
        missing = "spectrum header" if header is None else "spectrum data"
        raise SpectraFormatError(path, f"the .spa file has no {missing} record")
    n_points, x_key, y_key, first_x, last_x = header
    if values.size != n_points:
        raise SpectraFormatError(
            path, f"the header announces {n_points} points but the data hold {values.size}"
        )
    if x_key not in _SPA_UNITS:
        raise SpectraFormatError(path, f"x axis code {x_key} is not a wavenumber or wavelength")
    x = np.linspace(first_x, last_x, n_points)  # values run from first_x to last_x
    meta = {"title": title or path.stem, "quantity": _SPA_QUANTITIES.get(y_key, "intensity")}
    return _spectrum(path, x, values, _SPA_UNITS[x_key], meta)


# --------------------------------------------------------------------------- ENVI cubes


def envi_header_for(path: Path) -> Path | None:
    """The ``.hdr`` that describes ``path`` (itself, ``x.hdr`` or ``x.img.hdr``), or None."""
    if path.suffix.lower() == ".hdr":
        return path
    for candidate in (path.with_suffix(".hdr"), path.with_name(path.name + ".hdr")):
        if candidate.exists():
            return candidate
    return None


def read_envi(path: str | Path, *, unit: str | None = None) -> Spectra:
    """Read an ENVI hyperspectral cube (``.hdr`` + data file) through ``spectral``.

    Each pixel becomes one spectrum, row-major; ``image_shape`` records ``(rows, cols)``.
    The grid is the header's ``wavelength`` list, its unit ``wavelength units``
    (Nanometers, Micrometers, cm-1 ...) or ``unit=``.

    Raises:
        SpectraFormatError: no header, a header or data file ``spectral`` cannot read, no
            ``wavelength`` list, or one whose length differs from the band count.
    """
    import spectral.io.envi as envi

    from wavemae.data.parsing import unit_from_text

    path = Path(path)
    header = envi_header_for(path)
    if header is None:
        raise SpectraFormatError(path, "no ENVI header (.hdr) beside the file")
    try:
        image = envi.open(str(header))
        cube = np.asarray(image.open_memmap(writable=False))
    except Exception as exc:  # spectral raises its own and OS errors on broken pairs
        raise SpectraFormatError(header, f"the ENVI cube could not be read ({exc})") from None
    meta = image.metadata
    if "wavelength" not in meta:
        raise SpectraFormatError(header, "the header has no 'wavelength' list")
    try:
        grid = np.array([float(w) for w in meta["wavelength"]], dtype=np.float64)
    except ValueError as exc:
        raise SpectraFormatError(header, f"the 'wavelength' list is not numeric ({exc})") from None
    rows, cols, bands = cube.shape
    if grid.size != bands:
        raise SpectraFormatError(header, f"{grid.size} wavelengths for {bands} bands")
    values = np.array(cube.reshape(rows * cols, bands), dtype=np.float32)  # one copy
    if not np.all(np.isfinite(values)):
        raise SpectraFormatError(path, "the cube holds NaN or inf values")
    grid, values = ordered_grid(header, grid, values)
    chosen = unit or unit_from_text(str(meta.get("wavelength units", ""))) or guess_unit(grid)
    return Spectra(values, grid, chosen, image_shape=(rows, cols))

"""One entry point for spectra files: :func:`read_spectra` detects the format and reads it.

Formats (:data:`FORMATS`), told apart by content first and by name second:

- ``csv``: delimited tables, wide or long (:mod:`wavemae.data.delimited`);
- ``npy`` / ``npz`` (:func:`read_npy`);
- ``jcamp``: JCAMP-DX ``.jdx``/``.dx``/``.jcm`` (through the ``jcamp`` package);
- ``innospectra``: InnoSpectra / TI NIRScan CSV exports;
- ``opus``: Bruker OPUS (``brukeropus``); ``spc``: Thermo/Galactic SPC (``spc-io``);
  ``spa``: Thermo OMNIC; ``envi``: ENVI hyperspectral cubes (``spectral``);
- a folder: every readable file in it, stacked (they must share one grid).

Every reader returns a :class:`~wavemae.data.spectra.Spectra` with a strictly increasing
grid (descending files are reordered) and raises :class:`SpectraFormatError` (a
``ValueError``) naming the file, the line where it applies, and the problem.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from wavemae.data.delimited import parse_csv, parse_csv_wide, read_csv, read_csv_wide
from wavemae.data.parsing import decode_text, guess_unit, ordered_grid
from wavemae.data.spectra import Spectra, SpectraFormatError, normalize_unit
from wavemae.data.vendor import OPUS_MAGIC, SPA_MAGIC, envi_header_for
from wavemae.data.writers import write_csv_wide, write_npz

__all__ = [
    "FORMATS",
    "detect_format",
    "npy_header",
    "parse_csv_wide",
    "read_csv_wide",
    "read_npy",
    "read_spectra",
    "write_csv_wide",
    "write_npz",
]

#: Format names accepted by ``read_spectra(format=...)``.
FORMATS = ("csv", "npy", "npz", "jcamp", "innospectra", "opus", "spc", "spa", "envi")
_JCAMP_SUFFIXES = (".jdx", ".dx", ".jcm")
_TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
_ENVI_DATA_SUFFIXES = (".img", ".raw", ".dat", ".bsq", ".bil", ".bip")
_OPUS_SUFFIX = re.compile(r"^\.\d+$")  # OPUS names files sample.0, sample.1, sample.0001
_INNOSPECTRA_MARKERS = ("***Scan Config Information***", "***Scan Data***")
_HEAD_BYTES = 16384


# --------------------------------------------------------------------------- numpy


def npy_header(head: bytes) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """``(shape, dtype, fortran_order, data offset)`` from the first bytes of a ``.npy`` file,
    reading nothing else (so a declared size can be checked before anything is allocated).

    Raises:
        ValueError: not (yet) a complete .npy header, or one describing pickled objects.
    """
    stream = io.BytesIO(head)
    try:
        major, _ = np.lib.format.read_magic(stream)
        read = (
            np.lib.format.read_array_header_1_0
            if major == 1
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = read(stream)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise ValueError(f"not a .npy header: {exc}") from None
    if dtype.hasobject:
        raise ValueError("the .npy header describes pickled objects")
    return tuple(int(n) for n in shape), dtype, bool(fortran_order), stream.tell()


def read_npy(path: str | Path, *, wavelengths: Any = None, unit: str | None = None) -> Spectra:
    """Read ``.npy`` values or an ``.npz`` archive (never unpickles).

    ``.npy``: ``(N, L)`` (or ``(L,)``) values; the grid comes from ``wavelengths=`` or a
    sidecar ``<stem>.wavelengths.npy`` next to the file. ``.npz``: keys ``values``,
    ``wavelengths`` and optionally ``unit`` (string), ``ids`` (strings), ``metadata_json``
    (a JSON list of dicts, as :func:`write_npz` writes).

    Raises:
        SpectraFormatError: missing grid or keys, wrong shapes, non-finite values, object
            arrays, or a grid that is neither increasing nor decreasing.
    """
    path = Path(path)
    ids = metadata = None
    file_unit = None
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                missing = [k for k in ("values", "wavelengths") if k not in archive.files]
                if missing:
                    raise SpectraFormatError(
                        path, f"the archive lacks {missing}; it holds {sorted(archive.files)}"
                    )
                values = archive["values"]
                grid = archive["wavelengths"] if wavelengths is None else np.asarray(wavelengths)
                if "unit" in archive.files:
                    file_unit = str(archive["unit"])
                if "ids" in archive.files:
                    ids = [str(i) for i in archive["ids"].reshape(-1)]
                if "metadata_json" in archive.files:
                    metadata = json.loads(str(archive["metadata_json"]))
        else:
            values = np.load(path, allow_pickle=False)
            if wavelengths is None:
                sidecar = path.with_name(path.stem + ".wavelengths.npy")
                if not sidecar.exists():
                    raise SpectraFormatError(
                        path,
                        f"no wavelength grid: pass wavelengths= or write {sidecar.name} beside it",
                    )
                grid = np.load(sidecar, allow_pickle=False)
            else:
                grid = np.asarray(wavelengths)
    except SpectraFormatError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise SpectraFormatError(path, f"not a readable numpy file: {exc}") from None

    if values.dtype.kind not in "fiu":
        raise SpectraFormatError(path, f"values have dtype {values.dtype}; expected numbers")
    if values.ndim == 1:
        values = values.reshape(1, -1)
    if values.ndim != 2:
        raise SpectraFormatError(path, f"values have shape {values.shape}; expected (N, L)")
    grid = np.asarray(grid, dtype=np.float64).reshape(-1)
    if grid.size != values.shape[1]:
        raise SpectraFormatError(
            path, f"{grid.size} wavelengths for values with {values.shape[1]} columns"
        )
    finite = np.isfinite(values)
    if not finite.all():
        row = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise SpectraFormatError(path, f"spectrum {row} contains NaN or inf")
    grid, values = ordered_grid(path, grid, values.astype(np.float64))
    try:
        chosen = normalize_unit(unit or file_unit or guess_unit(grid))
        return Spectra(values, grid, chosen, ids=ids, metadata=metadata)
    except ValueError as exc:
        raise SpectraFormatError(path, str(exc)) from None


# --------------------------------------------------------------------------- dispatch


def detect_format(head: bytes, name: str = "") -> str:
    """The :data:`FORMATS` entry for a file that starts with ``head`` and is called ``name``.

    Content decides where it can (OPUS, SPA and NumPy magic bytes, an ``ENVI`` header,
    a JCAMP-DX ``##`` first line, an InnoSpectra section mark); the name decides the rest
    (``.spc``, ``.npz``, ``.jdx``, ENVI data files); other text is read as CSV.

    Raises:
        SpectraFormatError: a spreadsheet workbook, or binary content of no known format.
    """
    suffix = Path(name).suffix.lower()
    if head.startswith(OPUS_MAGIC):
        return "opus"
    if head.startswith(SPA_MAGIC):
        return "spa"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if suffix in (".xlsx", ".xlsm", ".xls", ".ods"):
        raise SpectraFormatError(
            name, "a spreadsheet workbook; save the sheet as CSV (File > Save As > CSV)"
        )
    if head.startswith(b"PK\x03\x04"):
        return "npz"
    if suffix == ".hdr" or head.startswith(b"ENVI"):
        return "envi"
    if suffix in _JCAMP_SUFFIXES:
        return "jcamp"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 text (Excel "Unicode Text")
        head = head[: len(head) // 2 * 2].decode("utf-16", errors="ignore").encode("utf-8")
    binary = b"\x00" in head[:4096]
    if suffix == ".spc" or (binary and len(head) > 1 and head[1] in (0x4B, 0x4C, 0x4D)):
        return "spc"
    if suffix in _ENVI_DATA_SUFFIXES and binary:
        return "envi"
    if binary:
        raise SpectraFormatError(
            name or "<bytes>", f"binary content of no known format; pass format= one of {FORMATS}"
        )
    text = head.decode("latin-1").lstrip("\ufeff\xef\xbb\xbf \t\r\n")
    if text.startswith("##"):
        return "jcamp"
    if any(marker in text for marker in _INNOSPECTRA_MARKERS):
        return "innospectra"
    return "csv"


def _readers() -> dict[str, Any]:
    from wavemae.data.instruments import read_innospectra_csv, read_jcamp
    from wavemae.data.vendor import read_envi, read_opus, read_spa, read_spc

    return {
        "csv": read_csv,
        "npy": read_npy,
        "npz": read_npy,
        "jcamp": read_jcamp,
        "innospectra": read_innospectra_csv,
        "opus": read_opus,
        "spc": read_spc,
        "spa": read_spa,
        "envi": read_envi,
    }


def _is_spectra_file(path: Path) -> bool:
    suffix = path.suffix.lower()
    if path.name.endswith(".wavelengths.npy") or suffix in _ENVI_DATA_SUFFIXES:
        return False  # a grid sidecar, or the data half of an ENVI pair (read via its .hdr)
    known = (*_JCAMP_SUFFIXES, *_TEXT_SUFFIXES, ".npy", ".npz", ".spc", ".spa", ".hdr")
    return suffix in known or bool(_OPUS_SUFFIX.match(suffix))


def read_spectra(
    source: str | Path | bytes,
    format: str | None = None,
    *,
    name: str | None = None,
    **options: Any,
) -> Spectra:
    """Read spectra from a file, a folder of files, or the bytes of an upload.

    Args:
        source: a path; a folder (its spectra files, sorted by name, stacked; ENVI cubes by
            their ``.hdr``); or the file's bytes (then ``name`` helps the detection and
            names the upload in errors; ENVI needs its two files and so a path).
        format: one of :data:`FORMATS`; detected from content and name when None
            (:func:`detect_format`).
        name: the upload's file name, for bytes (default ``"upload"``).
        options: passed to the chosen reader (``unit=`` for CSV/NumPy/ENVI, ``layout=`` for
            CSV, ``quantity=`` for OPUS/InnoSpectra, ``wavelengths=`` for ``.npy``).

    Raises:
        SpectraFormatError: unreadable or broken file, unknown content, or folder files
            on different grids (a ``ValueError`` naming the file, line and problem).
        ValueError: ``format`` is not one of :data:`FORMATS`.
    """
    if format is not None and format not in FORMATS:
        raise ValueError(f"format={format!r} is not one of {FORMATS}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _read_upload(bytes(source), name or "upload", format, options)
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _is_spectra_file(p))
        if not files:
            raise SpectraFormatError(path, "the folder holds no spectra files")
        parts = [read_spectra(p, format, **options) for p in files]
        if len(parts) == 1:
            return parts[0]
        try:
            return Spectra.concat(parts)
        except ValueError as exc:
            raise SpectraFormatError(path, f"files cannot be stacked: {exc}") from None
    if not path.exists():
        raise SpectraFormatError(path, "no such file")
    if format is None:
        try:
            with open(path, "rb") as handle:
                head = handle.read(_HEAD_BYTES)
        except OSError as exc:
            raise SpectraFormatError(path, f"cannot read the file: {exc.strerror}") from None
        if not head.strip():
            raise SpectraFormatError(path, "the file is empty")
        format = detect_format(head, path.name)
        if format == "envi" and envi_header_for(path) is None:
            raise SpectraFormatError(path, "looks like ENVI data but has no .hdr beside it")
    return _readers()[format](path, **options)


def _read_upload(data: bytes, name: str, format: str | None, options: dict) -> Spectra:
    if not data.strip():
        raise SpectraFormatError(name, "the upload is empty")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name).lstrip(".") or "upload"
    chosen = format or detect_format(data[:_HEAD_BYTES], name)
    if chosen == "csv":
        return parse_csv(decode_text(data, name), source=name, **options)
    if chosen == "envi":
        raise SpectraFormatError(
            name, "an ENVI cube is a .hdr plus a data file; read it from a path, not bytes"
        )
    with tempfile.TemporaryDirectory(prefix="wavemae-upload-") as folder:
        path = Path(folder) / safe
        path.write_bytes(data)
        try:
            return _readers()[chosen](path, **options)
        except SpectraFormatError as exc:
            raise SpectraFormatError(name, exc.problem, line=exc.line) from None

"""Readers for instrument and exchange formats: JCAMP-DX and InnoSpectra / TI NIRScan CSV.

Both return one :class:`~wavemae.data.spectra.Spectra` per file and raise
:class:`~wavemae.data.spectra.SpectraFormatError` naming the file, line and problem.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from pathlib import Path
from typing import Any

import numpy as np

from wavemae.data.parsing import cell_value, ordered_grid, parse_float, read_text
from wavemae.data.spectra import Spectra, SpectraFormatError

__all__ = ["read_innospectra_csv", "read_jcamp"]

# --------------------------------------------------------------------------- JCAMP-DX

# XUNITS spellings -> (unit, factor that converts the axis into that unit)
_JCAMP_XUNITS = {
    "1/CM": ("cm-1", 1.0),
    "CM-1": ("cm-1", 1.0),
    "CM^-1": ("cm-1", 1.0),
    "NANOMETERS": ("nm", 1.0),
    "NM": ("nm", 1.0),
    "MICROMETERS": ("um", 1.0),
    "MICRONS": ("um", 1.0),
    "UM": ("um", 1.0),
}
_DATA_LABEL = re.compile(r"^\s*##\s*(XYDATA|XYPOINTS|PEAK\s*TABLE)\s*=", re.IGNORECASE)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # e.g. the DOS end-of-file byte \x1a
_DUP_CODES = dict(zip("STUVWXYZs", range(1, 10), strict=True))
_ASDF_TOKEN = re.compile(
    r"[@A-Ia-i%J-Rj-r]\d*"  # SQZ or DIF value
    r"|[S-Zs]\d*"  # DUP count
    r"|[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"  # plain (AFFN/PAC) number
    r"|[\s,;]+|."
)


def _clean_line(line: str) -> str:
    """Drop ``$$`` comments and control bytes; the ``jcamp`` package trips on both."""
    position = line.find("$$")
    line = line if position < 0 else line[:position].rstrip()
    return _CONTROL.sub("", line)


def _expand_dup(line: str) -> str:
    """Write out DUP repeat counts (``S``-``Z``, ``s``) of one ASDF data line.

    The ``jcamp`` package expands DUP only after DIF values and fails (IndexError) or
    miscounts after SQZ values; repeating the preceding token is right for both, since a
    repeated DIF token repeats the difference and a repeated SQZ token the value.
    """
    if not any(c in _DUP_CODES for c in line):
        return line
    out: list[str] = []
    previous = None
    for token in _ASDF_TOKEN.findall(line):
        if token[0] in _DUP_CODES:
            if previous is None:
                raise ValueError(f"DUP count {token!r} with no value before it")
            count = int(f"{_DUP_CODES[token[0]]}{token[1:]}")
            separator = " " if previous[0].isdigit() or previous[0] == "." else ""
            out.extend(separator + previous for _ in range(count - 1))
        else:
            out.append(token)
            if not token.isspace() and token not in ",;":
                previous = token
    return "".join(out)


def read_jcamp(path: str | Path) -> Spectra:
    """Read a JCAMP-DX spectrum (AFFN, PAC, SQZ, DIF, DUP forms) through the ``jcamp`` package.

    The x axis must be a wavelength or wavenumber (``##XUNITS=`` 1/CM, NANOMETERS or
    MICROMETERS, kept as µm). A compound (LINK) file gives one spectrum per
    block, which must all share one grid.

    Returns:
        ``Spectra`` with ids = ``##TITLE`` and metadata ``title``, ``data_type``, ``yunits``
        (plus ``origin``/``owner`` when present).

    Raises:
        SpectraFormatError: no ``##XYDATA``/``##XYPOINTS`` block, a peak table, an
            unsupported x unit, a failed DIF check value (corrupt compressed data), or a point
            count different from ``##NPOINTS``.
    """
    import jcamp as jcamp_parser

    path = Path(path)
    lines = read_text(path).splitlines()
    data_lines = [i + 1 for i, line in enumerate(lines) if _DATA_LABEL.match(line)]
    labels = {_DATA_LABEL.match(lines[i - 1]).group(1).upper().replace(" ", "") for i in data_lines}
    if not data_lines:
        raise SpectraFormatError(path, "no ##XYDATA= or ##XYPOINTS= block: no spectrum to read")
    if labels == {"PEAKTABLE"}:
        raise SpectraFormatError(
            path,
            "only a ##PEAK TABLE (a stick spectrum), not a spectrum on a grid",
            line=data_lines[0],
        )
    cleaned = []
    in_data = False
    for number, line in enumerate(lines, start=1):
        if line.startswith("$$"):
            continue
        line = _clean_line(line)
        if line.lstrip().startswith("##"):
            in_data = _DATA_LABEL.match(line) is not None
        elif in_data:
            try:
                line = _expand_dup(line)
            except ValueError as exc:
                raise SpectraFormatError(path, str(exc), line=number) from None
        cleaned.append(line + "\n")
    messages = io.StringIO()
    try:
        # jcamp prints its integrity warnings instead of raising: capture and judge them.
        with contextlib.redirect_stdout(messages):
            parsed = jcamp_parser.read(cleaned)
    except Exception as exc:  # the parser raises assorted errors on malformed input
        raise SpectraFormatError(
            path,
            f"the JCAMP-DX data could not be parsed ({type(exc).__name__}: {exc})",
            line=data_lines[0],
        ) from None
    for message in messages.getvalue().splitlines():
        lengths = re.match(
            r"Mismatch of array lengths found: len\(x\) is (\d+) and len\(y\) (\d+)", message
        )
        if lengths:
            raise SpectraFormatError(
                path,
                f"##NPOINTS={lengths.group(1)} but the data decode to {lengths.group(2)} points",
                line=data_lines[0],
            )
        if message.startswith("Y-Check failed"):
            raise SpectraFormatError(
                path, f"corrupt data block: {message.strip()}", line=data_lines[0]
            )

    blocks = [c for c in parsed.get("children", []) if len(c.get("y", ()))] or [parsed]
    spectra = [_jcamp_block(path, block, parsed, data_lines[0]) for block in blocks]
    try:
        return Spectra.concat(spectra)
    except ValueError as exc:
        raise SpectraFormatError(path, f"compound file blocks differ: {exc}") from None


def _jcamp_block(path: Path, block: dict[str, Any], parent: dict[str, Any], line: int) -> Spectra:
    x = np.asarray(block.get("x", ()), dtype=np.float64)
    y = np.asarray(block.get("y", ()), dtype=np.float64)
    if y.size == 0:
        raise SpectraFormatError(path, "the data block holds no values", line=line)
    npoints = block.get("npoints")
    if isinstance(npoints, (int, float)) and int(npoints) != y.size:
        raise SpectraFormatError(
            path, f"##NPOINTS={int(npoints)} but the data decode to {y.size} points", line=line
        )
    if x.size != y.size:
        raise SpectraFormatError(path, f"{x.size} x values for {y.size} y values", line=line)
    xunits = str(block.get("xunits", parent.get("xunits", ""))).strip()
    key = xunits.upper().replace(" ", "")
    if key not in _JCAMP_XUNITS:
        raise SpectraFormatError(
            path,
            f"##XUNITS={xunits or '(missing)'} is not a spectral axis this reader supports "
            "(1/CM, NANOMETERS, MICROMETERS)",
        )
    unit, factor = _JCAMP_XUNITS[key]
    if not np.all(np.isfinite(y)):
        raise SpectraFormatError(path, "the data block decodes to NaN or inf values", line=line)
    grid, values = ordered_grid(path, x * factor, y.reshape(1, -1), line=line)
    title = str(block.get("title", path.stem)).strip() or path.stem
    meta: dict[str, Any] = {"title": title}
    for field, label in (
        ("data type", "data_type"),
        ("datatype", "data_type"),
        ("yunits", "yunits"),
        ("origin", "origin"),
        ("owner", "owner"),
    ):
        if field in block and label not in meta:
            meta[label] = str(block[field]).strip()
    return Spectra(values, grid, unit, ids=[title], metadata=[meta])


# --------------------------------------------------------------------------- InnoSpectra

_QUANTITIES = {
    "absorbance": "absorbance",
    "reflectance": "reflectance",
    "sample": "sample signal",
    "reference": "reference signal",
}


def read_innospectra_csv(
    path: str | Path, *, quantity: str = "absorbance", missing: str = "interpolate"
) -> Spectra:
    """Read an InnoSpectra / TI DLP NIRScan CSV export: a metadata block, then the scan table.

    The ``***Scan Data***`` section holds ``Wavelength (nm)`` and the measured columns
    (``Absorbance (AU)``, ``Reference Signal``, ``Sample Signal``, sometimes ``Reflectance``).
    Key/value pairs of the sample's own header block (left of ``***Reference Scan
    Information***``), such as ``Model Name``, ``Serial Number``, ``Data Date-Time``, become
    metadata.

    Args:
        quantity: ``"absorbance"``, ``"reflectance"``, ``"sample"`` or ``"reference"``.
        missing: what to do with ``NaN`` cells, which these instruments write where the sample
            signal was too low: ``"interpolate"`` (linear, from the neighbouring bands; the
            count goes to metadata ``n_interpolated``) or ``"error"``.

    Raises:
        SpectraFormatError: no scan section or column, non-numeric cells, fewer than 2 points,
            NaN cells with ``missing="error"``, duplicate or unordered wavelengths.
    """
    if quantity not in _QUANTITIES:
        raise ValueError(f"quantity={quantity!r} is not one of {sorted(_QUANTITIES)}")
    if missing not in ("interpolate", "error"):
        raise ValueError(f"missing={missing!r} is not 'interpolate' or 'error'")
    path = Path(path)
    rows = list(csv.reader(io.StringIO(read_text(path))))
    scan_row = next(
        (i for i, row in enumerate(rows) if any(c.strip() == "***Scan Data***" for c in row)), None
    )
    if scan_row is None:
        raise SpectraFormatError(
            path, "no ***Scan Data*** section: not an InnoSpectra/NIRScan CSV export"
        )
    header_row = next((i for i in range(scan_row + 1, len(rows)) if any(rows[i])), None)
    if header_row is None:
        raise SpectraFormatError(path, "the ***Scan Data*** section is empty", line=scan_row + 1)
    header = [c.strip().lower() for c in rows[header_row]]
    x_col = next((k for k, c in enumerate(header) if c.startswith("wavelength")), None)
    y_col = next((k for k, c in enumerate(header) if c.startswith(_QUANTITIES[quantity])), None)
    if x_col is None or y_col is None:
        wanted = "Wavelength" if x_col is None else _QUANTITIES[quantity].title()
        raise SpectraFormatError(
            path,
            f"the scan table has no {wanted!r} column (columns: {rows[header_row]})",
            line=header_row + 1,
        )

    x_values, y_values = [], []
    for i in range(header_row + 1, len(rows)):
        row = rows[i]
        if not any(c.strip() for c in row):
            continue
        if len(row) <= max(x_col, y_col):
            raise SpectraFormatError(path, f"row has only {len(row)} cells", line=i + 1)
        x = parse_float(row[x_col].strip())
        y = parse_float(row[y_col].strip())
        if x is None or y is None:
            bad = row[x_col] if x is None else row[y_col]
            raise SpectraFormatError(path, f"{bad.strip()!r} is not a number", line=i + 1)
        if np.isnan(y) and missing == "error":
            raise SpectraFormatError(path, f"{quantity} is NaN", line=i + 1)
        if np.isinf(y) or not np.isfinite(x):
            raise SpectraFormatError(path, "infinite value", line=i + 1)
        x_values.append(x)
        y_values.append(y)
    if len(x_values) < 2:
        raise SpectraFormatError(path, f"the scan table has {len(x_values)} rows; need >= 2")
    grid, values = ordered_grid(
        path, np.array(x_values), np.array(y_values).reshape(1, -1), line=header_row + 1
    )
    meta = _innospectra_header(rows[:scan_row])
    gaps = np.isnan(values[0])
    if gaps.all():
        raise SpectraFormatError(path, f"every {quantity} value is NaN")
    if gaps.any():
        values[0, gaps] = np.interp(grid[gaps], grid[~gaps], values[0, ~gaps])
    meta["n_interpolated"] = int(gaps.sum())
    meta["quantity"] = quantity
    return Spectra(values, grid, "nm", ids=[path.stem], metadata=[meta])


def _innospectra_header(rows: list[list[str]]) -> dict[str, Any]:
    """Key/value pairs of the sample's own header block (left of the reference block)."""
    split = None
    for row in rows:
        for k, cell in enumerate(row):
            if cell.strip().startswith("***Reference Scan") and k > 0:
                split = k
    meta: dict[str, Any] = {}
    for row in rows:
        cells = [c.strip() for c in row[:split]]
        for k in range(len(cells) - 1):
            key, value = cells[k], cells[k + 1]
            if key.endswith(":") and value and not value.endswith(":"):
                meta.setdefault(key[:-1].strip(), cell_value(value))
    return meta

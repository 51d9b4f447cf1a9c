"""Delimited text tables (CSV, semicolon or tab separated) in the two layouts labs export.

- wide: one spectrum per row; the header row holds the wavelengths, after optional id and
  metadata columns (``id, batch, 1100, 1102, ...``);
- long: one band per row; the first column holds the wavelengths, every further column is one
  spectrum named by its header (``wavelength, sample_a, sample_b``). A two-column file
  (wavelength, value), with or without a header, is the single-spectrum case.

:func:`parse_csv` tells the layouts apart from the header. Both tolerate what spreadsheets
add: columns that are empty from top to bottom (Excel's trailing separators), blank lines,
``#`` comment lines before the header, a byte-order mark, and decimal commas in files
separated by ``;`` or tabs.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wavemae.data.parsing import (
    cell_value,
    guess_unit,
    ordered_grid,
    parse_float,
    read_text,
    unit_from_text,
)
from wavemae.data.spectra import Spectra, SpectraFormatError, normalize_unit

__all__ = ["LAYOUTS", "parse_csv", "parse_csv_wide", "read_csv", "read_csv_wide"]

#: ``layout=`` values of :func:`parse_csv` (None: decided from the header).
LAYOUTS = ("wide", "long")
_AXIS_NAMES = ("x", "wl", "lambda", "wavelength", "wavelengths", "wavenumber", "wavenumbers")


@dataclass
class _Table:
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (1-based line number, cells)
    header_line: int
    comment_unit: str | None
    decimal_comma: bool
    source: str | Path
    allow_nan: bool = False  # NaN (or empty) value cells kept as NaN: missing bands

    def number(self, cell: str) -> float | None:
        value = parse_float(cell)
        if value is None and self.decimal_comma and cell.count(",") == 1:
            value = parse_float(cell.replace(",", "."))
        return value


def read_csv(
    path: str | Path,
    *,
    unit: str | None = None,
    delimiter: str | None = None,
    layout: str | None = None,
) -> Spectra:
    """Read a wide or long table from a file; see :func:`parse_csv`."""
    path = Path(path)
    return parse_csv(read_text(path), source=path, unit=unit, delimiter=delimiter, layout=layout)


def read_csv_wide(
    path: str | Path, *, unit: str | None = None, delimiter: str | None = None
) -> Spectra:
    """Read a wide table (one spectrum a row, wavelengths in the header); see :func:`parse_csv`."""
    return read_csv(path, unit=unit, delimiter=delimiter, layout="wide")


def parse_csv_wide(
    text: str,
    *,
    source: str | Path = "<text>",
    unit: str | None = None,
    delimiter: str | None = None,
) -> Spectra:
    """:func:`read_csv_wide` for text already in memory (e.g. an HTTP upload)."""
    return parse_csv(text, source=source, unit=unit, delimiter=delimiter, layout="wide")


def parse_csv(
    text: str,
    *,
    source: str | Path = "<text>",
    unit: str | None = None,
    delimiter: str | None = None,
    layout: str | None = None,
    allow_nan: bool = False,
) -> Spectra:
    """Spectra from a delimited table held in memory.

    Wide layout: leading columns whose header is not a number hold the id (the first such
    column) and metadata (the others, keyed by their header; cells become int/float/str).
    Long layout: the first column is the axis; each further column is one spectrum whose id
    is its header (a headerless file gets ids from ``source``).

    Args:
        text: the table.
        source: names the text in error messages (``SpectraFormatError.path``) and ids.
        unit: ``"nm"``, ``"um"`` or ``"cm-1"``; when None, taken from a ``# unit=`` comment,
            then from the header text (``Wavelength (nm)``, ``cm-1``, ``µm``), else guessed
            from the range (0.15-30 µm, 150-2600 nm, anything else cm^-1).
        delimiter: ``","``, ``";"`` or a tab; sniffed from the header when None.
        layout: ``"wide"``, ``"long"`` or None to decide from the header: a header with at
            least two numbers (after any id/metadata columns) is wide; a header that names
            an axis (``wavelength``, ``nm``, ``cm-1`` ...) above a numeric first column, a
            header without numbers, or a headerless two-column table is long.
        allow_nan: keep ``NaN`` (and empty) value cells as NaN, for callers that treat them
            as missing bands; refused otherwise.

    Raises:
        SpectraFormatError: empty table, no wavelengths, non-numeric or empty or non-finite
            cells, ragged rows, duplicate or unordered wavelengths, unknown unit (messages
            name the source, the line and the column).
        ValueError: unknown ``layout``.
    """
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is not one of {LAYOUTS}")
    table = _load_table(text, source, delimiter)
    table.allow_nan = allow_nan
    chosen = layout or _detect_layout(table)
    parse = _parse_wide if chosen == "wide" else _parse_long
    values, wavelengths, axis_text, ids, metadata = parse(table, source)
    wavelengths, values = ordered_grid(source, wavelengths, values, line=table.header_line)
    if unit is None:
        unit = table.comment_unit or unit_from_text(axis_text) or guess_unit(wavelengths)
    try:
        unit = normalize_unit(unit)
    except ValueError as exc:
        raise SpectraFormatError(source, str(exc)) from None
    return Spectra(values, wavelengths, unit, ids=ids, metadata=metadata)


# --------------------------------------------------------------------------- table


def _load_table(text: str, source: str | Path, delimiter: str | None) -> _Table:
    if not text.strip():
        raise SpectraFormatError(source, "the file is empty")
    lines = text.splitlines()
    comment_unit: str | None = None
    start = 0
    while start < len(lines) and (
        not lines[start].strip() or lines[start].lstrip().startswith("#")
    ):
        comment = lines[start].lstrip().lstrip("#").strip()
        if comment.lower().startswith("unit"):
            comment_unit = comment.split("=", 1)[-1].split(":", 1)[-1].strip()
        start += 1
    if start >= len(lines):
        raise SpectraFormatError(source, "no header row (the file holds only comments)")
    header_line = lines[start]
    if delimiter is None:
        counts = {d: header_line.count(d) for d in (",", ";", "\t")}
        delimiter = max(counts, key=counts.get)
        if counts[delimiter] == 0:
            raise SpectraFormatError(
                source, "the header has no ',', ';' or tab separators", line=start + 1
            )
    reader = csv.reader(io.StringIO("\n".join(lines[start:])), delimiter=delimiter)
    parsed = []
    for cells in reader:
        if cells and any(c.strip() for c in cells):
            parsed.append((start + reader.line_num, [c.strip() for c in cells]))
    if not parsed:
        raise SpectraFormatError(source, "no header row (only separators)", line=start + 1)
    (first_line, header), rows = parsed[0], parsed[1:]
    # Columns empty from top to bottom (Excel writes trailing separators) are dropped.
    width = max(len(cells) for _, cells in parsed)
    empty = {k for k in range(width) if all(k >= len(cells) or not cells[k] for _, cells in parsed)}
    if empty:
        header = [c for k, c in enumerate(header) if k not in empty]
        rows = [(n, [c for k, c in enumerate(cells) if k not in empty]) for n, cells in rows]
    return _Table(header, rows, first_line, comment_unit, delimiter != ",", source)


def _detect_layout(table: _Table) -> str:
    numbers = [table.number(c) for c in table.header]
    numeric = [v is not None for v in numbers]
    first = table.header[0].lower()
    names_axis = not numeric[0] and (
        first in _AXIS_NAMES
        or (unit_from_text(first) is not None and not first.startswith(("id", "sample", "name")))
    )
    if names_axis:
        return "long"
    if all(numeric):
        if len(table.header) == 2 or (
            len(table.rows) + 1 > len(table.header) and _first_column_is_axis(table)
        ):
            return "long"
        return "wide"
    if sum(numeric) >= 2:
        return "wide"
    first_cells = [cells[0] for _, cells in table.rows[:1]]
    if not first_cells or table.number(first_cells[0]) is None:
        raise SpectraFormatError(
            table.source,
            "the header row has no numeric wavelength columns (wide layout) and the first "
            "column holds no wavelengths (long layout)",
            line=table.header_line,
        )
    return "long"


def _first_column_is_axis(table: _Table) -> bool:
    cells = [table.header[0], *(cells[0] for _, cells in table.rows if cells)]
    column = [table.number(c) for c in cells]
    if len(column) < 2 or any(v is None for v in column):
        return False
    steps = np.diff(np.array(column, dtype=np.float64))
    return bool(np.all(steps > 0) or np.all(steps < 0))


def _cell_number(
    table: _Table, source: object, cell: str, column: int, line: int, *, axis: bool = False
) -> float:
    number = table.number(cell) if cell else None
    if table.allow_nan and not axis and ((number is None and not cell) or number != number):
        return math.nan  # a missing band (empty or NaN), kept for the caller to hide
    if number is None:
        what = "is empty" if not cell else f"({cell!r}) is not a number"
        raise SpectraFormatError(source, f"column {column} {what}", line=line)
    if not math.isfinite(number):
        raise SpectraFormatError(source, f"column {column} ({cell!r}) is not finite", line=line)
    return number


# --------------------------------------------------------------------------- layouts


def _parse_wide(table: _Table, source: str | Path) -> tuple:
    header = table.header
    header_numbers = [table.number(cell) for cell in header]
    n_meta = 0
    while n_meta < len(header) and header_numbers[n_meta] is None:
        n_meta += 1
    if n_meta == len(header):
        raise SpectraFormatError(
            source, "the header row has no numeric wavelength columns", line=table.header_line
        )
    for k in range(n_meta, len(header)):
        if header_numbers[k] is None:
            raise SpectraFormatError(
                source,
                f"header column {k + 1} ({header[k]!r}) is not a number; id/metadata columns "
                "must come before the wavelength columns",
                line=table.header_line,
            )
    wavelengths = np.array(header_numbers[n_meta:], dtype=np.float64)
    width = len(header)
    values, ids, metadata = [], [], []
    for line, row in table.rows:
        if len(row) != width:
            raise SpectraFormatError(
                source, f"row has {len(row)} cells but the header has {width}", line=line
            )
        values.append(
            [_cell_number(table, source, row[k], k + 1, line) for k in range(n_meta, width)]
        )
        if n_meta:
            ids.append(row[0])
            metadata.append({header[k]: cell_value(row[k]) for k in range(1, n_meta)})
    if not values:
        raise SpectraFormatError(source, "the header is not followed by any data rows")
    return (
        np.array(values, dtype=np.float64),
        wavelengths,
        " ".join(header[:n_meta]),
        ids if n_meta else None,
        metadata if n_meta > 1 else None,
    )


def _parse_long(table: _Table, source: str | Path) -> tuple:
    headerless = all(table.number(c) is not None for c in table.header)
    rows = table.rows
    if headerless:
        rows = [(table.header_line, table.header), *rows]
    width = len(table.header)
    if width < 2:
        raise SpectraFormatError(
            source,
            "a long table needs a wavelength column and at least one value column",
            line=table.header_line,
        )
    axis, values = [], []
    for line, row in rows:
        if len(row) != width:
            raise SpectraFormatError(
                source, f"row has {len(row)} cells but the first row has {width}", line=line
            )
        axis.append(_cell_number(table, source, row[0], 1, line, axis=True))
        values.append([_cell_number(table, source, row[k], k + 1, line) for k in range(1, width)])
    if len(axis) < 2:
        raise SpectraFormatError(source, f"the table has {len(axis)} data rows; need >= 2")
    steps = np.sign(np.diff(axis))
    if steps.size and not (np.all(steps > 0) or np.all(steps < 0)):
        k = int(np.flatnonzero((steps == 0) | (steps != steps[0]))[0]) + 1
        what = "repeats the row before" if axis[k] == axis[k - 1] else "breaks the order"
        raise SpectraFormatError(
            source, f"wavelength {axis[k]:g} {what} (column 1)", line=rows[k][0]
        )
    stem = Path(str(source)).stem
    if headerless:
        ids = [stem] if width == 2 else [f"{stem}-{k}" for k in range(1, width)]
    else:
        ids = [table.header[k] or f"column {k + 1}" for k in range(1, width)]
    return (
        np.array(values, dtype=np.float64).T.copy(),
        np.array(axis, dtype=np.float64),
        "" if headerless else table.header[0],
        ids,
        None,
    )

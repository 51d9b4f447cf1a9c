"""Readers (and a few writers) for spectra files.

:func:`read_spectra` picks a reader by suffix and content:

- wide CSV (:func:`read_csv_wide`): one spectrum per row, header row = wavelengths;
- ``.npy`` / ``.npz`` (:func:`read_npy`);
- JCAMP-DX ``.jdx``/``.dx``/``.jcm`` (:func:`read_jcamp`, through the ``jcamp`` package);
- InnoSpectra / TI NIRScan CSV exports (:func:`read_innospectra_csv`);
- a folder: every readable file in it, stacked (they must share one grid).

Every reader returns a :class:`~wavemae.data.spectra.Spectra` with a strictly increasing
grid (descending files are reordered) and raises :class:`SpectraFormatError` naming the
file, the line where it applies, and the problem.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

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

__all__ = [
    "FORMATS",
    "parse_csv_wide",
    "read_csv_wide",
    "read_npy",
    "read_spectra",
    "write_csv_wide",
    "write_npz",
]

#: Format names accepted by ``read_spectra(format=...)``.
FORMATS = ("csv", "npy", "npz", "jcamp", "innospectra")
_JCAMP_SUFFIXES = (".jdx", ".dx", ".jcm")
_CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_INNOSPECTRA_MARKERS = ("***Scan Config Information***", "***Scan Data***")


# --------------------------------------------------------------------------- wide CSV


def read_csv_wide(
    path: str | Path, *, unit: str | None = None, delimiter: str | None = None
) -> Spectra:
    """Read a wide table: one spectrum per row, the header row holds the wavelengths.

    Leading columns whose header is not a number hold the id (the first such column) and
    metadata (the others, keyed by their header; cells become int/float/str). Lines starting
    with ``#`` before the header are comments; ``# unit=cm-1`` there sets the unit.

    Args:
        path: the file.
        unit: ``"nm"`` or ``"cm-1"``; when None, taken from a ``# unit=`` comment, then from
            the header text (``cm-1``, ``wavenumber``, ``nm``), else guessed from the range
            (150-2600 means nm, anything else cm^-1).
        delimiter: ``","``, ``";"`` or a tab; sniffed from the header when None.

    Raises:
        SpectraFormatError: empty file, no numeric header columns, non-numeric header after the
            numeric ones, ragged rows, empty or non-numeric or non-finite cells, duplicate or
            non-monotonic wavelengths (messages name the file, line and column).
    """
    path = Path(path)
    return parse_csv_wide(read_text(path), source=path, unit=unit, delimiter=delimiter)


def parse_csv_wide(
    text: str,
    *,
    source: str | Path = "<text>",
    unit: str | None = None,
    delimiter: str | None = None,
) -> Spectra:
    """:func:`read_csv_wide` for text already in memory (e.g. an HTTP upload).

    ``source`` names the text in error messages (``SpectraFormatError.path``).
    """
    path = source
    if not text.strip():
        raise SpectraFormatError(path, "the file is empty")
    lines = text.splitlines()
    comment_unit: str | None = None
    start = 0
    while start < len(lines) and (
        not lines[start].strip() or lines[start].lstrip().startswith("#")
    ):
        text = lines[start].lstrip().lstrip("#").strip()
        if text.lower().startswith("unit"):
            comment_unit = text.split("=", 1)[-1].split(":", 1)[-1].strip()
        start += 1
    if start >= len(lines):
        raise SpectraFormatError(path, "no header row (the file holds only comments)")
    header_line = lines[start]
    if delimiter is None:
        counts = {d: header_line.count(d) for d in (",", ";", "\t")}
        delimiter = max(counts, key=counts.get)
        if counts[delimiter] == 0:
            raise SpectraFormatError(
                path, "the header has no ',', ';' or tab separators", line=start + 1
            )
    rows = list(csv.reader(io.StringIO("\n".join(lines[start:])), delimiter=delimiter))
    header = [cell.strip() for cell in rows[0]]
    header_numbers = [parse_float(cell) for cell in header]
    n_meta = 0
    while n_meta < len(header) and header_numbers[n_meta] is None:
        n_meta += 1
    if n_meta == len(header):
        raise SpectraFormatError(
            path, "the header row has no numeric wavelength columns", line=start + 1
        )
    for k in range(n_meta, len(header)):
        if header_numbers[k] is None:
            raise SpectraFormatError(
                path,
                f"header column {k + 1} ({header[k]!r}) is not a number; id/metadata columns "
                "must come before the wavelength columns",
                line=start + 1,
            )
    wavelengths = np.array(header_numbers[n_meta:], dtype=np.float64)

    width = len(header)
    values: list[list[float]] = []
    ids: list[str] = []
    metadata: list[dict[str, Any]] = []
    for offset, row in enumerate(rows[1:], start=1):
        line_no = start + offset + 1
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != width:
            raise SpectraFormatError(
                path, f"row has {len(row)} cells but the header has {width}", line=line_no
            )
        numbers = []
        for k in range(n_meta, width):
            cell = row[k].strip()
            number = parse_float(cell) if cell else None
            if number is None:
                what = "is empty" if not cell else f"({cell!r}) is not a number"
                raise SpectraFormatError(path, f"column {k + 1} {what}", line=line_no)
            if not math.isfinite(number):
                raise SpectraFormatError(
                    path, f"column {k + 1} ({cell!r}) is not finite", line=line_no
                )
            numbers.append(number)
        values.append(numbers)
        if n_meta:
            ids.append(row[0].strip())
            metadata.append({header[k]: cell_value(row[k]) for k in range(1, n_meta)})
    if not values:
        raise SpectraFormatError(path, "the header is not followed by any data rows")

    array = np.array(values, dtype=np.float64)
    wavelengths, array = ordered_grid(path, wavelengths, array, line=start + 1)
    if unit is None:
        unit = comment_unit or unit_from_text(" ".join(header[:n_meta])) or guess_unit(wavelengths)
    try:
        unit = normalize_unit(unit)
    except ValueError as exc:
        raise SpectraFormatError(path, str(exc)) from None
    return Spectra(
        array,
        wavelengths,
        unit,
        ids=ids if n_meta else None,
        metadata=metadata if n_meta > 1 else None,
    )


def write_csv_wide(spectra: Spectra, path: str | Path) -> None:
    """Write ``spectra`` as a wide CSV that :func:`read_csv_wide` reads back.

    A ``# unit=`` comment line, then the header ``id, <metadata keys...>, <wavelengths...>``.
    Wavelengths and values are written with ``repr`` precision, so a round trip is exact.
    """
    keys: list[str] = []
    for entry in spectra.metadata or []:
        keys += [k for k in entry if k not in keys]
    ids = spectra.ids if spectra.ids is not None else [str(i) for i in range(len(spectra))]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        handle.write(f"# unit={spectra.unit}\n")
        writer = csv.writer(handle)
        writer.writerow(["id", *keys, *(repr(float(w)) for w in spectra.wavelengths)])
        for i, row in enumerate(spectra.values):
            entry = spectra.metadata[i] if spectra.metadata is not None else {}
            writer.writerow(
                [ids[i], *(entry.get(k, "") for k in keys), *(repr(float(v)) for v in row)]
            )


# --------------------------------------------------------------------------- numpy


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
    except (OSError, ValueError, EOFError) as exc:
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


def write_npz(spectra: Spectra, path: str | Path) -> None:
    """Write ``spectra`` to an ``.npz`` archive that :func:`read_npy` reads back exactly."""
    arrays: dict[str, Any] = {
        "values": spectra.values,
        "wavelengths": spectra.wavelengths,
        "unit": np.array(spectra.unit),
    }
    if spectra.ids is not None:
        arrays["ids"] = np.array(spectra.ids, dtype=str)
    if spectra.metadata is not None:
        arrays["metadata_json"] = np.array(json.dumps(spectra.metadata))
    np.savez(path, **arrays)


# --------------------------------------------------------------------------- dispatch


def _sniff_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _JCAMP_SUFFIXES:
        return "jcamp"
    if suffix in (".npy", ".npz"):
        return suffix[1:]
    if suffix in _CSV_SUFFIXES:
        head = read_text(path)[:8192]
        if any(marker in head for marker in _INNOSPECTRA_MARKERS):
            return "innospectra"
        if head.lstrip().startswith("##"):
            return "jcamp"
        return "csv"
    raise SpectraFormatError(
        path, f"unknown file type {suffix or '(no suffix)'!r}; pass format= one of {FORMATS}"
    )


def read_spectra(path: str | Path, *, format: str | None = None, **options: Any) -> Spectra:
    """Read spectra from a file (or every spectra file in a folder) of any supported format.

    Args:
        path: a file, or a folder whose readable files (sorted by name) are stacked.
        format: one of :data:`FORMATS`; chosen from suffix and content when None
            (``.jdx``/``.dx``/``.jcm`` JCAMP-DX, ``.npy``/``.npz``, ``.csv``/``.tsv``/``.txt``
            as wide CSV unless it is an InnoSpectra export or starts with ``##``).
        options: passed to the chosen reader (e.g. ``unit=`` for CSV/NumPy).

    Raises:
        SpectraFormatError: unreadable or broken file, or folder files on different grids.
        ValueError: unknown ``format``.
    """
    from wavemae.data.instruments import read_innospectra_csv, read_jcamp

    path = Path(path)
    if format is not None and format not in FORMATS:
        raise ValueError(f"format={format!r} is not one of {FORMATS}")
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file()
            and p.suffix.lower() in (*_JCAMP_SUFFIXES, *_CSV_SUFFIXES, ".npy", ".npz")
            and not p.name.endswith(".wavelengths.npy")
        )
        if not files:
            raise SpectraFormatError(path, "the folder holds no spectra files")
        parts = [read_spectra(p, format=format, **options) for p in files]
        try:
            return Spectra.concat(parts)
        except ValueError as exc:
            raise SpectraFormatError(path, f"files cannot be stacked: {exc}") from None
    if not path.exists():
        raise SpectraFormatError(path, "no such file")
    chosen = format or _sniff_format(path)
    readers = {
        "csv": read_csv_wide,
        "npy": read_npy,
        "npz": read_npy,
        "jcamp": read_jcamp,
        "innospectra": read_innospectra_csv,
    }
    return readers[chosen](path, **options)

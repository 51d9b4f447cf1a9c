"""Request bodies -> validated numpy arrays, with errors that name the field and the reason.

Three body kinds: JSON (parsed and type-checked by the pydantic models of :mod:`.schemas`),
``application/x-npy`` (a float ``(N, L)`` or ``(L,)`` array, loaded without pickle) and
``text/csv`` (the training CSV format, :func:`wavemae.data.readers.read_csv_wide`).
No FastAPI here: the routes pass in bytes and the content type.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from .errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from .schemas import EmbedRequest, SpectraRequest
from .uploads import (
    UPLOAD_MEDIA_TYPES,
    UploadOptions,
    check_unit,
    convert_range,
    convert_unit,
    read_file_body,
    unit_hint,
)
from .validation import clean_loc

__all__ = [
    "CSV_MEDIA_TYPES",
    "NPY_MEDIA_TYPE",
    "SpectraBody",
    "check_json",
    "field_name",
    "load_npy",
    "nan_as_missing",
    "parse_csv",
    "parse_json",
    "read_spectra",
    "spectra_array",
    "to_model_unit",
    "vector_array",
]

NPY_MEDIA_TYPE = "application/x-npy"
CSV_MEDIA_TYPES = ("text/csv", "application/csv")
ModelT = TypeVar("ModelT", bound=BaseModel)


def field_name(loc: tuple[Any, ...]) -> str:
    """``("spectra", 3, 17)`` -> ``"spectra[3][17]"`` (union member tags left out)."""
    out = ""
    for part in clean_loc(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def parse_json(model: type[ModelT], body: bytes) -> ModelT:
    """Parse and type-check a JSON body.

    Raises:
        InvalidInput: not JSON, or the first field that does not fit (named, with the reason).
    """
    if not body.strip():
        raise InvalidInput("the request body is empty; send a JSON object", field="body")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        # A missing required field explains more than a misspelt extra one: report it first.
        first = min(errors, key=lambda e: e["type"] != "missing")
        if first["type"] in ("json_invalid", "model_type", "model_attributes_type"):
            reason = (
                "is not a JSON object"
                if first["type"] != "json_invalid"
                else ("is not valid JSON (" + first["msg"].removeprefix("Invalid JSON: ") + ")")
            )
            raise InvalidInput(f"the request body {reason}", field="body") from None
        where = field_name(tuple(first["loc"]))
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "is not a known field"
        raise InvalidInput(f"{where}: {message}", field=where) from None


def spectra_array(rows: list[list[float]], *, field: str, max_spectra: int) -> np.ndarray:
    """Check a list of spectra and stack it into ``(N, L)`` float64.

    Raises:
        InvalidInput: no spectra, an empty spectrum, or spectra of different lengths.
        PayloadTooLarge: more than ``max_spectra`` spectra.
    """
    if not rows:
        raise InvalidInput(f"{field} is empty; send at least one spectrum", field=field)
    if len(rows) > max_spectra:
        raise PayloadTooLarge(
            f"{field} holds {len(rows)} spectra; at most {max_spectra} per request",
            field=field,
        )
    length = len(rows[0])
    for i, row in enumerate(rows):
        if not row:
            raise InvalidInput(f"{field}[{i}] is empty", field=f"{field}[{i}]")
        if len(row) != length:
            raise InvalidInput(
                f"{field}[{i}] has {len(row)} values but {field}[0] has {length}; "
                "all spectra in one request must have the same length",
                field=f"{field}[{i}]",
            )
    return np.array(rows, dtype=np.float64)


def vector_array(values: list[float] | None, *, field: str) -> np.ndarray | None:
    """A 1-D float64 array, or None; empty lists are refused."""
    if values is None:
        return None
    if not values:
        raise InvalidInput(f"{field} is empty", field=field)
    return np.array(values, dtype=np.float64)


def load_npy(body: bytes, *, max_spectra: int, allow_nan: bool = False) -> np.ndarray:
    """A ``.npy`` body -> ``(N, L)`` float64 (a 1-D array is one spectrum).

    The header's shape and dtype are checked against the body's length before any array is
    made, so a header declaring a huge shape costs nothing.

    Raises:
        InvalidInput: not a .npy file, object/non-numeric dtype, wrong rank, empty, a shape the
            data does not fill, NaN/inf.
        PayloadTooLarge: more than ``max_spectra`` rows.
    """
    shape, dtype, fortran_order, offset = _npy_header(body)
    if dtype.kind not in "fiu":
        raise InvalidInput(f"the array has dtype {dtype}; send float32", field="body")
    if len(shape) not in (1, 2):
        raise InvalidInput(f"the array has shape {shape}; send (N, L) spectra", field="body")
    rows = shape[0] if len(shape) == 2 else 1
    if rows > max_spectra:
        raise PayloadTooLarge(
            f"the array holds {rows} spectra; at most {max_spectra} per request", field="body"
        )
    count = math.prod(shape)
    if count == 0:
        raise InvalidInput(f"the array has shape {shape}; it is empty", field="body")
    if count * dtype.itemsize != len(body) - offset:
        raise InvalidInput(
            f"the .npy header declares shape {shape} ({count * dtype.itemsize} bytes of "
            f"{dtype}) but the body holds {len(body) - offset} bytes of data",
            field="body",
        )
    array = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
    array = array.reshape(shape, order="F" if fortran_order else "C").reshape(rows, -1)
    array = array.astype(np.float64)
    if not allow_nan:
        _check_finite(array, "body")
    return array


def _npy_header(body: bytes) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """``(shape, dtype, fortran_order, data offset)`` from a .npy header, reading nothing else.

    Raises:
        InvalidInput: not a .npy header, or one describing pickled objects.
    """
    from wavemae.data.readers import npy_header

    try:
        return npy_header(body)
    except ValueError:
        raise InvalidInput(
            "the body is not a .npy array (numpy.save format, no pickled objects)", field="body"
        ) from None


def _check_finite(array: np.ndarray, field: str) -> None:
    finite = np.isfinite(array)
    if not finite.all():
        row, col = (int(v) for v in np.argwhere(~finite)[0])
        raise InvalidInput(
            f"{field}[{row}][{col}] is {array[row, col]}; values must be finite numbers",
            field=f"{field}[{row}][{col}]",
        )


def parse_csv(body: bytes, *, max_spectra: int) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """A CSV body in the training format (header row = wavelengths, optional id/metadata columns).

    Returns:
        ``(values (N, L) float64, wavelengths (L,) float64, ids or None)``.

    Raises:
        InvalidInput: the file does not parse (the message names line and column).
        PayloadTooLarge: more than ``max_spectra`` rows.
    """
    from wavemae.data.readers import parse_csv_wide
    from wavemae.data.spectra import SpectraFormatError

    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the CSV upload is not UTF-8 text", field="body") from None
    try:
        spectra = parse_csv_wide(text, source="upload")
    except csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit
        raise InvalidInput(f"the CSV upload cannot be read: {exc}", field="body") from None
    except (SpectraFormatError, ValueError) as exc:
        problem = exc.problem if isinstance(exc, SpectraFormatError) else str(exc)
        line = getattr(exc, "line", None)
        where = f"line {line}: " if line else ""
        raise InvalidInput(f"the CSV upload: {where}{problem}", field="body") from None
    if spectra.values.shape[0] > max_spectra:
        raise PayloadTooLarge(
            f"the CSV holds {spectra.values.shape[0]} spectra; at most {max_spectra} per request",
            field="body",
        )
    return spectra.values.astype(np.float64), spectra.wavelengths, spectra.ids


def check_json(kind: str, allowed: tuple[str, ...] = ()) -> None:
    """Accept JSON (or no Content-Type) and the media types in ``allowed``; else 415."""
    if kind in ("", "application/json", *allowed) or kind.endswith("+json"):
        return
    accepted = ", ".join(("application/json", *allowed))
    raise UnsupportedMediaType(f"Content-Type {kind!r} is not accepted here; send {accepted}")


@dataclass(frozen=True)
class SpectraBody:
    """A request body of spectra, decoded.

    Attributes:
        values: ``(N, L)`` float64, finite.
        wavelengths: ``(L,)`` float64, or None (the model's grid).
        ids: row ids of a file upload that names its spectra, else None.
        missing: ``missing`` of a /reconstruct JSON body, else None.
        unit: the unit of ``wavelengths`` (``nm``, ``um``, ``cm-1``), or None (the model's).
        metadata: per-spectrum metadata from a file's header or columns, else None.
        name: the upload's file name, else None.
        request: the parsed JSON request model (JSON bodies), for the route's own options;
            else None.
        format: how the body was read: a :data:`wavemae.data.FORMATS` entry for a file,
            ``npy`` for a raw .npy body, ``json`` for JSON.
    """

    values: np.ndarray
    wavelengths: np.ndarray | None
    ids: list[str] | None = None
    missing: list[list[Any]] | None = None
    unit: str | None = None
    metadata: list[dict[str, Any]] | None = None
    name: str | None = None
    request: SpectraRequest | None = None
    format: str = "json"


def read_spectra(
    body: bytes,
    kind: str,
    *,
    max_spectra: int,
    model: type[SpectraRequest] = EmbedRequest,
    options: UploadOptions | None = None,
) -> SpectraBody:
    """A body of spectra in any accepted format -> arrays.

    Args:
        body: the raw body.
        kind: its media type without parameters (``""`` when absent = JSON).
        max_spectra: more spectra answer 413.
        model: the JSON request model (:class:`EmbedRequest` or :class:`ReconstructRequest`).
        options: query options (format, filename, unit); a ``format`` or ``filename`` makes
            any body a file upload.

    Raises:
        InvalidInput, PayloadTooLarge: see :func:`load_npy`, :func:`parse_json`,
            :func:`spectra_array` and :func:`~.uploads.read_file_body`.
        UnsupportedMediaType: another media type.
    """
    options = options or UploadOptions()
    is_file = options.format is not None or (
        options.filename is not None and kind not in ("", "application/json")
    )
    if kind == NPY_MEDIA_TYPE and not is_file:
        values = load_npy(body, max_spectra=max_spectra, allow_nan=options.nan_as_missing)
        values, missing = nan_as_missing(values, None, options.nan_as_missing, "body")
        return SpectraBody(values, None, missing=missing, unit=options.unit, format="npy")
    if is_file or kind in UPLOAD_MEDIA_TYPES:
        values, wavelengths, unit, ids, metadata, fmt = read_file_body(
            body, kind, options, max_spectra=max_spectra
        )
        values, missing = nan_as_missing(values, None, options.nan_as_missing, "body")
        return SpectraBody(
            values,
            wavelengths,
            ids,
            missing,
            unit=unit,
            metadata=metadata,
            name=options.filename,
            format=fmt,
        )
    check_json(kind, (NPY_MEDIA_TYPE, *UPLOAD_MEDIA_TYPES, "multipart/form-data"))
    req = parse_json(model, body)
    values, missing = nan_as_missing(
        spectra_array(req.spectra, field="spectra", max_spectra=max_spectra),
        req.missing,
        req.nan_as_missing or options.nan_as_missing,
        "spectra",
    )
    return SpectraBody(
        values,
        vector_array(req.wavelengths, field="wavelengths"),
        missing=missing,
        unit=check_unit(req.unit, "unit") or options.unit,
        request=req,
    )


def nan_as_missing(
    values: np.ndarray, missing: list[list[Any]] | None, allowed: bool, field: str
) -> tuple[np.ndarray, list[list[Any]] | None]:
    """NaN values (JSON ``NaN`` or ``null``) as missing positions, or a clear 422.

    With ``allowed``, each NaN position joins that spectrum's ``missing`` list and its value
    is interpolated from its neighbours (it is hidden from the encoder; this only lets the
    preprocessing run). Infinities are always refused.

    Raises:
        InvalidInput: NaN without ``allowed``, an infinity, or a spectrum with no value.
    """
    nan = np.isnan(values)
    if np.isinf(values).any():
        row, col = (int(v) for v in np.argwhere(np.isinf(values))[0])
        where = f"{field}[{row}][{col}]"
        raise InvalidInput(f"{where} is infinite; values must be finite numbers", field=where)
    if not nan.any():
        return values, missing
    row, col = (int(v) for v in np.argwhere(nan)[0])
    where = f"{field}[{row}][{col}]"
    if not allowed:
        raise InvalidInput(
            f"{where} is NaN (or null), not a finite number; send nan_as_missing=true to "
            "treat NaN values as missing bands",
            field=where,
        )
    if missing is not None and len(missing) != values.shape[0]:
        return values, missing  # visible_mask names the mismatch
    out = values.copy()
    merged = [list(items) for items in missing] if missing is not None else []
    if not merged:
        merged = [[] for _ in range(values.shape[0])]
    positions = np.arange(values.shape[1])
    for i in np.flatnonzero(nan.any(axis=1)):
        holes = nan[i]
        if holes.all():
            raise InvalidInput(f"{field}[{i}] has no value that is not NaN", field=f"{field}[{i}]")
        out[i, holes] = np.interp(positions[holes], positions[~holes], values[i, ~holes])
        merged[i].extend(int(p) for p in positions[holes])
    return out, merged


def to_model_unit(
    spectra: SpectraBody,
    model_unit: str,
    grid: np.ndarray | None = None,
    *,
    relative: bool = False,
    ranges_in_unit: bool = False,
) -> tuple[SpectraBody, bool]:
    """``spectra`` with its wavelengths and its ``missing`` wavelength ranges in
    ``model_unit``, and whether the axis was reversed (a wavenumber conversion; the values and
    ``missing`` positions are reversed with it). ``unit`` stays the caller's, for messages.

    Args:
        spectra: the decoded body; ``unit`` None means the model's unit.
        model_unit: the served model's unit.
        grid: the model's grid: wavelengths sent without a unit that miss it entirely but
            would fit it in another unit are refused with that hint.
        relative: the model is axis-relative (any contiguous range, resampled over itself):
            the axis and ``missing`` stay in the caller's unit, unconverted.
        ranges_in_unit: the request carries other wavelength ranges (``/similar``'s
            ``exclude``) that ``unit`` is for, so spectra on the model's grid may name it.

    Raises:
        InvalidInput: a unit sent without wavelengths for another unit, an axis that cannot
            be converted, or (with ``grid``) numbers that look like another unit.
    """
    unit = spectra.unit
    if relative:
        return spectra, False
    if unit is None and grid is not None and spectra.wavelengths is not None:
        hint = unit_hint(spectra.wavelengths, model_unit, grid, model_unit)
        if hint:
            w = spectra.wavelengths
            raise InvalidInput(
                f"wavelengths span {w.min():g}-{w.max():g}, outside the model's range "
                f"{grid.min():g}-{grid.max():g} {model_unit}{hint}",
                field="wavelengths",
            )
    if unit is None or unit == model_unit:
        return spectra, False
    missing = _missing_in_model_unit(spectra.missing, unit, model_unit)
    if spectra.wavelengths is None:
        ranges = ranges_in_unit or (
            missing is not None and any(not isinstance(m, int) for row in missing for m in row)
        )
        if ranges:  # spectra on the model's grid, their ranges in the caller's unit
            return replace(spectra, missing=missing), False
        raise InvalidInput(
            f"unit={unit!r} but no wavelengths: spectra without wavelengths are on the model's "
            f"grid, in {model_unit}",
            field="unit",
        )
    values, axis = convert_unit(spectra.values, spectra.wavelengths, unit, model_unit)
    flipped = values is not spectra.values and axis.size > 1
    if flipped and missing is not None:
        last = values.shape[1] - 1
        missing = [
            [last - m if isinstance(m, int) and 0 <= m <= last else m for m in row]
            for row in missing
        ]
    return replace(spectra, values=values, wavelengths=axis, missing=missing), flipped


def _missing_in_model_unit(
    missing: list[list[Any]] | None, unit: str, model_unit: str
) -> list[list[Any]] | None:
    """``missing`` with its ``[low, high]`` wavelength ranges converted from the caller's
    ``unit``; positions (ints) stay as they are."""
    if missing is None:
        return None
    return [
        [
            item
            if isinstance(item, int)
            else convert_range(item, unit, model_unit, f"missing[{i}][{j}]")
            for j, item in enumerate(row)
        ]
        for i, row in enumerate(missing)
    ]

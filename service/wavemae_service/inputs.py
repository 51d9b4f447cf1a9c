"""Request bodies -> validated numpy arrays, with errors that name the field and the reason.

Three body kinds: JSON (parsed and type-checked by the pydantic models of :mod:`.schemas`),
``application/x-npy`` (a float ``(N, L)`` or ``(L,)`` array, loaded without pickle) and
``text/csv`` (the training CSV format, :func:`wavemae.data.readers.read_csv_wide`).
No FastAPI here: the routes pass in bytes and the content type.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from .errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from .schemas import EmbedRequest, ReconstructRequest
from .validation import clean_loc

__all__ = [
    "CSV_MEDIA_TYPES",
    "NPY_MEDIA_TYPE",
    "SpectraBody",
    "check_json",
    "field_name",
    "load_npy",
    "parse_csv",
    "parse_json",
    "read_spectra",
    "spectra_array",
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


def load_npy(body: bytes, *, max_spectra: int) -> np.ndarray:
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
    _check_finite(array, "body")
    return array


def _npy_header(body: bytes) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """``(shape, dtype, fortran_order, data offset)`` from a .npy header, reading nothing else.

    Raises:
        InvalidInput: not a .npy header, or one describing pickled objects.
    """
    stream = io.BytesIO(body)
    try:
        major, _ = np.lib.format.read_magic(stream)
        read = (
            np.lib.format.read_array_header_1_0
            if major == 1
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = read(stream)
    except (ValueError, OSError, EOFError, SyntaxError):
        raise InvalidInput(
            "the body is not a .npy array (numpy.save format, no pickled objects)", field="body"
        ) from None
    if dtype.hasobject:
        raise InvalidInput(
            "the body is not a .npy array (numpy.save format, no pickled objects)", field="body"
        )
    return tuple(int(n) for n in shape), dtype, bool(fortran_order), stream.tell()


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
        ids: row ids of a CSV upload with an id column, else None.
        missing: ``missing`` of a /reconstruct JSON body, else None.
    """

    values: np.ndarray
    wavelengths: np.ndarray | None
    ids: list[str] | None = None
    missing: list[list[Any]] | None = None


def read_spectra(
    body: bytes,
    kind: str,
    *,
    max_spectra: int,
    model: type[EmbedRequest] = EmbedRequest,
    csv: bool = False,
) -> SpectraBody:
    """A body of spectra in any accepted format -> arrays.

    Args:
        body: the raw body.
        kind: its media type without parameters (``""`` when absent = JSON).
        max_spectra: more spectra answer 413.
        model: the JSON request model (:class:`EmbedRequest` or :class:`ReconstructRequest`).
        csv: whether ``text/csv`` is accepted.

    Raises:
        InvalidInput, PayloadTooLarge: see :func:`load_npy`, :func:`parse_csv`,
            :func:`parse_json` and :func:`spectra_array`.
        UnsupportedMediaType: another media type.
    """
    if kind == NPY_MEDIA_TYPE:
        return SpectraBody(load_npy(body, max_spectra=max_spectra), None)
    if csv and kind in CSV_MEDIA_TYPES:
        values, wavelengths, ids = parse_csv(body, max_spectra=max_spectra)
        return SpectraBody(values, wavelengths, ids)
    check_json(kind, (NPY_MEDIA_TYPE, *CSV_MEDIA_TYPES) if csv else (NPY_MEDIA_TYPE,))
    req = parse_json(model, body)
    return SpectraBody(
        spectra_array(req.spectra, field="spectra", max_spectra=max_spectra),
        vector_array(req.wavelengths, field="wavelengths"),
        missing=req.missing if isinstance(req, ReconstructRequest) else None,
    )

"""Spectra files as request bodies: instrument and table files read by
:func:`wavemae.data.read_spectra`, and the caller's unit turned into the model's.

A file arrives as a raw body with a media type (``text/csv``, ``chemical/x-jcamp-dx``,
``application/octet-stream`` with ``?filename=`` or ``?format=``, ...) or as the file part of a
multipart form; the routes hand over its bytes, name and the query options. The format is
detected from content and name unless ``format`` says it. No FastAPI here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import InvalidInput, PayloadTooLarge

__all__ = [
    "UPLOAD_MEDIA_TYPES",
    "UploadOptions",
    "convert_range",
    "convert_unit",
    "range_text",
    "read_file_body",
    "unit_hint",
]

#: Media types read as spectra files; the value is the format they imply (None: detected).
UPLOAD_MEDIA_TYPES: dict[str, str | None] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "csv",
    "text/plain": None,
    "chemical/x-jcamp-dx": "jcamp",
    "application/x-jcamp-dx": "jcamp",
    "application/octet-stream": None,
    "application/x-npz": "npz",
    "application/zip": "npz",
}

_NM_PER_UNIT = {"nm": 1.0, "um": 1000.0}


@dataclass(frozen=True)
class UploadOptions:
    """How to read a body of spectra, from the query string.

    Attributes:
        format: one of ``wavemae.data.FORMATS``, or None (detected).
        filename: the upload's file name (helps the detection, names it in errors).
        unit: the unit of the caller's axis (``nm``, ``um``, ``cm-1``), or None (the file's own,
            else the model's).
        nan_as_missing: NaN values are treated as missing bands instead of refused.
    """

    format: str | None = None
    filename: str | None = None
    unit: str | None = None
    nan_as_missing: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str], filename: str | None = None) -> UploadOptions:
        """Options from ``?format=&filename=&unit=&nan_as_missing=``.

        Raises:
            InvalidInput: an unknown format or unit, or a non-boolean ``nan_as_missing``.
        """
        from wavemae.data import FORMATS

        fmt = query.get("format") or None
        if fmt is not None and fmt not in FORMATS:
            raise InvalidInput(f"format={fmt!r} is not one of {list(FORMATS)}", field="format")
        flag = query.get("nan_as_missing", "false").strip().lower()
        if flag not in ("true", "false", "1", "0", "yes", "no"):
            raise InvalidInput(
                f"nan_as_missing={flag!r} is not a boolean (true or false)",
                field="nan_as_missing",
            )
        return cls(
            format=fmt,
            filename=query.get("filename") or filename,
            unit=check_unit(query.get("unit")),
            nan_as_missing=flag in ("true", "1", "yes"),
        )


def check_unit(unit: str | None, field: str = "unit") -> str | None:
    """A spelling of nm, um (µm) or cm-1 -> its canonical name; None stays None.

    Raises:
        InvalidInput: another unit.
    """
    if unit is None or unit == "":
        return None
    from wavemae.data import normalize_unit

    try:
        return normalize_unit(unit)
    except ValueError:
        raise InvalidInput(
            f"{field}={unit!r} is not a spectral unit; send nm, um or cm-1", field=field
        ) from None


def read_file_body(
    body: bytes, kind: str, options: UploadOptions, *, max_spectra: int
) -> tuple[np.ndarray, np.ndarray, str, list[str] | None, list[dict] | None, str]:
    """A spectra file -> ``(values (N, L) float64, wavelengths (L,), unit, ids, metadata,
    format)``, ``format`` the :data:`wavemae.data.FORMATS` entry it was read as.

    Raises:
        InvalidInput: the file cannot be read (the message names the upload and the problem).
        PayloadTooLarge: more than ``max_spectra`` spectra.
    """
    from wavemae.data import SpectraFormatError, detect_format, read_spectra

    fmt = options.format or UPLOAD_MEDIA_TYPES.get(kind)
    # the numpy reader tells .npz from .npy by the name's suffix
    name = options.filename or (f"upload.{fmt}" if fmt else "upload")
    label = f"the upload {name!r}" if options.filename else f"the {(fmt or 'file').upper()} upload"
    try:
        chosen = fmt or detect_format(body[:16384], name)
        extra = {"allow_nan": True} if chosen == "csv" and options.nan_as_missing else {}
        spectra = read_spectra(body, chosen, name=name, **extra)
    except SpectraFormatError as exc:
        where = f" line {exc.line}:" if exc.line else ""
        raise InvalidInput(f"{label}:{where} {exc.problem}", field="body") from None
    except Exception as exc:  # third-party parsers of untrusted bytes
        # (csv.Error, struct.error, IndexError...): a broken upload is the caller's 422.
        raise InvalidInput(f"{label} cannot be read: {exc}", field="body") from None
    if len(spectra) > max_spectra:
        raise PayloadTooLarge(
            f"{label} holds {len(spectra)} spectra; at most {max_spectra} per request",
            field="body",
        )
    unit = options.unit or spectra.unit
    return (
        np.asarray(spectra.values, dtype=np.float64),
        np.asarray(spectra.wavelengths, dtype=np.float64),
        unit,
        spectra.ids,
        spectra.metadata,
        chosen,
    )


def convert_unit(
    values: np.ndarray, wavelengths: np.ndarray, unit: str, model_unit: str
) -> tuple[np.ndarray, np.ndarray]:
    """The spectra on an axis in ``model_unit`` (``nm = 1000 um = 1e7 / cm-1``); a wavenumber
    conversion reverses the axis, so the values are reversed with it.

    Raises:
        InvalidInput: a wavenumber conversion of an axis with values <= 0.
    """
    if unit == model_unit:
        return values, wavelengths
    if "cm-1" in (unit, model_unit) and np.any(wavelengths <= 0):
        raise InvalidInput(
            f"wavelengths in {unit} hold values <= 0; they cannot be converted to {model_unit}",
            field="wavelengths",
        )
    if unit == "cm-1":
        axis = 1e7 / wavelengths / _NM_PER_UNIT[model_unit]
    elif model_unit == "cm-1":
        axis = 1e7 / (wavelengths * _NM_PER_UNIT[unit])
    else:
        axis = wavelengths * _NM_PER_UNIT[unit] / _NM_PER_UNIT[model_unit]
    if axis.size > 1 and axis[0] > axis[-1]:
        return values[:, ::-1], axis[::-1]
    return values, axis


def unit_hint(wavelengths: np.ndarray, unit: str, grid: np.ndarray, model_unit: str) -> str:
    """`` (these numbers look like X; send unit=X)`` when the axis, read in another unit,
    would overlap the model's grid while in ``unit`` it does not; else ``""``."""
    lo, hi = float(grid.min()), float(grid.max())
    w = wavelengths[(wavelengths > 0) & np.isfinite(wavelengths)]
    if w.size == 0 or (w.max() >= lo and w.min() <= hi):
        return ""
    for other in ("nm", "um", "cm-1"):
        if other == unit:
            continue
        _, axis = convert_unit(np.zeros((1, w.size)), np.sort(w), other, model_unit)
        overlap = min(axis.max(), hi) - max(axis.min(), lo)
        if overlap > 0.2 * (hi - lo):
            return f" (these numbers look like {other}; send unit={other})"
    return ""


def convert_range(pair: list[float], unit: str, model_unit: str, field: str) -> list[float]:
    """A ``[low, high]`` wavelength range in the caller's ``unit`` -> ``[low, high]`` in
    ``model_unit`` (a wavenumber conversion swaps the ends).

    Raises:
        InvalidInput: an end <= 0 that a wavenumber conversion cannot take (naming ``field``).
    """
    ends = np.sort(np.asarray(pair, dtype=np.float64))
    if unit != model_unit and "cm-1" in (unit, model_unit) and np.any(ends <= 0):
        raise InvalidInput(
            f"{field}={list(pair)} in {unit} holds a value <= 0; it cannot be converted to "
            f"{model_unit}",
            field=field,
        )
    _, axis = convert_unit(np.zeros((1, 2)), ends, unit, model_unit)
    return [float(axis.min()), float(axis.max())]


def range_text(low: float, high: float, unit: str, also: str | None = None) -> str:
    """``"1100-1700 nm"``, or with ``also`` (another unit) ``"1100-1700 nm (5882.35-9090.91
    cm-1)"``: a range the way errors name it, in the unit in play first."""
    text = f"{low:g}-{high:g} {unit}"
    if also is None or also == unit:
        return text
    _, axis = convert_unit(np.zeros((1, 2)), np.array([low, high]), unit, also)
    return f"{text} ({axis.min():g}-{axis.max():g} {also})"

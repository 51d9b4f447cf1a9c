"""Small text-parsing helpers shared by the spectra readers."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from wavemae.data.spectra import SpectraFormatError

__all__ = [
    "cell_value",
    "decode_text",
    "guess_unit",
    "ordered_grid",
    "parse_float",
    "read_text",
    "unit_from_text",
]


def read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpectraFormatError(path, f"cannot read the file: {exc.strerror or exc}") from None
    return decode_text(raw, path)


def decode_text(raw: bytes, path: object) -> str:
    """Bytes of a text file as str (UTF-16 with a BOM, as Excel's "Unicode Text" writes;
    UTF-8 with or without BOM; else Latin-1)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            raw = raw.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError:
            raise SpectraFormatError(path, "the file starts like UTF-16 but is not") from None
    if not raw.strip():
        raise SpectraFormatError(path, "the file is empty")
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise SpectraFormatError(path, "the file is not text")  # pragma: no cover - latin-1 decodes all


def parse_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def ordered_grid(
    path: Path, wavelengths: np.ndarray, values: np.ndarray, *, line: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Grid made strictly increasing (descending files reversed); duplicates/disorder rejected."""
    if wavelengths.size == 0:
        raise SpectraFormatError(path, "no wavelength columns", line=line)
    if not np.all(np.isfinite(wavelengths)):
        raise SpectraFormatError(path, "the wavelength axis contains NaN or inf", line=line)
    if wavelengths.size > 1:
        steps = np.diff(wavelengths)
        if np.all(steps < 0):
            return wavelengths[::-1].copy(), values[:, ::-1].copy()
        if not np.all(steps > 0):
            equal = np.flatnonzero(steps == 0)
            if equal.size:
                k = int(equal[0])
                problem = (
                    f"duplicate wavelength {wavelengths[k]:g} "
                    f"(wavelength columns {k + 1} and {k + 2})"
                )
            else:
                k = int(np.flatnonzero(np.sign(steps) != np.sign(steps[0]))[0])
                problem = (
                    "wavelengths are neither increasing nor decreasing "
                    f"({wavelengths[k - 1]:g}, {wavelengths[k]:g}, {wavelengths[k + 1]:g} "
                    f"at wavelength columns {k}-{k + 2})"
                )
            raise SpectraFormatError(path, problem, line=line)
    return wavelengths, values


_MICRONS = re.compile(r"(?<![a-z])(um|µm|μm|microns?|micromet(er|re)s?)(?![a-z])")


def unit_from_text(text: str) -> str | None:
    """The unit a column header or comment names (``"Wavelength (nm)"``, ``"cm-1"``), or None."""
    lowered = text.lower().replace(" ", "")
    if any(h in lowered for h in ("cm-1", "cm^-1", "1/cm", "cm⁻¹", "wavenumber", "ramanshift")):
        return "cm-1"
    if _MICRONS.search(text.lower()):
        return "um"
    if "nm" in lowered or "nanomet" in lowered or "wavelength" in lowered:
        return "nm"
    return None


def guess_unit(wavelengths: np.ndarray) -> str:
    """From the range alone: 0.15-30 is µm, 150-2600 nm (UV-Vis-NIR), anything else cm^-1."""
    low, high = float(wavelengths.min()), float(wavelengths.max())
    if low >= 0.15 and high <= 30:
        return "um"
    return "nm" if low >= 150 and high <= 2600 else "cm-1"


def cell_value(text: str) -> Any:
    """A metadata cell as int, float or str (JSON-able)."""
    stripped = text.strip()
    try:
        return int(stripped)
    except ValueError:
        pass
    number = parse_float(stripped)
    if number is not None and math.isfinite(number):
        return number
    return stripped

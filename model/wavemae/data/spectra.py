"""The :class:`Spectra` container: a batch of spectra on one shared wavelength grid.

Shapes: ``N`` spectra, ``L`` bands. ``values`` is ``(N, L)`` float32, ``wavelengths`` is ``(L,)``
float64 and strictly increasing, in the unit named by ``unit`` (``"nm"`` or ``"um"`` for
wavelengths, ``"cm-1"`` for wavenumbers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["UNITS", "Spectra", "SpectraFormatError", "normalize_unit"]

#: The spectral-axis units a :class:`Spectra` may carry.
UNITS = ("nm", "um", "cm-1")

_UNIT_ALIASES = {
    "nm": "nm",
    "nanometer": "nm",
    "nanometers": "nm",
    "nanometre": "nm",
    "nanometres": "nm",
    "um": "um",
    "µm": "um",
    "μm": "um",
    "micron": "um",
    "microns": "um",
    "micrometer": "um",
    "micrometers": "um",
    "micrometre": "um",
    "micrometres": "um",
    "cm-1": "cm-1",
    "cm^-1": "cm-1",
    "cm⁻¹": "cm-1",
    "1/cm": "cm-1",
    "wavenumber": "cm-1",
    "wavenumbers": "cm-1",
}


class SpectraFormatError(ValueError):
    """A spectra file could not be read; the message names the file, the line and the problem."""

    def __init__(self, path: object, problem: str, *, line: int | None = None) -> None:
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.line = line
        self.problem = problem


def normalize_unit(unit: str) -> str:
    """Map a spelling of a spectral unit (``"NM"``, ``"µm"``, ``"1/CM"``) to one of :data:`UNITS`.

    Raises:
        ValueError: the unit is not a wavelength in nm or µm, or a wavenumber in cm^-1.
    """
    key = str(unit).strip().lower()
    if key not in _UNIT_ALIASES:
        raise ValueError(f"unit={unit!r} is not one of {UNITS} (or a spelling of them)")
    return _UNIT_ALIASES[key]


@dataclass(eq=False)
class Spectra:
    """``N`` spectra sampled on one wavelength grid.

    Attributes:
        values: ``(N, L)`` float32 intensities (absorbance, reflectance, counts, ...). The
            container does not forbid NaN/inf (the readers refuse them, and
            :meth:`wavemae.preprocessing.Preprocessor.transform` rejects them by index).
        wavelengths: ``(L,)`` float64, strictly increasing, in ``unit``.
        unit: ``"nm"`` or ``"um"`` (wavelength), or ``"cm-1"`` (wavenumber).
        ids: one string per spectrum, or None.
        metadata: one JSON-able dict per spectrum (labels, reference values, split), or None.
        image_shape: ``(rows, cols)`` when the spectra are the pixels of a hyperspectral cube
            in row-major order (``rows * cols == N``), else None.

    Raises:
        ValueError: from ``__post_init__`` when shapes, grid order, unit, ids or metadata
            do not fit together; the message names the offending sizes or positions.
    """

    values: np.ndarray
    wavelengths: np.ndarray
    unit: str = "nm"
    ids: list[str] | None = None
    metadata: list[dict[str, Any]] | None = None
    image_shape: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        if values.ndim != 2:
            raise ValueError(f"values must be 2-D (N, L); got shape {values.shape}")
        if not np.issubdtype(values.dtype, np.number):
            raise ValueError(f"values must be numeric; got dtype {values.dtype}")
        self.values = np.ascontiguousarray(values, dtype=np.float32)
        wavelengths = np.asarray(self.wavelengths, dtype=np.float64)
        if wavelengths.ndim != 1:
            raise ValueError(f"wavelengths must be 1-D (L,); got shape {wavelengths.shape}")
        if wavelengths.shape[0] != self.values.shape[1]:
            raise ValueError(
                f"wavelengths has {wavelengths.shape[0]} entries but values has "
                f"{self.values.shape[1]} columns"
            )
        if not np.all(np.isfinite(wavelengths)):
            raise ValueError("wavelengths contain NaN or inf")
        steps = np.diff(wavelengths)
        if steps.size and not np.all(steps > 0):
            bad = int(np.argmax(steps <= 0))
            raise ValueError(
                "wavelengths must be strictly increasing; "
                f"wavelengths[{bad}]={wavelengths[bad]:g} >= wavelengths[{bad + 1}]="
                f"{wavelengths[bad + 1]:g}"
            )
        self.wavelengths = np.ascontiguousarray(wavelengths)
        self.unit = normalize_unit(self.unit)
        n = self.values.shape[0]
        if self.ids is not None:
            ids = [str(i) for i in self.ids]
            if len(ids) != n:
                raise ValueError(f"ids has {len(ids)} entries but there are {n} spectra")
            self.ids = ids
        if self.metadata is not None:
            metadata = list(self.metadata)
            if len(metadata) != n:
                raise ValueError(f"metadata has {len(metadata)} entries but there are {n} spectra")
            for i, entry in enumerate(metadata):
                if not isinstance(entry, dict):
                    raise ValueError(f"metadata[{i}] must be a dict; got {type(entry).__name__}")
            self.metadata = metadata
        if self.image_shape is not None:
            rows, cols = (int(v) for v in self.image_shape)
            if rows * cols != n:
                raise ValueError(f"image_shape={(rows, cols)} holds {rows * cols} pixels, not {n}")
            self.image_shape = (rows, cols)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __repr__(self) -> str:
        lo, hi = (self.wavelengths[0], self.wavelengths[-1]) if len(self.wavelengths) else (0, 0)
        return (
            f"Spectra(n={len(self)}, bands={self.values.shape[1]}, range={lo:g}-{hi:g} {self.unit})"
        )

    @property
    def n_bands(self) -> int:
        """Number of bands ``L``."""
        return int(self.values.shape[1])

    def to_unit(self, unit: str) -> Spectra:
        """The same spectra on an axis in ``unit`` (``nm = 1000 um = 1e7 / cm^-1``), copied.

        Converting between a wavelength and a wavenumber reverses the band order, so the
        grid stays increasing.

        Raises:
            ValueError: unknown unit, or a wavenumber conversion of an axis with values <= 0.
        """
        target = normalize_unit(unit)
        nm_per_unit = {"nm": 1.0, "um": 1000.0}
        values, axis = self.values, self.wavelengths
        if target != self.unit:
            if "cm-1" in (target, self.unit) and np.any(axis <= 0):
                raise ValueError(f"cannot convert {self.unit} to {target}: axis has values <= 0")
            if self.unit == "cm-1":
                axis, values = (1e7 / axis / nm_per_unit[target])[::-1], values[:, ::-1]
            elif target == "cm-1":
                axis, values = (1e7 / (axis * nm_per_unit[self.unit]))[::-1], values[:, ::-1]
            else:
                axis = axis * nm_per_unit[self.unit] / nm_per_unit[target]
        return Spectra(
            values=values.copy(),
            wavelengths=axis.copy(),
            unit=target,
            ids=None if self.ids is None else list(self.ids),
            metadata=None if self.metadata is None else [dict(m) for m in self.metadata],
            image_shape=self.image_shape,
        )

    def subset(self, indices: Sequence[int] | np.ndarray | slice) -> Spectra:
        """The spectra at ``indices`` (integer positions, a boolean mask or a slice), copied."""
        if isinstance(indices, slice):
            positions = np.arange(len(self))[indices]
        else:
            positions = np.asarray(indices)
            if positions.dtype == bool:
                if positions.shape != (len(self),):
                    raise ValueError(
                        f"boolean mask has shape {positions.shape}; expected ({len(self)},)"
                    )
                positions = np.flatnonzero(positions)
            elif positions.size == 0:
                positions = positions.astype(np.int64)
            elif not np.issubdtype(positions.dtype, np.integer):
                raise ValueError(
                    f"indices must be integers or a boolean mask; got {positions.dtype}"
                )
            positions = positions.reshape(-1)
            out_of_range = (positions < -len(self)) | (positions >= len(self))
            if np.any(out_of_range):
                bad = int(positions[np.argmax(out_of_range)])
                raise IndexError(f"index {bad} is out of range for {len(self)} spectra")
        return Spectra(
            values=self.values[positions].copy(),
            wavelengths=self.wavelengths.copy(),
            unit=self.unit,
            ids=None if self.ids is None else [self.ids[i] for i in positions],
            metadata=None if self.metadata is None else [dict(self.metadata[i]) for i in positions],
        )

    def crop(self, low: float, high: float) -> Spectra:
        """The bands with ``low <= wavelength <= high`` (in ``self.unit``), copied.

        Raises:
            ValueError: fewer than 2 bands fall inside the range.
        """
        keep = (self.wavelengths >= low) & (self.wavelengths <= high)
        if keep.sum() < 2:
            raise ValueError(
                f"crop({low:g}, {high:g}) keeps {int(keep.sum())} bands of the "
                f"{self.wavelengths[0]:g}-{self.wavelengths[-1]:g} {self.unit} grid; need >= 2"
            )
        return Spectra(
            values=self.values[:, keep].copy(),
            wavelengths=self.wavelengths[keep].copy(),
            unit=self.unit,
            ids=None if self.ids is None else list(self.ids),
            metadata=None if self.metadata is None else [dict(m) for m in self.metadata],
            image_shape=self.image_shape,
        )

    def where(self, key: str, value: Any) -> Spectra:
        """The spectra whose ``metadata[key] == value`` (e.g. ``where("split", "calibration")``)."""
        return self.subset(np.array([m.get(key) == value for m in self._metadata_or_empty()]))

    def metadata_column(self, key: str) -> list[Any]:
        """``metadata[i].get(key)`` for every spectrum (None where absent)."""
        return [m.get(key) for m in self._metadata_or_empty()]

    def _metadata_or_empty(self) -> list[dict[str, Any]]:
        return self.metadata if self.metadata is not None else [{} for _ in range(len(self))]

    @staticmethod
    def concat(parts: Sequence[Spectra]) -> Spectra:
        """Stack spectra that share one grid and unit into one :class:`Spectra`.

        ids/metadata are kept when any part has them (missing ids become the running index,
        missing metadata empty dicts).

        Raises:
            ValueError: no parts, or parts with different units or wavelength grids.
        """
        parts = list(parts)
        if not parts:
            raise ValueError("concat needs at least one Spectra")
        first = parts[0]
        for k, part in enumerate(parts[1:], start=1):
            if part.unit != first.unit:
                raise ValueError(f"part {k} has unit {part.unit!r}; part 0 has {first.unit!r}")
            if not np.array_equal(part.wavelengths, first.wavelengths):
                raise ValueError(
                    f"part {k} has a different wavelength grid ({part.n_bands} bands, "
                    f"{part.wavelengths[0]:g}-{part.wavelengths[-1]:g}) than part 0 "
                    f"({first.n_bands} bands, {first.wavelengths[0]:g}-{first.wavelengths[-1]:g}); "
                    "resample them onto one grid first (wavemae.preprocessing.resample_to_grid)"
                )
        ids = None
        if any(p.ids is not None for p in parts):
            ids, offset = [], 0
            for p in parts:
                ids += p.ids if p.ids is not None else [str(offset + i) for i in range(len(p))]
                offset += len(p)
        metadata = None
        if any(p.metadata is not None for p in parts):
            metadata = [dict(m) for p in parts for m in p._metadata_or_empty()]
        return Spectra(
            values=np.concatenate([p.values for p in parts], axis=0),
            wavelengths=first.wavelengths.copy(),
            unit=first.unit,
            ids=ids,
            metadata=metadata,
        )

    def checksum(self) -> str:
        """sha256 hex digest over the float32 values and float64 wavelengths (little-endian).

        Used as the training-data checksum recorded in run folders.
        """
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.values, dtype="<f4").tobytes())
        digest.update(np.ascontiguousarray(self.wavelengths, dtype="<f8").tobytes())
        return digest.hexdigest()

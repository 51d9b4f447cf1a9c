"""Preprocessing shared by training and the service (numpy + scipy only, never torch).

The pipeline, in order, for a batch ``values`` of shape ``(N, L_src)`` on the caller's grid:

1. resample onto the model grid ``wavelengths`` ``(L,)`` (linear interpolation,
   :func:`resample_to_grid`), skipped when the caller's values are already on it;
2. per-spectrum normalisation: ``"none"``, ``"snv"`` (subtract mean, divide by standard
   deviation), ``"minmax"`` (map to [0, 1]) or ``"l2"`` (divide by the Euclidean norm);
3. optional Savitzky-Golay smoothing or derivative along the band axis
   (:func:`scipy.signal.savgol_filter`; derivatives are per band index, not per nm);
4. optional per-band standardisation ``(x - band_mean) / band_std`` fitted on training data.

A :class:`Preprocessor` serialises to plain JSON (:meth:`Preprocessor.to_dict`) so a model
manifest can carry it, and inverts steps 4 and 2 (:meth:`Preprocessor.inverse_transform`) so
reconstructions can be returned in the caller's scale. Step 1 lives in :mod:`wavemae.resampling`,
the normalisations of step 2 in :mod:`wavemae.normalization`; their public names are re-exported
here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from wavemae.normalization import (
    NORMALIZATIONS,
    TINY_SCALE,
    NormalizationState,
    normalization_state,
)
from wavemae.resampling import UNITS, GridRangeError, as_grid, convert_axis, resample_to_grid

__all__ = [
    "NORMALIZATIONS",
    "GridRangeError",
    "NormalizationState",
    "Preprocessor",
    "convert_axis",
    "resample_to_grid",
]

_SAVGOL_KEYS = ("window", "polyorder", "deriv")
_FORMAT_VERSION = 1


# --------------------------------------------------------------------------- preprocessor


def _check_savgol(savgol: Any) -> dict[str, int] | None:
    if savgol is None:
        return None
    if not isinstance(savgol, dict):
        raise ValueError(f"savgol must be None or a dict {_SAVGOL_KEYS}; got {savgol!r}")
    unknown = set(savgol) - set(_SAVGOL_KEYS)
    if unknown:
        raise ValueError(f"savgol has unknown keys {sorted(unknown)}; allowed: {_SAVGOL_KEYS}")
    if "window" not in savgol or "polyorder" not in savgol:
        raise ValueError(f"savgol needs 'window' and 'polyorder'; got {savgol!r}")
    checked: dict[str, int] = {}
    for key in _SAVGOL_KEYS:
        raw = savgol.get(key, 0)
        if isinstance(raw, bool) or not isinstance(raw, (int, np.integer)):
            raise ValueError(f"savgol[{key!r}]={raw!r} must be an integer")
        checked[key] = int(raw)
    window, polyorder, deriv = checked["window"], checked["polyorder"], checked["deriv"]
    if window < 3 or window % 2 == 0:
        raise ValueError(f"savgol window={window} must be an odd integer >= 3")
    if not 0 <= polyorder < window:
        raise ValueError(f"savgol polyorder={polyorder} must lie in [0, window={window})")
    if not 0 <= deriv <= polyorder:
        raise ValueError(f"savgol deriv={deriv} must lie in [0, polyorder={polyorder}]")
    return checked


def _float_list(name: str, value: Any) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, dict)):
        raise ValueError(f"{name} must be a list of numbers; got {type(value).__name__}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a list of numbers: {exc}") from None
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D list; got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf")
    return array


_AXES = ("fixed", "relative")


@dataclass
class Preprocessor:
    """The whole preprocessing pipeline of one model, serialisable as plain JSON.

    Attributes:
        wavelengths: ``(L,)`` model grid (strictly increasing, in ``unit``), or None to
            take values as they come (no resampling).
        unit: ``"nm"`` or ``"cm-1"``, the unit of ``wavelengths``.
        normalization: one of :data:`NORMALIZATIONS`, applied per spectrum.
        savgol: None, or ``{"window": odd >= 3, "polyorder": < window, "deriv": <= polyorder}``.
        standardize: whether :meth:`fit` learns per-band mean/std and :meth:`transform` applies
            them.
        band_mean, band_std: ``(L,)`` float64 learned by :meth:`fit`, None until then.
        axis: ``"fixed"`` (the default: spectra are resampled onto ``wavelengths`` and must
            cover them) or ``"relative"`` (for general models: whatever contiguous range the
            caller sends is resampled onto ``L`` evenly spaced points of its own range, and
            the unit does not matter; ``wavelengths`` is then only the nominal grid).
    """

    wavelengths: np.ndarray | None = None
    unit: str = "nm"
    normalization: str = "none"
    savgol: dict[str, int] | None = None
    standardize: bool = False
    band_mean: np.ndarray | None = field(default=None, repr=False)
    band_std: np.ndarray | None = field(default=None, repr=False)
    axis: str = "fixed"

    def __post_init__(self) -> None:
        if self.axis not in _AXES:
            raise ValueError(f"axis={self.axis!r} is not one of {_AXES}")
        if self.wavelengths is not None:
            grid = as_grid(self.wavelengths, "wavelengths")
            if not np.all(np.diff(grid) > 0):
                raise ValueError("wavelengths (the model grid) must be strictly increasing")
            self.wavelengths = grid
        if self.unit not in UNITS:
            raise ValueError(f"unit={self.unit!r} is not one of {UNITS}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization={self.normalization!r} is not one of {NORMALIZATIONS}")
        self.savgol = _check_savgol(self.savgol)
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise ValueError(f"standardize={self.standardize!r} must be a bool")
        self.standardize = bool(self.standardize)
        self.band_mean = _float_list("band_mean", self.band_mean)
        self.band_std = _float_list("band_std", self.band_std)
        if (self.band_mean is None) != (self.band_std is None):
            raise ValueError("band_mean and band_std must be given together")
        if self.band_mean is not None:
            if self.band_mean.shape != self.band_std.shape:
                raise ValueError(
                    f"band_mean has {self.band_mean.size} entries, band_std {self.band_std.size}"
                )
            if np.any(self.band_std <= 0):
                raise ValueError("band_std must be positive everywhere")
            if self.wavelengths is not None and self.band_mean.size != self.wavelengths.size:
                raise ValueError(
                    f"band_mean has {self.band_mean.size} entries but the model grid has "
                    f"{self.wavelengths.size} points"
                )

    # ----------------------------------------------------------------- properties

    @property
    def n_bands(self) -> int | None:
        """Length ``L`` of the model input, when known (from the grid or the fitted stats)."""
        if self.wavelengths is not None:
            return int(self.wavelengths.size)
        if self.band_mean is not None:
            return int(self.band_mean.size)
        return None

    @property
    def is_fitted(self) -> bool:
        """True when nothing remains to fit (no standardisation, or its stats are learned)."""
        return not self.standardize or self.band_mean is not None

    @property
    def invertible(self) -> bool:
        """Whether :meth:`inverse_transform` can map model outputs back (no SG derivative)."""
        return self.savgol is None or self.savgol["deriv"] == 0

    # ----------------------------------------------------------------- pipeline

    def _to_model_grid(self, values: Any, wavelengths: Any, unit: str | None) -> np.ndarray:
        """Validated ``(N, L)`` float64 on the model grid (steps 1 of the pipeline)."""
        try:
            array = np.asarray(values)
        except (TypeError, ValueError) as exc:  # ragged nested lists
            raise ValueError(f"values must be a rectangular array of numbers: {exc}") from None
        if array.dtype.kind not in "fiu":
            raise ValueError(f"values must be numbers; got dtype {array.dtype}")
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2:
            raise ValueError(f"values must be (N, L) or (L,); got shape {array.shape}")
        finite = np.isfinite(array)
        if not finite.all():
            bad_rows = np.flatnonzero(~finite.all(axis=1))
            raise ValueError(
                f"spectrum {int(bad_rows[0])} contains NaN or inf "
                f"({bad_rows.size} of {array.shape[0]} spectra are not finite)"
            )
        if self.axis == "relative" and self.n_bands is not None:
            src = np.arange(array.shape[1], dtype=np.float64)
            if wavelengths is not None:
                src = np.asarray(wavelengths, dtype=np.float64)
                if src.shape != (array.shape[1],):
                    raise ValueError(
                        f"values have {array.shape[1]} bands but wavelengths has {src.size} points"
                    )
            dst = np.linspace(src.min(), src.max(), self.n_bands)
            array = resample_to_grid(array, src, dst, unit=unit or self.unit)
        elif wavelengths is not None and self.wavelengths is not None:
            src = np.asarray(wavelengths, dtype=np.float64)
            if unit is not None and unit != self.unit:
                src = convert_axis(src, unit, self.unit)
            array = resample_to_grid(array, src, self.wavelengths, unit=self.unit)
        elif wavelengths is not None and np.asarray(wavelengths).shape != (array.shape[1],):
            raise ValueError(
                f"values have {array.shape[1]} bands but wavelengths has "
                f"{np.asarray(wavelengths).size} points"
            )
        expected = self.n_bands
        if expected is not None and array.shape[1] != expected:
            raise ValueError(
                f"values have {array.shape[1]} bands but the model grid has {expected}; "
                "pass the spectra's wavelengths to resample them"
            )
        return array.astype(np.float64, copy=False)

    def _normalize_and_filter(self, x: np.ndarray) -> tuple[np.ndarray, NormalizationState]:
        """Steps 2-3 on ``(N, L)`` float64."""
        state = normalization_state(x, self.normalization)
        x = (x - state.offset[:, None]) / state.scale[:, None]
        if self.savgol is not None:
            from scipy.signal import savgol_filter

            window = self.savgol["window"]
            if window > x.shape[1]:
                raise ValueError(
                    f"savgol window={window} is longer than the spectra ({x.shape[1]} bands)"
                )
            x = savgol_filter(
                x, window, self.savgol["polyorder"], deriv=self.savgol["deriv"], axis=1
            )
        return x, state

    def fit(self, values: Any, wavelengths: Any = None, *, unit: str | None = None) -> Preprocessor:
        """A copy of this preprocessor with per-band statistics learned from ``values``.

        Args:
            values: ``(N, L_src)`` training spectra (N >= 1).
            wavelengths: their grid (resampled onto the model grid), or None when they are
                already on it.
            unit: unit of ``wavelengths`` when it differs from ``self.unit``.

        Returns:
            A new :class:`Preprocessor`; when ``standardize`` is False it is an unchanged copy.
        """
        if not self.standardize:
            return replace(self)
        x = self._to_model_grid(values, wavelengths, unit)
        x, _ = self._normalize_and_filter(x)
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        # Constant bands (std ~ 0) are centred but not scaled.
        std = np.where(std > TINY_SCALE * np.maximum(1.0, np.abs(mean)), std, 1.0)
        return replace(self, band_mean=mean, band_std=std)

    def transform_with_state(
        self, values: Any, wavelengths: Any = None, *, unit: str | None = None
    ) -> tuple[np.ndarray, NormalizationState]:
        """Preprocess spectra and keep what :meth:`inverse_transform` needs.

        Args:
            values: ``(N, L_src)`` or ``(L_src,)`` finite intensities.
            wavelengths: ``(L_src,)`` their grid (any direction) to resample onto the model
                grid, or None when ``values`` are already on it (then ``L_src`` must be ``L``).
            unit: unit of ``wavelengths`` when it differs from ``self.unit`` (converted).

        Returns:
            ``(X, state)``: ``X`` ``(N, L)`` float32 model input, ``state`` the per-spectrum
            normalisation parameters.

        Raises:
            ValueError: non-finite input (names the spectrum index), wrong length, or not fitted.
            GridRangeError: the spectra do not cover the model grid.
        """
        if not self.is_fitted:
            raise ValueError("standardize=True but the preprocessor is not fitted; call fit()")
        x = self._to_model_grid(values, wavelengths, unit)
        x, state = self._normalize_and_filter(x)
        if self.standardize:
            x = (x - self.band_mean) / self.band_std
        return x.astype(np.float32), state

    def transform(
        self, values: Any, wavelengths: Any = None, *, unit: str | None = None
    ) -> np.ndarray:
        """Preprocess spectra into ``(N, L)`` float32 model input (see
        :meth:`transform_with_state` for the arguments and errors)."""
        return self.transform_with_state(values, wavelengths, unit=unit)[0]

    def inverse_transform(self, x: Any, state: NormalizationState) -> np.ndarray:
        """Map model-space spectra back to the caller's scale on the MODEL grid.

        Undoes the standardisation and the per-spectrum normalisation. With Savitzky-Golay
        smoothing (``deriv == 0``) the result is the smoothed spectrum in the caller's scale.

        Args:
            x: ``(N, L)`` model-space spectra (e.g. reconstructions).
            state: from :meth:`transform_with_state` for the same N spectra.

        Returns:
            ``(N, L)`` float32; use :func:`resample_to_grid` to go back to the caller's grid.

        Raises:
            ValueError: not invertible (a Savitzky-Golay derivative), or shapes disagree.
        """
        if not self.invertible:
            raise ValueError(
                f"a Savitzky-Golay derivative (deriv={self.savgol['deriv']}) cannot be inverted; "
                "reconstructions stay in model space"
            )
        array = np.asarray(x, dtype=np.float64)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2:
            raise ValueError(f"x must be (N, L); got shape {np.shape(x)}")
        if array.shape[0] != len(state):
            raise ValueError(f"x has {array.shape[0]} spectra but state describes {len(state)}")
        expected = self.n_bands
        if expected is not None and array.shape[1] != expected:
            raise ValueError(f"x has {array.shape[1]} bands but the model grid has {expected}")
        if self.standardize:
            if self.band_mean is None:
                raise ValueError("standardize=True but the preprocessor is not fitted")
            array = array * self.band_std + self.band_mean
        array = array * state.scale[:, None] + state.offset[:, None]
        return array.astype(np.float32)

    # ----------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON description (lists of Python floats), ``{"version": 1, ...}``."""

        def as_list(a: np.ndarray | None) -> list[float] | None:
            return None if a is None else [float(v) for v in a]

        return {
            "version": _FORMAT_VERSION,
            "wavelengths": as_list(self.wavelengths),
            "unit": self.unit,
            "normalization": self.normalization,
            "savgol": None if self.savgol is None else dict(self.savgol),
            "standardize": self.standardize,
            "band_mean": as_list(self.band_mean),
            "band_std": as_list(self.band_std),
        } | ({"axis": self.axis} if self.axis != "fixed" else {})  # fixed: as before

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        """Rebuild from :meth:`to_dict` output; exact for float64 values.

        Raises:
            ValueError: not a dict, wrong ``version``, unknown keys or bad values.
        """
        if not isinstance(d, dict):
            raise ValueError(f"preprocessing must be a JSON object; got {type(d).__name__}")
        if d.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"preprocessing version={d.get('version')!r} is not supported "
                f"(expected {_FORMAT_VERSION})"
            )
        known = {
            "version",
            "wavelengths",
            "unit",
            "normalization",
            "savgol",
            "standardize",
            "band_mean",
            "band_std",
            "axis",
        }
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"preprocessing has unknown keys {sorted(unknown)}")
        for key in ("wavelengths", "band_mean", "band_std"):
            value = d.get(key)
            if value is not None and not isinstance(value, list):
                raise ValueError(f"preprocessing {key} must be a list or null")
            if value is not None and any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                for v in value
            ):
                raise ValueError(f"preprocessing {key} must hold finite numbers only")
        return cls(
            wavelengths=d.get("wavelengths"),
            unit=d.get("unit", "nm"),
            normalization=d.get("normalization", "none"),
            savgol=d.get("savgol"),
            standardize=d.get("standardize", False),
            band_mean=d.get("band_mean"),
            band_std=d.get("band_std"),
            axis=d.get("axis", "fixed"),
        )

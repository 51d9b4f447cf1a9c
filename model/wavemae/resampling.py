"""Spectral axes: converting between ``"nm"`` and ``"cm-1"``, and resampling spectra from one
grid onto another by linear interpolation (step 1 of the
:class:`~wavemae.preprocessing.Preprocessor` pipeline; numpy only, never torch).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["UNITS", "GridRangeError", "as_grid", "convert_axis", "resample_to_grid"]

#: The spectral-axis units a grid may be in.
UNITS = ("nm", "cm-1")


class GridRangeError(ValueError):
    """The caller's wavelength grid does not cover the target grid."""


def as_grid(wavelengths: Any, name: str, min_points: int = 2) -> np.ndarray:
    """``wavelengths`` as a float64 1-D array of at least ``min_points`` finite values.

    Raises:
        ValueError: naming ``name``, when it is not.
    """
    grid = np.asarray(wavelengths, dtype=np.float64)
    if grid.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {grid.shape}")
    if grid.size < min_points:
        raise ValueError(f"{name} needs at least {min_points} points; got {grid.size}")
    if not np.all(np.isfinite(grid)):
        raise ValueError(f"{name} contains NaN or inf")
    return grid


def convert_axis(wavelengths: Any, from_unit: str, to_unit: str) -> np.ndarray:
    """Convert a spectral axis between ``"nm"`` and ``"cm-1"`` (``cm^-1 = 1e7 / nm``).

    The order of the points is kept, so an increasing nm axis becomes a decreasing cm^-1 axis;
    :func:`resample_to_grid` accepts either direction.

    Raises:
        ValueError: unknown unit, or a non-positive value that has no reciprocal.
    """
    for unit in (from_unit, to_unit):
        if unit not in UNITS:
            raise ValueError(f"unit={unit!r} is not one of {UNITS}")
    axis = np.asarray(wavelengths, dtype=np.float64)
    if from_unit == to_unit:
        return axis.copy()
    if np.any(axis <= 0):
        raise ValueError(f"cannot convert {from_unit} to {to_unit}: axis has values <= 0")
    return 1e7 / axis


def resample_to_grid(
    values: Any,
    src_wavelengths: Any,
    dst_wavelengths: Any,
    *,
    unit: str | None = None,
    rtol: float = 1e-6,
) -> np.ndarray:
    """Linearly interpolate spectra from ``src_wavelengths`` onto ``dst_wavelengths``.

    Args:
        values: ``(N, L_src)`` or ``(L_src,)`` intensities on the source grid.
        src_wavelengths: ``(L_src,)`` strictly monotonic (increasing or decreasing).
        dst_wavelengths: ``(L_dst,)`` target grid, same unit as the source.
        unit: the unit of both grids, only used in error messages.
        rtol: round-off allowance, relative to the largest absolute grid value, for the
            target's ends lying just outside the source range.

    Returns:
        float32 ``(N, L_dst)`` (or ``(L_dst,)`` for 1-D input). Bitwise equal to the input
        (cast to float32) when the two grids are equal.

    Raises:
        GridRangeError: the source grid does not cover the target range.
        ValueError: shapes disagree or a grid is not strictly monotonic.
    """
    src = as_grid(src_wavelengths, "src_wavelengths")
    dst = as_grid(dst_wavelengths, "dst_wavelengths", min_points=1)
    array = np.asarray(values)
    one_d = array.ndim == 1
    batch = array.reshape(1, -1) if one_d else array
    if batch.ndim != 2:
        raise ValueError(f"values must be (N, L) or (L,); got shape {array.shape}")
    if batch.shape[1] != src.size:
        raise ValueError(
            f"values have {batch.shape[1]} bands but src_wavelengths has {src.size} points"
        )
    steps = np.diff(src)
    if np.all(steps < 0):
        src, batch = src[::-1], batch[:, ::-1]
    elif not np.all(steps > 0):
        raise ValueError("src_wavelengths must be strictly increasing or strictly decreasing")

    if src.size == dst.size and np.array_equal(src, dst):
        out = np.array(batch, dtype=np.float32, copy=True)
        return out[0] if one_d else out

    label = f" {unit}" if unit else ""
    tol = rtol * max(abs(src[0]), abs(src[-1]), abs(dst).max())
    lo, hi = float(dst.min()), float(dst.max())
    if lo < src[0] - tol or hi > src[-1] + tol:
        raise GridRangeError(
            f"the spectrum's grid {src[0]:g}-{src[-1]:g}{label} does not cover the target "
            f"grid {lo:g}-{hi:g}{label}; supply spectra that span the whole target range"
        )
    target = np.clip(dst, src[0], src[-1])
    # Left neighbour of each target point; the last interval is closed on the right.
    left = np.clip(np.searchsorted(src, target, side="right") - 1, 0, src.size - 2)
    weight = (target - src[left]) / (src[left + 1] - src[left])
    data = batch.astype(np.float64, copy=False)
    out = data[:, left] * (1.0 - weight) + data[:, left + 1] * weight
    out = out.astype(np.float32)
    return out[0] if one_d else out

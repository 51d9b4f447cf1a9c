"""The model's grid against the caller's: which bands the encoder sees, how a partial
spectrum is extended to the model's range, and the way back to the caller's grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wavemae.preprocessing import resample_to_grid

from .errors import InvalidInput
from .uploads import convert_unit

__all__ = [
    "MissingItem",
    "check_lengths",
    "coarse_grid_warning",
    "extend_to_grid",
    "grid_warnings",
    "relative_grid",
    "to_caller_grid",
    "uncovered_ranges",
    "visible_mask",
]

#: One item of ``missing``: a position in the caller's spectrum, or a ``[lo, hi]`` range of
#: wavelengths in the model's unit.
MissingItem = int | Sequence[float]


def extend_to_grid(
    values: np.ndarray, wavelengths: np.ndarray, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The spectra sorted by wavelength and extended to ``grid``'s range with their edge
    values (those bands are hidden from the encoder; this only lets preprocessing run)."""
    order = np.argsort(wavelengths)
    w, v = wavelengths[order], values[:, order]
    if grid.min() < w[0]:
        w, v = np.concatenate([[grid.min()], w]), np.concatenate([v[:, :1], v], axis=1)
    if grid.max() > w[-1]:
        w, v = np.concatenate([w, [grid.max()]]), np.concatenate([v, v[:, -1:]], axis=1)
    return v, w


def grid_warnings(
    wavelengths: np.ndarray, coverage: float, grid: np.ndarray, grid_unit: str, unit: str
) -> list[str]:
    """A spectrum's warnings about its axis: low ``coverage`` of the model's range, and a grid
    more than 4x coarser than ``grid`` (the points the model reads; both in ``grid_unit``),
    told in the caller's ``unit``."""
    out = []
    if coverage < 0.9:
        out.append(
            f"low coverage: the wavelengths cover {coverage:.0%} of the model's range; "
            "the rest is inferred by the masked encoder"
        )
    coarse = coarse_grid_warning(wavelengths, grid, grid_unit, unit)
    if coarse:
        out.append(coarse)
    return out


def relative_grid(wavelengths: np.ndarray, seq_len: int) -> np.ndarray:
    """An axis-relative model's grid for one request: ``seq_len`` evenly spaced points over the
    caller's own range, in the caller's unit (where :class:`wavemae.preprocessing.Preprocessor`
    with ``axis="relative"`` resamples to).

    Raises:
        InvalidInput: ``wavelengths`` are not strictly monotonic (not one contiguous axis).
    """
    steps = np.diff(wavelengths)
    if wavelengths.size < 2 or not (np.all(steps > 0) or np.all(steps < 0)):
        raise InvalidInput(
            "wavelengths must be strictly increasing or strictly decreasing (one contiguous "
            "axis, any unit) for this axis-relative model",
            field="wavelengths",
        )
    return np.linspace(float(wavelengths.min()), float(wavelengths.max()), seq_len)


def coarse_grid_warning(
    wavelengths: np.ndarray, grid: np.ndarray, model_unit: str, unit: str
) -> str | None:
    """The warning for ``wavelengths`` (in ``model_unit``) spaced more than 4x the model's
    ``grid`` step, with both steps in the caller's ``unit``; None when they are not."""
    if wavelengths.size < 2 or grid.size < 2:
        return None
    step = float(np.median(np.abs(np.diff(np.sort(wavelengths)))))
    model_step = float(np.median(np.diff(grid)))
    if not (model_step > 0 and step > 4 * model_step):
        return None
    if unit != model_unit:  # the median steps of both axes as the caller counts them
        _, theirs = convert_unit(np.zeros((1, wavelengths.size)), wavelengths, model_unit, unit)
        _, ours = convert_unit(np.zeros((1, grid.size)), grid, model_unit, unit)
        step = float(np.median(np.abs(np.diff(np.sort(theirs)))))
        model_step = float(np.median(np.abs(np.diff(np.sort(ours)))))
    return (
        f"resampled from a coarse grid: {step:.4g} {unit} steps, "
        f"{step / model_step:.0f}x the model's {model_step:.4g} {unit}"
    )


def visible_mask(
    missing: Sequence[Sequence[MissingItem]] | None,
    grid: np.ndarray,
    n: int,
    n_values: int,
    wavelengths: np.ndarray | None,
) -> np.ndarray:
    """``(n, seq_len)`` bool, True = visible to the encoder, from per-spectrum ``missing`` items.

    An int ``p`` hides position ``p`` of the caller's spectrum (``n_values`` long): on the
    model's ``grid`` that is every grid point whose interpolated value depends on it (strictly
    between its neighbours in ``wavelengths``). A ``[lo, hi]`` pair hides the grid points with
    ``lo <= wavelength <= hi``.

    Raises:
        InvalidInput: not one list per spectrum, a position outside the spectrum, or a spectrum
            with nothing left visible.
    """
    visible = np.ones((n, grid.size), dtype=bool)
    if missing is None:
        return visible
    if len(missing) != n:
        raise InvalidInput(
            f"missing has {len(missing)} lists but there are {n} spectra; send one list "
            "per spectrum",
            field="missing",
        )
    for i, items in enumerate(missing):
        for j, item in enumerate(items):
            where = f"missing[{i}][{j}]"
            if isinstance(item, int):
                if not 0 <= item < n_values:
                    raise InvalidInput(
                        f"{where}={item} is not a position in a spectrum of {n_values} values",
                        field=where,
                    )
                if wavelengths is None:
                    visible[i, item] = False
                    continue
                w = wavelengths
                left = w[item - 1] if item > 0 else w[item]
                right = w[item + 1] if item < n_values - 1 else w[item]
                lo, hi = min(left, right), max(left, right)
                hide = ((grid > lo) & (grid < hi)) | (grid == w[item])
            else:
                lo, hi = sorted(item)
                hide = (grid >= lo) & (grid <= hi)
            visible[i, hide] = False
        if not visible[i].any():
            raise InvalidInput(
                f"missing[{i}] hides every position of the model's grid; at least one "
                "must stay visible",
                field=f"missing[{i}]",
            )
    return visible


def to_caller_grid(on_grid: np.ndarray, grid: np.ndarray, wavelengths: np.ndarray) -> np.ndarray:
    """``(N, seq_len)`` spectra on the model's ``grid`` -> ``(N, L_in)`` float32 on the caller's
    ``wavelengths``, by :func:`wavemae.preprocessing.resample_to_grid` (the interpolation the
    way in used); NaN where the caller's grid reaches beyond the model's range."""
    out = np.full((on_grid.shape[0], wavelengths.size), np.nan, dtype=np.float32)
    inside = (wavelengths >= grid.min()) & (wavelengths <= grid.max())
    if inside.any():
        out[:, inside] = resample_to_grid(on_grid, grid, wavelengths[inside])
    return out


def uncovered_ranges(
    grid: np.ndarray, visible: np.ndarray, margin: int = 0
) -> list[tuple[float, float]]:
    """The ``[low, high]`` wavelength ranges (inclusive, on grid points) of the runs of
    ``grid`` where ``visible`` ``(seq_len,)`` is False, each widened by ``margin`` grid points
    (a smoothing window's reach into the edge-filled values), for excluding them from a
    comparison."""
    hidden = ~np.asarray(visible, dtype=bool)
    if margin > 0:
        hidden = np.convolve(hidden, np.ones(2 * margin + 1), mode="same") > 0
    hidden = np.concatenate([[False], hidden, [False]])
    edges = np.flatnonzero(np.diff(hidden.astype(np.int8)))
    return [
        (float(min(grid[a], grid[b - 1])), float(max(grid[a], grid[b - 1])))
        for a, b in zip(edges[::2], edges[1::2], strict=True)
    ]


def check_lengths(
    values: np.ndarray,
    wavelengths: np.ndarray | None,
    seq_len: int,
    field: str,
    *,
    relative: bool = False,
) -> None:
    """Values per spectrum against ``seq_len`` (no wavelengths) or against ``wavelengths``.

    Raises:
        InvalidInput: the lengths disagree (naming ``field`` or ``wavelengths``).
    """
    if wavelengths is None:
        if values.shape[1] != seq_len:
            how = (
                ": any contiguous axis is resampled over its own range"
                if relative
                else " to resample onto its grid"
            )
            raise InvalidInput(
                f"{field} have {values.shape[1]} values per spectrum but the model expects "
                f"seq_len={seq_len} (or send 'wavelengths'{how})",
                field=field,
            )
    elif wavelengths.shape[0] != values.shape[1]:
        raise InvalidInput(
            f"wavelengths has {wavelengths.shape[0]} values but each spectrum has "
            f"{values.shape[1]}",
            field="wavelengths",
        )

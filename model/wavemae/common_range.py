"""Hit Quality Index between spectra on different axes: correlated on their common range.

:mod:`wavemae.similarity` compares spectra that share one grid. An axis-relative model keeps
every spectrum on its own axis (``seq_len`` evenly spaced points over the range it was sent
with, in the unit it was sent in), so a library holds entries on many ranges and a query may
come on yet another one, or in another unit. Instrument software compares such spectra on
their common range; this module does the same:

1. each entry's axis is put in the query's unit when both units are known (nm, um and cm-1
   convert into each other: ``nm = 1000 um = 1e7 / cm-1``); when either is not known the
   numbers are taken as they are;
2. the common range is the overlap of the two axes; the common grid has as many evenly spaced
   points over it (in the query's unit) as the sparser of the two spectra has inside it, so
   neither is compared at a resolution it does not have. Two spectra on the same range share
   the query's own grid (nothing is resampled). The Savitzky-Golay ``window`` counts points of
   this common grid: the sparser spectrum's own sampling across the overlap;
3. both are resampled onto it (linear interpolation) and compared by
   :func:`wavemae.similarity.hqi_vectors`, the request's ``exclude`` ranges read in the
   query's unit.

An entry with no overlap, or an overlap holding fewer points than the derivative window (at
least 3) or fewer than 3 after ``exclude``, is not compared: it is not a hit, and
:meth:`CommonRangeIndex.correlations` says which entries those are. Entries sharing one range
and unit are one group, scored with one matrix product per query batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from wavemae.preprocessing import resample_to_grid
from wavemae.similarity import HQIOptions, hqi_vectors, kept_bands

__all__ = ["CommonRangeIndex", "axis_in_unit", "common_grid"]

_NM_PER = {"nm": 1.0, "um": 1000.0}
_MIN_POINTS = 3


def axis_in_unit(axis: Any, unit: str | None, target: str | None) -> np.ndarray | None:
    """``axis`` (in ``unit``) expressed in ``target``, the order of the points kept.

    Either unit None (not known), or both equal: the numbers unchanged. Returns None when the
    axis cannot be converted (an unknown unit, or a value <= 0 in a wavenumber conversion).
    """
    axis = np.asarray(axis, dtype=np.float64)
    if unit is None or target is None or unit == target:
        return axis
    known = (*_NM_PER, "cm-1")
    if unit not in known or target not in known:
        return None
    if unit == "cm-1" or target == "cm-1":
        if np.any(axis <= 0):
            return None
        if unit == "cm-1":  # cm-1 -> nm -> target
            return 1e7 / axis / _NM_PER[target]
        return 1e7 / (axis * _NM_PER[unit])
    return axis * _NM_PER[unit] / _NM_PER[target]


def common_grid(query_axis: Any, entry_axis: Any, min_points: int) -> np.ndarray | None:
    """The common grid of two axes in one unit (either direction), or None when they share
    fewer than ``min_points`` points (see the module docstring, step 2).

    Returns:
        ``(n,)`` increasing, ``n`` = the fewer points either axis has inside the overlap; the
        query's own axis (sorted) when both cover the same range with as many points.
    """
    q = np.sort(np.asarray(query_axis, dtype=np.float64))
    e = np.sort(np.asarray(entry_axis, dtype=np.float64))
    if not (np.isfinite(q).all() and np.isfinite(e).all()) or q.size < 2 or e.size < 2:
        return None
    low, high = max(q[0], e[0]), min(q[-1], e[-1])
    if not high > low:
        return None
    # a few ulps of slack: the two ends of a converted axis are round-off away from each other
    slack = 1e-9 * max(abs(low), abs(high), high - low)
    inside_q = int(np.count_nonzero((q >= low - slack) & (q <= high + slack)))
    inside_e = int(np.count_nonzero((e >= low - slack) & (e <= high + slack)))
    n = min(inside_q, inside_e)
    if n < max(min_points, _MIN_POINTS):
        return None
    if n == q.size and low == q[0] and high == q[-1]:
        return q
    return np.linspace(low, high, n)


@dataclass(frozen=True)
class _Group:
    columns: np.ndarray  # (n_g,) int64, the entries of this group
    grid: np.ndarray  # (n,) the common grid, query unit
    matrix: np.ndarray  # (n_g, n_kept) float32 HQI vectors of the entries


class CommonRangeIndex:
    """A library of spectra on their own ranges, prepared for queries on one axis.

    Args:
        entries: ``(N, L)`` spectra, each on ``L`` evenly spaced points from its
            ``ranges[i, 0]`` to ``ranges[i, 1]`` (increasing).
        ranges: ``(N, 2)`` lowest and highest point of each entry's axis (NaN: unknown, never
            compared).
        units: per entry, the unit of its axis (None: not known).
        query_axis: ``(L_q,)`` the axis every query lies on.
        query_unit: its unit (None: not known); ``options.exclude`` is read in it.
        options: the comparison (:class:`wavemae.similarity.HQIOptions`).

    Preparing costs one Savitzky-Golay pass over the library and a resample of the entries
    whose range differs from the query's; searching, one matrix product per group of entries
    sharing a range and unit.
    """

    def __init__(
        self,
        entries: Any,
        ranges: Any,
        units: list[str | None],
        query_axis: Any,
        query_unit: str | None,
        options: HQIOptions,
    ) -> None:
        entries = np.asarray(entries, dtype=np.float64)
        ranges = np.asarray(ranges, dtype=np.float64).reshape(-1, 2)
        if entries.ndim != 2 or not entries.shape[0] == ranges.shape[0] == len(units):
            raise ValueError(
                f"entries {entries.shape}, ranges {ranges.shape} and {len(units)} units "
                "must describe the same entries"
            )
        self.options = options
        self.query_axis = np.asarray(query_axis, dtype=np.float64)
        self.query_unit = query_unit
        self.size = entries.shape[0]
        self.compared = np.zeros(self.size, dtype=bool)
        need = options.window if options.preprocessing.startswith("deriv") else _MIN_POINTS
        keys: dict[tuple[float, float, str | None], list[int]] = {}
        for i, (low, high) in enumerate(ranges):
            keys.setdefault((float(low), float(high), units[i]), []).append(i)
        self._groups: list[_Group] = []
        for (low, high, unit), rows in keys.items():
            columns = np.asarray(rows, dtype=np.int64)
            group = self._prepare(entries[columns], low, high, unit, need)
            if group is not None:
                self._groups.append(_Group(columns, *group))
                self.compared[columns] = True

    def _prepare(
        self, values: np.ndarray, low: float, high: float, unit: str | None, need: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """``(common grid, HQI vectors)`` of one group, or None when it is not compared."""
        if not (np.isfinite(low) and np.isfinite(high) and high > low):
            return None
        own = np.linspace(low, high, values.shape[1])
        axis = axis_in_unit(own, unit, self.query_unit)
        if axis is None:
            return None
        grid = common_grid(self.query_axis, axis, need)
        if grid is None:
            return None
        try:
            kept_bands(grid, self.options.exclude)
        except ValueError:  # exclude leaves fewer than 3 points of this overlap
            return None
        return grid, hqi_vectors(resample_to_grid(values, axis, grid), grid, self.options)

    def correlations(self, queries: Any) -> tuple[np.ndarray, np.ndarray]:
        """Pearson ``r`` of each query with each compared entry.

        Args:
            queries: ``(Q, L_q)`` spectra on ``query_axis``.

        Returns:
            ``(r, compared)``: ``(Q, N)`` float64 correlations (0 where not compared) and
            ``(N,)`` bool, the entries that share enough range with the queries' axis.
        """
        queries = np.asarray(queries, dtype=np.float64)
        queries = queries.reshape(1, -1) if queries.ndim == 1 else queries
        r = np.zeros((queries.shape[0], self.size))
        for group in self._groups:
            q = hqi_vectors(
                resample_to_grid(queries, self.query_axis, group.grid), group.grid, self.options
            )
            r[:, group.columns] = q.astype(np.float64) @ group.matrix.T.astype(np.float64)
        return r, self.compared.copy()

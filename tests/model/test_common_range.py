"""HQI between spectra on different axes (wavemae.common_range): compared on their common
range, units converted, too little overlap never a hit, scores always finite."""

from __future__ import annotations

import numpy as np
import pytest

from wavemae.common_range import CommonRangeIndex, axis_in_unit, common_grid
from wavemae.similarity import HQIIndex, HQIOptions

L = 128


def _spectrum(nm: np.ndarray, centres: tuple[float, ...]) -> np.ndarray:
    """A smooth spectrum defined on the physical axis (nm): broad bands and a baseline."""
    peaks = sum(np.exp(-(((nm - c) / 60.0) ** 2)) for c in centres)
    return 0.2 + 1e-4 * nm + peaks


FAMILIES = [(1300.0, 1900.0), (1450.0, 2100.0), (1600.0, 2300.0)]


def _library(low: float = 1100.0, high: float = 2500.0) -> tuple[np.ndarray, np.ndarray]:
    nm = np.linspace(low, high, L)
    values = np.stack([_spectrum(nm, c) for c in FAMILIES])
    return values, np.tile([low, high], (len(FAMILIES), 1))


def test_units_convert_both_ways_and_unknown_units_keep_the_numbers():
    nm = np.array([1000.0, 2000.0, 2500.0])
    np.testing.assert_allclose(axis_in_unit(nm, "nm", "cm-1"), [10000.0, 5000.0, 4000.0])
    np.testing.assert_allclose(axis_in_unit(nm, "nm", "um"), [1.0, 2.0, 2.5])
    np.testing.assert_allclose(axis_in_unit([4000.0], "cm-1", "um"), [2.5])
    np.testing.assert_allclose(axis_in_unit(nm, None, "cm-1"), nm)
    assert axis_in_unit(np.array([0.0, 1.0]), "nm", "cm-1") is None


def test_the_common_grid_has_the_sparser_spectrums_points_over_the_overlap():
    query = np.linspace(1300.0, 2000.0, L)
    entry = np.linspace(1100.0, 2500.0, L)
    grid = common_grid(query, entry, 11)
    assert grid[0] == 1300.0 and grid[-1] == 2000.0
    inside = np.count_nonzero((entry >= 1300.0) & (entry <= 2000.0))
    assert grid.size == inside  # the entry is the sparser one there
    # the same range: the query's own grid, nothing resampled
    assert common_grid(entry, entry[::-1], 11) is not None
    np.testing.assert_array_equal(common_grid(entry, entry, 11), entry)
    # no overlap, or too few points for the window
    assert common_grid(np.linspace(2600.0, 3000.0, L), entry, 3) is None
    assert common_grid(np.linspace(2480.0, 2700.0, L), entry, 11) is None


def test_on_the_same_range_it_is_the_fixed_grid_search():
    values, ranges = _library()
    nm = np.linspace(1100.0, 2500.0, L)
    queries = values[[1]] * 3.0 + 0.5
    options = HQIOptions(preprocessing="deriv2", window=11)
    r, compared = CommonRangeIndex(values, ranges, ["nm"] * 3, nm, "nm", options).correlations(
        queries
    )
    expected = HQIIndex(values, nm, options).correlations(queries)
    np.testing.assert_allclose(r, expected, atol=1e-6)
    assert compared.all()


@pytest.mark.parametrize("unit", ["nm", "cm-1", "um"])
def test_a_sub_range_query_in_any_unit_finds_its_family(unit):
    values, ranges = _library()
    nm = np.linspace(1350.0, 2050.0, 300)
    axis = axis_in_unit(nm, "nm", unit)
    order = np.argsort(axis)
    query = _spectrum(nm, FAMILIES[2])[order]
    axis = np.linspace(axis.min(), axis.max(), L)  # the query as a relative model holds it
    query = np.interp(axis, np.sort(axis_in_unit(nm, "nm", unit)), query)
    index = CommonRangeIndex(values, ranges, ["nm"] * 3, axis, unit, HQIOptions())
    r, compared = index.correlations(query[None])
    assert compared.all()
    assert int(np.argmax(r[0])) == 2
    assert r[0, 2] > 0.99 and np.isfinite(r).all()


def test_entries_without_enough_overlap_are_not_compared():
    values, ranges = _library()
    ranges[0] = (3000.0, 4000.0)  # no overlap with the query
    ranges[1] = (1990.0, 2100.0)  # 10 nm overlap: a few points, fewer than the window
    axis = np.linspace(1300.0, 2000.0, L)
    query = _spectrum(axis, FAMILIES[2])
    r, compared = CommonRangeIndex(
        values, ranges, ["nm"] * 3, axis, "nm", HQIOptions(window=11)
    ).correlations(query[None])
    assert compared.tolist() == [False, False, True]
    assert r[0, 0] == 0.0 and np.isfinite(r).all()
    # unconvertible or unknown ranges are never compared either
    ranges[2] = (np.nan, np.nan)
    _, compared = CommonRangeIndex(
        values, ranges, ["nm"] * 3, axis, "nm", HQIOptions()
    ).correlations(query[None])
    assert not compared.any()


def test_exclude_is_read_in_the_query_unit():
    nm = np.linspace(1100.0, 2500.0, L)
    base = _spectrum(nm, FAMILIES[0])
    bump = base + 0.8 * np.exp(-(((nm - 1650.0) / 15.0) ** 2))
    values = np.stack([base, bump])
    ranges = np.tile([1100.0, 2500.0], (2, 1))
    wavenumbers = np.linspace(1e7 / 2500.0, 1e7 / 1100.0, L)
    query = np.interp(1e7 / wavenumbers, nm, base)
    options = HQIOptions(preprocessing="none")
    plain, _ = CommonRangeIndex(
        values, ranges, ["nm"] * 2, wavenumbers, "cm-1", options
    ).correlations(query[None])
    excluded = HQIOptions(preprocessing="none", exclude=((1e7 / 1750.0, 1e7 / 1550.0),))
    masked, _ = CommonRangeIndex(
        values, ranges, ["nm"] * 2, wavenumbers, "cm-1", excluded
    ).correlations(query[None])
    assert plain[0, 1] < 0.99  # the bump lowers the bumped entry's r
    assert masked[0, 1] > 0.9999  # left out, the two entries are the same spectrum
    assert masked[0, 1] > plain[0, 1]

"""Hit Quality Index search: the scores users read off an HQI list, and the ranking."""

from __future__ import annotations

import numpy as np
import pytest

from wavemae.similarity import HQIIndex, HQIOptions, hqi_vectors, kept_bands, to_scale

GRID = np.linspace(1000.0, 2000.0, 201)


def _peaks(centres, widths=20.0, heights=1.0) -> np.ndarray:
    centres = np.atleast_1d(centres)
    heights = np.broadcast_to(heights, centres.shape)
    return sum(
        h * np.exp(-0.5 * ((GRID - c) / widths) ** 2) for c, h in zip(centres, heights, strict=True)
    )


def test_identical_spectrum_scores_100_and_offset_and_scale_do_not_matter():
    library = np.vstack([_peaks([1200, 1500]), _peaks([1300]), _peaks([1700, 1800])])
    # The same compound measured with a baseline offset and a different path length.
    query = 3.0 * library[0] + 0.7
    for preprocessing in ("none", "snv", "deriv1", "deriv2"):
        index = HQIIndex(library, GRID, HQIOptions(preprocessing=preprocessing, window=9))
        hits = index.search(query, k=3)
        assert hits.indices[0, 0] == 0
        assert hits.score[0, 0] == pytest.approx(100.0, abs=1e-3)


def test_hqi_equals_100_times_pearson_and_r2_scale():
    rng = np.random.default_rng(0)
    library = rng.normal(size=(6, GRID.size)).cumsum(axis=1)
    query = rng.normal(size=GRID.size).cumsum()
    options = HQIOptions(preprocessing="none")
    r = HQIIndex(library, GRID, options).correlations(query)[0]
    expected = [np.corrcoef(query, row)[0, 1] for row in library]
    np.testing.assert_allclose(r, expected, atol=1e-5)
    hits = HQIIndex(library, GRID, HQIOptions(preprocessing="none", scale="r2")).search(query, 6)
    np.testing.assert_allclose(hits.score, 100 * np.clip(hits.r, 0, None) ** 2, atol=1e-9)
    # ranked by r, so on the r2 scale a strongly anti-correlated entry still ranks last
    assert np.all(np.diff(hits.r[0]) <= 0)


def test_gap_is_the_difference_to_the_next_hit_and_nan_after_the_last_entry():
    library = np.vstack([_peaks([1200 + 50 * i, 1600]) for i in range(5)])
    hits = HQIIndex(library, GRID).search(library[0], k=5)
    np.testing.assert_allclose(hits.gap[0, :-1], hits.score[0, :-1] - hits.score[0, 1:])
    assert np.all(hits.gap[0, :-1] >= 0)
    assert np.isnan(hits.gap[0, -1])  # nothing follows the library's last entry
    # with k below the library size, the last hit's gap is to the (k+1)-th entry
    top2 = HQIIndex(library, GRID).search(library[0], k=2)
    assert top2.gap[0, 1] == pytest.approx(hits.score[0, 1] - hits.score[0, 2])


def test_constant_spectra_get_finite_zero_scores():
    library = np.vstack([np.full(GRID.size, 5.0), _peaks([1500]), np.zeros(GRID.size)])
    for preprocessing in ("none", "deriv1"):
        index = HQIIndex(library, GRID, HQIOptions(preprocessing=preprocessing))
        hits = index.search(np.vstack([np.full(GRID.size, 2.0), _peaks([1500])]), k=3)
        assert np.all(np.isfinite(hits.score))
        np.testing.assert_array_equal(hits.score[0], 0.0)
        assert hits.indices[1, 0] == 1


def test_excluded_region_removes_a_band_from_the_comparison():
    # Two references: the right compound, and one that matches only a strong water-like band.
    water = _peaks([1900], heights=5.0)
    compound = _peaks([1200, 1400])
    library = np.vstack([compound, water + _peaks([1700])])
    query = compound + water
    plain = HQIIndex(library, GRID, HQIOptions(preprocessing="none")).search(query, 2)
    assert plain.indices[0, 0] == 1
    excluded = HQIOptions(preprocessing="none", exclude=((1800.0, 2000.0),))
    hits = HQIIndex(library, GRID, excluded).search(query, 2)
    assert hits.indices[0, 0] == 0
    assert hits.score[0, 0] == pytest.approx(100.0, abs=1e-3)


def test_queries_on_another_grid_are_resampled_onto_the_library_grid():
    fine = np.linspace(1000.0, 2000.0, 1001)
    library = np.vstack([_peaks([1200]), _peaks([1600])])
    query = np.exp(-0.5 * ((fine - 1600.0) / 20.0) ** 2)
    hits = HQIIndex(library, GRID).search(query, k=1, wavelengths=fine)
    assert hits.indices[0, 0] == 1 and hits.score[0, 0] > 99.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preprocessing": "deriv3"}, "preprocessing"),
        ({"window": 8}, "window=8"),
        ({"preprocessing": "deriv2", "polyorder": 1}, "polyorder=1"),
        ({"exclude": ((1500.0, 1400.0),)}, "low < high"),
        ({"scale": "percent"}, "scale"),
    ],
)
def test_bad_options_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HQIOptions(**kwargs)


def test_excluding_almost_everything_is_refused():
    with pytest.raises(ValueError, match="exclude leaves 2 of 201 bands"):
        kept_bands(GRID, ((1000.0, 1994.0),))
    with pytest.raises(ValueError, match="longer than the spectra"):
        hqi_vectors(np.ones((1, 5)), np.arange(5.0), HQIOptions(window=9))


def test_to_scale_clips_round_off():
    np.testing.assert_allclose(to_scale(np.array([1.0000001, -1.0000001]), "hqi"), [100, -100])


@pytest.mark.slow  # a few minutes: every preprocessing and window, two grids
def test_bench_search_picks_the_documented_default_and_it_beats_raw_cosine():
    from wavemae.bench.search import search_mode
    from wavemae.similarity import DEFAULT_PREPROCESSING, DEFAULT_WINDOW

    result = search_mode()
    assert result["chosen"] == f"{DEFAULT_PREPROCESSING} w{DEFAULT_WINDOW}"
    test_rows = {
        row["method"]: row["test"]
        for row in result["rows"]
        if row["grid"] == "model" and "test" in row
    }
    default = next(v for k, v in test_rows.items() if k.endswith("(best on validation)"))
    raw = test_rows["cosine, raw spectra"]
    old = test_rows["cosine, standardised model input (old space=spectrum)"]
    for k in (1, 5):
        assert default[k] < raw[k] and default[k] < old[k]

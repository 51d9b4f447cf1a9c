"""The paired bootstrap of `wavemae bench search`: an interval that separates a clearly better
search from a worse one, and contains 0 for two searches that are the same."""

from __future__ import annotations

import numpy as np
import pytest

from wavemae.bench.bootstrap import paired_bootstrap


def _errors(rng: np.random.Generator, scale: float, q: int = 200) -> dict[int, np.ndarray]:
    return {k: scale * rng.standard_normal(q) for k in (1, 5)}


def test_a_clearly_better_search_has_an_interval_below_zero():
    rng = np.random.default_rng(1)
    better, worse = _errors(rng, 2.0), _errors(rng, 4.0)
    result = paired_bootstrap(better, worse, resamples=2000, seed=0)
    for key in ("k=1", "k=5", "mean"):
        row = result[key]
        assert row["high"] < 0, row
        assert row["low"] <= row["difference"] <= row["high"]
        assert row["p_below_zero"] > 0.99
    # and the other way round, above zero
    assert paired_bootstrap(worse, better)["mean"]["low"] > 0


def test_two_identical_searches_have_an_interval_containing_zero():
    rng = np.random.default_rng(2)
    same = _errors(rng, 3.0)
    result = paired_bootstrap(same, {k: v.copy() for k, v in same.items()})
    for key in ("k=1", "k=5", "mean"):
        assert result[key]["low"] <= 0.0 <= result[key]["high"]
        assert result[key]["difference"] == 0.0


def test_two_searches_equally_good_on_different_queries_are_not_told_apart():
    rng = np.random.default_rng(3)
    a, b = _errors(rng, 3.0), _errors(rng, 3.0)
    row = paired_bootstrap(a, b, resamples=2000, seed=0)["mean"]
    assert row["low"] < 0 < row["high"]


def test_the_same_seed_gives_the_same_interval_and_bad_input_is_refused():
    rng = np.random.default_rng(4)
    a, b = _errors(rng, 2.0), _errors(rng, 2.5)
    assert paired_bootstrap(a, b, seed=7) == paired_bootstrap(a, b, seed=7)
    with pytest.raises(ValueError, match="k="):
        paired_bootstrap(a, {1: b[1]})
    with pytest.raises(ValueError, match="Q >= 2"):
        paired_bootstrap({1: a[1]}, {1: b[1][:10]})

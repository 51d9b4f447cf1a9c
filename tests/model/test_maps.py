"""2-D maps: the same seed gives the same map, groups stay apart, new points land by their group."""

from __future__ import annotations

import numpy as np
import pytest

from wavemae.cluster import unit_rows
from wavemae.maps import fit_map


def _groups(n: int = 240, k: int = 3, dim: int = 16, seed: int = 4):
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.normal(size=(k, dim)))
    labels = np.arange(n) % k
    return unit_rows(centres[labels] + 0.15 * rng.normal(size=(n, dim))), labels


def _check_map(method: str) -> None:
    x, labels = _groups()
    fitted, new = x[:210], x[210:]
    first = fit_map(fitted, method, seed=0)
    second = fit_map(fitted, method, seed=0)
    assert first.coordinates.shape == (210, 2)
    np.testing.assert_array_equal(first.coordinates, second.coordinates)
    d = ((first.coordinates[:, None] - first.coordinates[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert np.mean(labels[:210][np.argmin(d, axis=1)] == labels[:210]) > 0.95
    placed = first.transform(new)
    np.testing.assert_array_equal(placed, first.transform(new))
    nearest = np.argmin(((placed[:, None] - first.coordinates[None]) ** 2).sum(-1), axis=1)
    assert np.mean(labels[:210][nearest] == labels[210:]) > 0.9


def test_tsne_map_is_reproducible_and_places_new_points_with_their_group():
    _check_map("tsne")


@pytest.mark.slow  # numba compiles UMAP on first use: minutes on a busy 2-core machine
def test_umap_map_is_reproducible_and_places_new_points_with_their_group():
    _check_map("umap")


def test_unknown_method_and_tiny_inputs_are_refused():
    x, _ = _groups(n=20)
    with pytest.raises(ValueError, match="method='pca'"):
        fit_map(x, "pca")
    with pytest.raises(ValueError, match="at least 5 points"):
        fit_map(x[:4], "tsne")

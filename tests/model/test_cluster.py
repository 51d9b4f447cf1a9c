"""Spherical k-means and the vMF mixture on data whose structure is known."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from wavemae.cluster import (
    choose_k,
    fit_vmf_mixture,
    log_vmf_normalizer,
    nearest_centroid,
    spherical_kmeans,
    unit_rows,
    vmf_posterior,
)


def _blobs(k: int, n: int = 400, dim: int = 16, spread: float = 0.25, seed: int = 1):
    """Unit rows around k random directions; ``spread`` = Gaussian noise before normalising."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.normal(size=(k, dim)))
    labels = rng.integers(0, k, n)
    return unit_rows(centres[labels] + spread * rng.normal(size=(n, dim))), labels, centres


def test_spherical_kmeans_recovers_known_clusters_and_is_deterministic():
    x, labels, centres = _blobs(4)
    fit = spherical_kmeans(x, 4, seed=0)
    assert adjusted_rand_score(labels, fit.labels) > 0.95
    # every true centre has a fitted centroid within a few degrees
    assert np.all((centres @ fit.centroids.T).max(axis=1) > 0.99)
    again = spherical_kmeans(x, 4, seed=0)
    np.testing.assert_array_equal(fit.labels, again.labels)
    assert fit.inertia == again.inertia
    np.testing.assert_array_equal(fit.predict(x), fit.labels)


def test_more_restarts_never_worsen_inertia_and_scale_is_ignored():
    x, _, _ = _blobs(6, spread=0.5)
    one = spherical_kmeans(x, 6, n_init=1, seed=3)
    many = spherical_kmeans(x, 6, n_init=10, seed=3)
    assert many.inertia <= one.inertia + 1e-9
    scaled = spherical_kmeans(x * 7.5, 6, n_init=10, seed=3)  # cosine: length is irrelevant
    np.testing.assert_array_equal(scaled.labels, many.labels)


def test_vmf_mixture_soft_assignments_and_concentrations():
    rng = np.random.default_rng(2)
    dim = 8
    tight = unit_rows(np.r_[1.0, np.zeros(dim - 1)] + 0.05 * rng.normal(size=(150, dim)))
    loose = unit_rows(np.r_[0.0, 1.0, np.zeros(dim - 2)] + 0.4 * rng.normal(size=(150, dim)))
    x = np.vstack([tight, loose])
    fit = fit_vmf_mixture(x, 2, seed=0)
    assert fit.converged
    np.testing.assert_allclose(fit.responsibilities.sum(axis=1), 1.0)
    truth = np.r_[np.zeros(150), np.ones(150)]
    assert adjusted_rand_score(truth, fit.labels) > 0.95
    tight_component = fit.labels[0]
    # the tight cluster gets the larger concentration
    assert fit.kappas[tight_component] > 5 * fit.kappas[1 - tight_component]
    np.testing.assert_allclose(fit.weights, [0.5, 0.5], atol=0.05)
    np.testing.assert_array_equal(fit.predict(x), fit.labels)
    assert np.all(np.isfinite(fit.predict_proba(x)))


@pytest.mark.parametrize("criterion", ["bic", "icl"])
def test_choose_k_finds_the_number_of_clusters(criterion):
    x, _, _ = _blobs(3, n=300, spread=0.2)
    best, fits = choose_k(x, range(1, 7), criterion=criterion)
    assert best == 3
    assert set(fits) == set(range(1, 7))


def test_log_normalizer_is_finite_in_high_dimension_and_matches_the_uniform_limit():
    from scipy.special import gammaln

    for dim in (3, 64, 1841):
        # kappa -> 0: the density is uniform, C = 1 / surface area of S^(d-1)
        log_area = np.log(2) + (dim / 2) * np.log(np.pi) - gammaln(dim / 2)
        assert log_vmf_normalizer(1e-9, dim) == pytest.approx(-log_area, rel=1e-3)
        values = log_vmf_normalizer(np.array([1e-3, 1.0, 1e2, 1e4, 1e6]), dim)
        assert np.all(np.isfinite(values))
    # d = 3 has a closed form: kappa / (4 pi sinh kappa)
    kappa = 2.5
    assert log_vmf_normalizer(kappa, 3) == pytest.approx(
        np.log(kappa / (4 * np.pi * np.sinh(kappa)))
    )


def test_bad_input_is_refused_with_the_reason():
    x, _, _ = _blobs(2, n=10)
    with pytest.raises(ValueError, match="k=11 is more than the 10 points"):
        spherical_kmeans(x, 11)
    with pytest.raises(ValueError, match="k=0"):
        fit_vmf_mixture(x, 0)
    with pytest.raises(ValueError, match="row 1 is all zeros"):
        spherical_kmeans(np.vstack([x[:1], np.zeros((1, x.shape[1]))]), 1)
    with pytest.raises(ValueError, match="criterion"):
        choose_k(x, [1, 2], criterion="aic")


def test_new_rows_are_assigned_from_stored_parameters_alone():
    # What the service does with a clustering kept as JSON: only centroids / weights, means
    # and kappas, as plain lists.
    x, _, _ = _blobs(3, n=300, spread=0.3)
    fit = spherical_kmeans(x, 3, seed=0)
    new, _, _ = _blobs(3, n=50, spread=0.3, seed=9)
    labels, cosine = nearest_centroid(5.0 * new, fit.centroids.tolist())
    np.testing.assert_array_equal(labels, fit.predict(new))
    np.testing.assert_allclose(cosine, (new @ fit.centroids.T).max(axis=1))
    # a point on a centroid belongs to it with cosine 1
    on, score = nearest_centroid(fit.centroids[1:2], fit.centroids)
    assert on[0] == 1 and score[0] == pytest.approx(1.0)

    mixture = fit_vmf_mixture(x, 3, seed=0)
    labels, posterior = vmf_posterior(
        new, mixture.weights.tolist(), mixture.means.tolist(), mixture.kappas.tolist()
    )
    proba = mixture.predict_proba(new)
    np.testing.assert_array_equal(labels, proba.argmax(axis=1))
    np.testing.assert_allclose(posterior, proba.max(axis=1))
    assert np.all((posterior > 1 / 3 - 1e-12) & (posterior <= 1.0))
    with pytest.raises(ValueError, match="do not fit rows of 16"):
        nearest_centroid(new, fit.centroids[:, :8])
    with pytest.raises(ValueError, match="needs means"):
        vmf_posterior(new, mixture.weights, mixture.means[:2], mixture.kappas)
    with pytest.raises(ValueError, match="all zeros"):
        nearest_centroid(np.zeros((1, 16)), fit.centroids)

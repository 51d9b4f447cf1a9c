"""Baselines and composition metrics on cases with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wavemae.models import WaveMAE
from wavemae.train.baselines import (
    block_visible_masks,
    fill_interp,
    fill_mean,
    fill_pca,
    fit_pca,
    masked_mse,
)
from wavemae.train.evaluate import (
    composition_report,
    knn_classify_loo,
    model_fill,
    reconstruction_report,
)

L, BLOCKS, HIDDEN = 64, 8, 5


def test_masks_hide_whole_blocks_reproducibly():
    vis = block_visible_masks(50, L, BLOCKS, HIDDEN, seed=3)
    assert vis.shape == (50, L) and vis.dtype == bool
    blocks = vis.reshape(50, BLOCKS, L // BLOCKS)
    assert (blocks.all(axis=2) | ~blocks.any(axis=2)).all()  # each block all-in or all-out
    assert ((~blocks.any(axis=2)).sum(axis=1) == HIDDEN).all()
    assert np.array_equal(vis, block_visible_masks(50, L, BLOCKS, HIDDEN, seed=3))
    assert not np.array_equal(vis, block_visible_masks(50, L, BLOCKS, HIDDEN, seed=4))
    with pytest.raises(ValueError, match="seq_len=64 is not divisible by n_blocks=7"):
        block_visible_masks(1, L, 7, 2, seed=0)


def test_masked_mse_scores_hidden_positions_only():
    x = np.zeros((2, 4))
    vis = np.array([[True, False, True, True], [False, True, True, True]])
    pred = np.array([[100.0, 2.0, -5.0, 9.0], [1.0, 7.0, 7.0, 7.0]])
    assert masked_mse(pred, x, vis) == pytest.approx((4.0 + 1.0) / 2)


def test_interpolation_is_exact_on_linear_spectra():
    rng = np.random.default_rng(0)
    t = np.arange(L)
    x = rng.normal(size=(20, 1)) + rng.normal(size=(20, 1)) * t  # straight lines
    vis = block_visible_masks(20, L, BLOCKS, HIDDEN, seed=1)
    vis[:, :8] = True  # keep the ends seen: interpolation, not extrapolation
    vis[:, -8:] = True
    assert masked_mse(fill_interp(x, vis), x, vis) < 1e-20
    assert masked_mse(fill_mean(x, vis, x.mean(axis=0)), x, vis) > 1.0


def test_pca_fill_in_is_exact_on_rank_two_data_and_k_matters():
    rng = np.random.default_rng(1)
    t = np.linspace(0, 1, L)
    basis = np.stack([np.sin(3 * t), np.exp(-(((t - 0.4) / 0.1) ** 2))])  # (2, L)
    mean = 1 + t**2

    def sample(n):
        return mean + rng.normal(size=(n, 2)) @ basis

    train, test = sample(200), sample(30)
    pca = fit_pca(train, max_components=8)
    vis = block_visible_masks(30, L, BLOCKS, HIDDEN, seed=2)
    assert masked_mse(fill_pca(test, vis, pca, 2), test, vis) < 1e-20
    assert masked_mse(fill_pca(test, vis, pca, 1), test, vis) > 1e-3
    assert masked_mse(fill_mean(test, vis, pca.mean), test, vis) > 1e-2
    with pytest.raises(ValueError, match="k=9 exceeds the 8 fitted components"):
        fill_pca(test, vis, pca, 9)


def test_reconstruction_report_scores_model_and_baselines_on_the_same_masks():
    torch.manual_seed(0)
    model = WaveMAE(
        seq_len=L,
        d_model=16,
        nhead=2,
        num_layers=1,
        dim_feedforward=32,
        latent_dim=8,
        dec_hidden=16,
        n_blocks=BLOCKS,
        n_mask=HIDDEN,
    )
    rng = np.random.default_rng(2)
    train = rng.normal(size=(40, L)).cumsum(axis=1).astype(np.float32)
    test = rng.normal(size=(10, L)).cumsum(axis=1).astype(np.float32)
    rep = reconstruction_report(model, train, test, repeats=3, seed=9)
    assert rep["n_masks"] == 30 and rep["n_mask"] == HIDDEN
    x = np.tile(test, (3, 1))
    vis = block_visible_masks(30, L, BLOCKS, HIDDEN, seed=9)
    assert rep["mse"]["interp"] == pytest.approx(masked_mse(fill_interp(x, vis), x, vis))
    assert rep["mse"]["model"] == pytest.approx(masked_mse(model_fill(model, x, vis), x, vis))
    assert set(rep["mse"]) == {"model", "mean", "interp", "pca2", "pca4", "pca8"}


def test_composition_knn_tells_informative_from_random_features():
    rng = np.random.default_rng(3)
    y_train, y_query = rng.uniform(0, 10, 200), rng.uniform(0, 10, 50)

    def informative(y):  # direction on a circle arc encodes y
        angle = y / 10 * np.pi / 2
        return np.stack([np.cos(angle), np.sin(angle)], axis=1)

    feats = {
        "informative": (informative(y_train), informative(y_query)),
        "random": (rng.normal(size=(200, 5)), rng.normal(size=(50, 5))),
    }
    rep = composition_report(feats, (y_train, y_query), kind="regression", ks=(1,))
    mean_rmse = rep["rmse"]["predict_mean"][0]
    assert rep["rmse"]["informative_knn1"][0] < 0.2 * mean_rmse
    assert rep["rmse"]["random_knn1"][0] > 0.8 * mean_rmse


def test_loo_1nn_accuracy_on_separated_classes_and_chance():
    rng = np.random.default_rng(4)
    centres = np.eye(3) * 10
    labels = np.repeat(np.array(["a", "b", "c"]), [10, 10, 20])
    feats = centres[np.repeat([0, 1, 2], [10, 10, 20])] + rng.normal(size=(40, 3))
    assert knn_classify_loo(feats, labels) == 1.0
    rep = composition_report({"f": (feats, None)}, (labels, None), kind="classification")
    assert rep["chance_accuracy"] == pytest.approx(0.5)
    assert rep["accuracy_1nn_loo"]["f"] == 1.0


def test_ridge_probe_leave_one_out_matches_refitting_without_each_row():
    from wavemae.train.evaluate import ridge_probe

    rng = np.random.default_rng(5)
    feats = rng.normal(size=(30, 4))
    y = feats @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=30)
    loo = ridge_probe(feats, y, None, alphas=np.array([0.1]))
    for i in (0, 7, 29):
        keep = np.arange(30) != i
        # Refit without row i, standardising with the full reference (as the probe does).
        mu, sd = feats.mean(0), feats.std(0)
        x = (feats - mu) / sd
        xc, yc = x[keep], y[keep] - y.mean()
        coef = np.linalg.solve(xc.T @ xc + 0.1 * 30 * np.eye(4), xc.T @ yc)
        # The probe centres y on all rows; LOO uses the hat-matrix shortcut of that fit.
        assert np.isfinite(loo[i])
        assert abs(loo[i] - (x[i] @ coef + y.mean())) < 0.05 * y.std()
    rep = composition_report(
        {"linear": (feats, None), "noise": (rng.normal(size=(30, 4)), None)},
        (y, None),
        kind="regression",
        ks=(1,),
    )
    assert rep["rmse"]["linear_ridge"][0] < 0.2 * rep["rmse"]["predict_mean"][0]
    assert rep["rmse"]["noise_ridge"][0] > 0.8 * rep["rmse"]["predict_mean"][0]

"""Honest evaluation of a trained WaveMAE.

Two questions, each answered next to simple baselines:

1. Masked reconstruction: on held-out spectra (in the model's preprocessed space), hide
   ``n_mask`` random blocks per spectrum and score the model's fill of the hidden positions
   against the training mean spectrum, linear interpolation across each hidden run, and PCA
   fill-in with k = 2, 4, 8 components — all on the SAME masks.
2. Composition: do the embeddings carry what the spectra are made of? Cosine k-NN on the
   embeddings next to cosine k-NN on the raw spectra, the SNV spectra and PCA scores
   (regression: RMSE against predicting the training mean; classes: accuracy against chance),
   and a ridge linear probe per feature set (is the label linearly readable at all?).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from wavemae.models.wave_mae import WaveMAE
from wavemae.train.baselines import (
    block_visible_masks,
    fill_interp,
    fill_mean,
    fill_pca,
    fit_pca,
    masked_mse,
)

__all__ = [
    "composition_report",
    "embed",
    "knn_classify_loo",
    "knn_regress",
    "model_fill",
    "reconstruction_report",
    "ridge_probe",
    "snv",
]

PCA_KS = (2, 4, 8)


@torch.no_grad()
def model_fill(
    model: WaveMAE, x: np.ndarray, visible: np.ndarray, *, batch_size: int = 256
) -> np.ndarray:
    """Reconstruction ``(N, L)`` of ``x`` from its ``visible`` positions (eval mode, fp32)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outs = []
    for start in range(0, x.shape[0], batch_size):
        xb = torch.as_tensor(x[start : start + batch_size], dtype=torch.float32, device=device)
        vb = torch.as_tensor(visible[start : start + batch_size], device=device)
        outs.append(model.reconstruct(xb, vb).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(outs, axis=0)


@torch.no_grad()
def embed(model: WaveMAE, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Embeddings ``(N, Z)`` of complete preprocessed spectra ``x`` ``(N, L)``, all visible."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outs = []
    for start in range(0, x.shape[0], batch_size):
        xb = torch.as_tensor(x[start : start + batch_size], dtype=torch.float32, device=device)
        outs.append(model.encoder.forward_all_visible(xb).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(outs, axis=0)


def reconstruction_report(
    model: WaveMAE,
    train_x: np.ndarray,
    test_x: np.ndarray,
    *,
    n_mask: int | None = None,
    repeats: int = 4,
    seed: int = 1234,
) -> dict[str, Any]:
    """Masked MSE of the model and the baselines on the same random block masks.

    Args:
        model: the model (its ``n_blocks`` and, unless given, ``n_mask`` define the masks).
        train_x: preprocessed training spectra ``(N, L)`` (mean and PCA are fitted on them).
        test_x: preprocessed held-out spectra ``(M, L)``.
        n_mask: blocks hidden per spectrum (default: the model's).
        repeats: masks drawn per held-out spectrum.
        seed: mask seed; the same seed gives the same masks.

    Returns:
        ``{"mse": {"model": ..., "mean": ..., "interp": ..., "pca2": ..., "pca4": ...,
        "pca8": ...}, "n_spectra": M, "n_masks": M * repeats, "n_mask": ..., "n_blocks": ...}``.
    """
    cfg = model.config
    n_mask = cfg.n_mask if n_mask is None else n_mask
    if test_x.shape[1] != cfg.seq_len or train_x.shape[1] != cfg.seq_len:
        raise ValueError(
            f"spectra have {test_x.shape[1]} / {train_x.shape[1]} points, model seq_len="
            f"{cfg.seq_len}"
        )
    x = np.tile(test_x, (repeats, 1))
    visible = block_visible_masks(x.shape[0], cfg.seq_len, cfg.n_blocks, n_mask, seed=seed)
    basis = fit_pca(train_x, max_components=max(PCA_KS))
    mse = {
        "model": masked_mse(model_fill(model, x, visible), x, visible),
        "mean": masked_mse(fill_mean(x, visible, basis.mean), x, visible),
        "interp": masked_mse(fill_interp(x, visible), x, visible),
    }
    for k in PCA_KS:
        if k <= basis.components.shape[0]:
            mse[f"pca{k}"] = masked_mse(fill_pca(x, visible, basis, k), x, visible)
    return {
        "mse": mse,
        "n_spectra": int(test_x.shape[0]),
        "n_masks": int(x.shape[0]),
        "n_mask": int(n_mask),
        "n_blocks": int(cfg.n_blocks),
    }


# --------------------------------------------------------------------------- composition


def snv(x: np.ndarray) -> np.ndarray:
    """Standard normal variate: each spectrum centred and scaled to unit standard deviation."""
    x = x.astype(np.float64)
    std = x.std(axis=1, keepdims=True)
    return (x - x.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)


def _unit_rows(f: np.ndarray) -> np.ndarray:
    f = f.astype(np.float64)
    norm = np.linalg.norm(f, axis=1, keepdims=True)
    return f / np.where(norm > 0, norm, 1.0)


def knn_regress(
    train_f: np.ndarray, train_y: np.ndarray, query_f: np.ndarray, *, k: int
) -> np.ndarray:
    """Cosine k-NN regression: mean ``train_y`` of the ``k`` most similar training rows.

    ``train_y`` is ``(N,)`` or ``(N, T)``; returns ``(M,)`` or ``(M, T)``.
    """
    sims = _unit_rows(query_f) @ _unit_rows(train_f).T  # (M, N)
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return train_y[nearest].mean(axis=1)


def knn_classify_loo(features: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out cosine 1-NN accuracy: each row labelled by its most similar other row."""
    u = _unit_rows(features)
    sims = u @ u.T
    np.fill_diagonal(sims, -np.inf)
    return float(np.mean(labels[np.argmax(sims, axis=1)] == labels))


def ridge_probe(
    train_f: np.ndarray,
    train_y: np.ndarray,
    query_f: np.ndarray | None,
    alphas: np.ndarray | None = None,
) -> np.ndarray:
    """Linear probe: ridge regression on standardised features, alpha by leave-one-out error.

    k-NN asks whether neighbours in cosine geometry share a label (what retrieval sees); the
    probe asks whether the label is linearly readable from the features at all.

    Args:
        train_f: ``(N, F)`` reference features; train_y: ``(N,)`` or ``(N, T)`` labels.
        query_f: ``(M, F)`` features to predict, or None for leave-one-out predictions of the
            reference rows themselves.
        alphas: ridge penalties to choose from (default ``10**-4 .. 10**4``).

    Returns:
        Predictions ``(M,)``/``(M, T)`` (or ``(N, ...)`` for leave-one-out).
    """
    alphas = np.logspace(-4, 4, 17) if alphas is None else alphas
    f = train_f.astype(np.float64)
    mu, sd = f.mean(axis=0), f.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    x = (f - mu) / sd
    y = train_y.astype(np.float64)
    y_mean = y.mean(axis=0)
    yc = (y - y_mean).reshape(len(y), -1)  # (N, T)
    u, sv, vt = np.linalg.svd(x, full_matrices=False)
    uty = u.T @ yc  # (r, T)
    best = None
    for alpha in alphas:
        shrink = sv**2 / (sv**2 + alpha * len(y))  # (r,)
        fitted = u @ (shrink[:, None] * uty)
        hat_diag = (u**2) @ shrink  # (N,)
        loo = yc - (yc - fitted) / np.maximum(1.0 - hat_diag, 1e-9)[:, None]
        err = float(np.mean((loo - yc) ** 2))
        if best is None or err < best[0]:
            best = (err, alpha, loo)
    _, alpha, loo = best
    if query_f is None:
        pred = loo
    else:
        coef = vt.T @ ((sv / (sv**2 + alpha * len(y)))[:, None] * uty)  # (F, T)
        pred = ((query_f.astype(np.float64) - mu) / sd) @ coef
    pred = pred + y_mean.reshape(1, -1)
    return pred[:, 0] if y.ndim == 1 else pred


def _rmse(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    err = np.sqrt(np.mean((pred - y) ** 2, axis=0))
    return np.atleast_1d(err)


def composition_report(
    features: dict[str, tuple[np.ndarray, np.ndarray | None]],
    labels: tuple[np.ndarray, np.ndarray | None],
    *,
    kind: str,
    ks: tuple[int, ...] = (1, 5),
    target_names: list[str] | None = None,
) -> dict[str, Any]:
    """Cosine k-NN on several feature sets against the same labels.

    Args:
        features: name -> ``(train_features, query_features)``; ``query_features`` None means
            leave-one-out within ``train_features``.
        labels: ``(train_labels, query_labels)`` (query None for leave-one-out). Regression
            labels ``(N,)`` or ``(N, T)`` floats; class labels ``(N,)``.
        kind: ``"regression"`` (RMSE per target and the predict-the-mean RMSE) or
            ``"classification"`` (leave-one-out 1-NN accuracy and the majority-class rate).
        ks: neighbour counts for regression.
        target_names: names of the regression targets.

    Raises:
        ValueError: for an unknown ``kind``.
    """
    train_y, query_y = labels
    if kind == "classification":
        if query_y is not None:
            raise ValueError("classification is scored leave-one-out: pass query labels None")
        _, counts = np.unique(train_y, return_counts=True)
        out: dict[str, Any] = {
            "kind": kind,
            "n": len(train_y),
            "chance_accuracy": float(counts.max() / counts.sum()),
            "accuracy_1nn_loo": {
                name: knn_classify_loo(tr, train_y) for name, (tr, _) in features.items()
            },
        }
        return out
    if kind != "regression":
        raise ValueError(f"kind={kind!r} must be 'regression' or 'classification'")
    y_tr = np.asarray(train_y, dtype=np.float64)
    names = target_names or [f"y{i}" for i in range(1 if y_tr.ndim == 1 else y_tr.shape[1])]
    result: dict[str, Any] = {"kind": kind, "targets": names, "rmse": {}}
    if query_y is None:  # leave-one-out: predict each row from all others
        y_q = y_tr
        mean_pred = np.stack([(y_tr.sum(0) - y_tr[i]) / (len(y_tr) - 1) for i in range(len(y_tr))])
    else:
        y_q = np.asarray(query_y, dtype=np.float64)
        mean_pred = np.broadcast_to(y_tr.mean(axis=0), y_q.shape)
    result["rmse"]["predict_mean"] = _rmse(mean_pred, y_q).tolist()
    for name, (tr, q) in features.items():
        for k in ks:
            if q is None:
                u = _unit_rows(tr)
                sims = u @ u.T
                np.fill_diagonal(sims, -np.inf)
                nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
                pred = y_tr[nearest].mean(axis=1)
            else:
                pred = knn_regress(tr, y_tr, q, k=k)
            result["rmse"][f"{name}_knn{k}"] = _rmse(pred, y_q).tolist()
        result["rmse"][f"{name}_ridge"] = _rmse(ridge_probe(tr, y_tr, q), y_q).tolist()
    result["n_train"] = len(y_tr)
    result["n_query"] = len(y_q)
    return result


def standard_features(
    model: WaveMAE,
    raw_train: np.ndarray,
    pre_train: np.ndarray,
    raw_query: np.ndarray | None,
    pre_query: np.ndarray | None,
    *,
    pca_k: int = 8,
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Feature sets compared in :func:`composition_report`.

    ``raw``: the spectra on the model grid before normalisation; ``snv``: their SNV;
    ``pca{k}``: scores on the first ``pca_k`` components of the preprocessed training spectra;
    ``embedding``: the model's all-visible embeddings of the preprocessed spectra.
    """
    basis = fit_pca(pre_train, max_components=pca_k)

    def pair(f_train: np.ndarray, f_query: np.ndarray | None) -> tuple:
        return f_train, f_query

    return {
        "raw": pair(raw_train, raw_query),
        "snv": pair(snv(raw_train), None if raw_query is None else snv(raw_query)),
        f"pca{pca_k}": pair(
            basis.scores(pre_train, pca_k),
            None if pre_query is None else basis.scores(pre_query, pca_k),
        ),
        "embedding": pair(
            embed(model, pre_train), None if pre_query is None else embed(model, pre_query)
        ),
    }

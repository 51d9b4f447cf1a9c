"""Classical chemometrics that every WaveMAE figure is compared with (numpy/scipy only).

- similarity features for cosine retrieval: raw spectra, Pearson correlation (HQI; the same
  ranking as cosine on SNV spectra), Savitzky-Golay first and second derivatives compared by
  correlation, PCA scores;
- PCA fill-in of hidden positions (:func:`wavemae.train.baselines.fill_pca`) and linear
  interpolation;
- PCA outlier statistics for QC: Hotelling's T² (scores scaled by their variances) and the Q
  residual (squared distance to the PCA subspace);
- the effective rank of a feature matrix (participation ratio of its singular values).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import savgol_filter

from wavemae.train.baselines import PCABasis, fit_pca

__all__ = [
    "auroc",
    "centre_rows",
    "classical_features",
    "effective_rank",
    "hotelling_t2",
    "q_residual",
    "unit_rows",
]


def unit_rows(f: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    f = np.asarray(f, dtype=np.float64)
    norm = np.linalg.norm(f, axis=1, keepdims=True)
    return f / np.where(norm > 0, norm, 1.0)


def centre_rows(f: np.ndarray) -> np.ndarray:
    """Each row minus its own mean: cosine of centred rows is Pearson correlation."""
    f = np.asarray(f, dtype=np.float64)
    return f - f.mean(axis=1, keepdims=True)


def _savgol(x: np.ndarray, window: int, deriv: int) -> np.ndarray:
    window = min(window, x.shape[1] - (1 - x.shape[1] % 2))  # odd and <= L
    return savgol_filter(x, window_length=window, polyorder=2, deriv=deriv, axis=1)


def classical_features(
    raw: np.ndarray, pre: np.ndarray, basis: PCABasis, pca_k: int
) -> dict[str, np.ndarray]:
    """Feature matrices compared by cosine: name -> ``(N, F)``.

    Args:
        raw: spectra on the model grid, before any normalisation ``(N, L)``.
        pre: the same spectra after the model's preprocessing ``(N, L)`` (PCA lives there).
        basis: PCA fitted on the reference spectra's ``pre``.
        pca_k: PCA components (chosen on a validation split by the caller).
    """
    return {
        "raw cosine": np.asarray(raw, dtype=np.float64),
        "Pearson (HQI)": centre_rows(raw),
        "1st derivative (SG 11) corr.": centre_rows(_savgol(raw, 11, 1)),
        "2nd derivative (SG 15) corr.": centre_rows(_savgol(raw, 15, 2)),
        f"PCA-{pca_k} scores": basis.scores(pre, pca_k),
    }


def effective_rank(f: np.ndarray) -> float:
    """Participation ratio ``(sum s²)² / sum s⁴`` of the singular values of centred ``f``."""
    f = np.asarray(f, dtype=np.float64)
    s2 = np.linalg.svd(f - f.mean(axis=0), compute_uv=False) ** 2
    return float(s2.sum() ** 2 / max((s2**2).sum(), 1e-300))


def _pca_with_variance(train: np.ndarray, k: int) -> tuple[PCABasis, np.ndarray]:
    basis = fit_pca(train, max_components=k)
    var = np.var(basis.scores(train, k), axis=0, ddof=1)
    return basis, np.maximum(var, 1e-12)


def hotelling_t2(train: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """Hotelling's T² of ``x`` rows in the ``k``-component PCA model of ``train``."""
    basis, var = _pca_with_variance(train, k)
    return np.sum(basis.scores(x, k) ** 2 / var, axis=1)


def q_residual(train: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """Q residual (squared prediction error) of ``x`` rows off the ``k``-component PCA."""
    basis = fit_pca(train, max_components=k)
    centred = np.asarray(x, dtype=np.float64) - basis.mean
    proj = centred @ basis.components[:k].T @ basis.components[:k]
    return np.sum((centred - proj) ** 2, axis=1)


def auroc(clean: np.ndarray, corrupted: np.ndarray) -> float:
    """Area under the ROC curve of a score where higher means "corrupted" (ties count 1/2)."""
    clean = np.asarray(clean, dtype=np.float64)
    corrupted = np.asarray(corrupted, dtype=np.float64)
    both = np.concatenate([clean, corrupted])
    order = both.argsort(kind="stable")
    ranks = np.empty(len(both))
    ranks[order] = np.arange(1, len(both) + 1)
    # average ranks over ties
    _, inv, counts = np.unique(both, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / counts)[inv]
    r_pos = ranks[len(clean) :].sum()
    n_pos, n_neg = len(corrupted), len(clean)
    return float((r_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))

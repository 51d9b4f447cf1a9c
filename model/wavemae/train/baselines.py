"""Masked-reconstruction baselines and metrics (numpy only).

Every function works on spectra already in the model's preprocessed space, ``x`` ``(N, L)``,
with a ``visible`` ``(N, L)`` bool mask (True = seen). A "fill" returns a full ``(N, L)``
prediction; only its values at hidden positions are scored by :func:`masked_mse`.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "PCABasis",
    "block_visible_masks",
    "fill_interp",
    "fill_mean",
    "fill_pca",
    "fit_pca",
    "masked_mse",
]


def block_visible_masks(
    n_rows: int, seq_len: int, n_blocks: int, n_mask: int, *, seed: int
) -> np.ndarray:
    """Random block masks: ``(n_rows, seq_len)`` bool, True = visible, ``n_mask`` blocks hidden.

    Raises:
        ValueError: if ``seq_len`` is not divisible by ``n_blocks`` or ``n_mask`` is not in
            ``[0, n_blocks)``.
    """
    if n_blocks <= 0 or seq_len % n_blocks != 0:
        raise ValueError(f"seq_len={seq_len} is not divisible by n_blocks={n_blocks}")
    if not 0 <= n_mask < n_blocks:
        raise ValueError(f"n_mask={n_mask} must lie in [0, n_blocks={n_blocks})")
    rng = np.random.default_rng(seed)
    ranks = rng.random((n_rows, n_blocks)).argsort(axis=1).argsort(axis=1)
    hidden_blocks = ranks < n_mask  # (N, n_blocks)
    return ~np.repeat(hidden_blocks, seq_len // n_blocks, axis=1)


def masked_mse(pred: np.ndarray, x: np.ndarray, visible: np.ndarray) -> float:
    """Mean squared error over the hidden positions only (all rows pooled).

    Raises:
        ValueError: if the shapes differ or nothing is hidden.
    """
    if pred.shape != x.shape or visible.shape != x.shape:
        raise ValueError(f"shapes differ: pred {pred.shape}, x {x.shape}, visible {visible.shape}")
    hidden = ~visible
    if not hidden.any():
        raise ValueError("visible hides no position: masked MSE is undefined")
    diff = (pred.astype(np.float64) - x.astype(np.float64))[hidden]
    return float(np.mean(diff**2))


def fill_mean(x: np.ndarray, visible: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Fill hidden positions with the training mean spectrum ``mean`` ``(L,)``."""
    return np.where(visible, x, mean[None, :])


def fill_interp(x: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Fill each hidden run by linear interpolation between its visible neighbours.

    Hidden runs at either end of a spectrum take the nearest visible value (``np.interp``).
    """
    out = np.array(x, dtype=np.float64, copy=True)
    positions = np.arange(x.shape[1])
    for i in range(x.shape[0]):
        seen = visible[i]
        out[i, ~seen] = np.interp(positions[~seen], positions[seen], x[i, seen])
    return out


class PCABasis:
    """Mean ``(L,)`` and principal directions ``(K, L)`` (rows orthonormal, by variance)."""

    def __init__(self, mean: np.ndarray, components: np.ndarray) -> None:
        self.mean = mean
        self.components = components

    def scores(self, x: np.ndarray, k: int) -> np.ndarray:
        """Projections ``(N, k)`` of complete spectra onto the first ``k`` components."""
        return (x - self.mean) @ self.components[:k].T


def fit_pca(train: np.ndarray, max_components: int = 8) -> PCABasis:
    """Principal components of ``train`` ``(N, L)`` via SVD of the centred data.

    Raises:
        ValueError: if fewer than two training spectra are given.
    """
    if train.shape[0] < 2:
        raise ValueError(f"PCA needs at least 2 training spectra, got {train.shape[0]}")
    data = train.astype(np.float64)
    mean = data.mean(axis=0)
    _, _, vt = np.linalg.svd(data - mean, full_matrices=False)
    return PCABasis(mean, vt[:max_components])


def fill_pca(x: np.ndarray, visible: np.ndarray, basis: PCABasis, k: int) -> np.ndarray:
    """Fill hidden positions with the first ``k`` components fitted to the visible values.

    For each spectrum the coefficients ``c`` minimise ``||x_v - mean_v - C_v^T c||`` over its
    visible positions ``v`` (least squares); the fill is ``mean + C^T c``.

    Raises:
        ValueError: if ``k`` exceeds the basis size.
    """
    if k > basis.components.shape[0]:
        raise ValueError(f"k={k} exceeds the {basis.components.shape[0]} fitted components")
    comps = basis.components[:k]  # (k, L)
    out = np.array(x, dtype=np.float64, copy=True)
    centred = x.astype(np.float64) - basis.mean
    # Rows sharing one mask share one least-squares problem: group them.
    patterns, inverse = np.unique(visible, axis=0, return_inverse=True)
    for p, seen in enumerate(patterns):
        rows = np.flatnonzero(inverse.ravel() == p)
        coef, *_ = np.linalg.lstsq(comps[:, seen].T, centred[np.ix_(rows, seen)].T, rcond=None)
        recon = basis.mean + (comps.T @ coef).T  # (rows, L)
        out[np.ix_(rows, ~seen)] = recon[:, ~seen]
    return out

"""Paired bootstrap of a k-NN RMSE difference between two searches on the same queries.

Two searches scored on the same held-out queries differ by a few tenths of a milligram; whether
such a difference is more than the luck of which queries were drawn is read off a paired
bootstrap: the queries are resampled with replacement (the same resample for both searches),
both RMSEs are recomputed on each resample, and the 2.5 / 97.5 % percentiles of their
difference form a 95 % interval. An interval that contains 0 says the test set cannot tell the
two apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["paired_bootstrap"]


def paired_bootstrap(
    errors_a: Mapping[int, np.ndarray],
    errors_b: Mapping[int, np.ndarray],
    *,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, float]]:
    """RMSE(a) - RMSE(b) at each k, and of the mean RMSE over the k's, with bootstrap intervals.

    Args:
        errors_a: ``{k: (Q,) prediction errors}`` of search ``a`` on the Q queries.
        errors_b: the same for search ``b``, same keys, same queries in the same order.
        resamples: bootstrap resamples of the queries (with replacement).
        seed: the generator's seed (the same seed gives the same intervals).
        level: the interval's coverage (percentile interval).

    Returns:
        ``{"k=1": {...}, "k=5": {...}, "mean": {...}}``, each with ``difference`` (on all
        queries), ``low`` and ``high`` (the interval), ``p_below_zero`` (the fraction of
        resamples where ``a`` had the lower RMSE) and ``resamples``. ``mean`` is the mean of the
        RMSEs over the k's, the criterion the default was chosen by.

    Raises:
        ValueError: different keys or shapes, fewer than 2 queries, ``resamples < 1`` or a
            level outside (0, 1).
    """
    if set(errors_a) != set(errors_b) or not errors_a:
        raise ValueError(f"errors_a has k={sorted(errors_a)} but errors_b has k={sorted(errors_b)}")
    if resamples < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"resamples={resamples} must be >= 1 and level={level} in (0, 1)")
    ks = sorted(errors_a)
    a = np.stack([np.asarray(errors_a[k], dtype=np.float64) ** 2 for k in ks])  # (K, Q)
    b = np.stack([np.asarray(errors_b[k], dtype=np.float64) ** 2 for k in ks])
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(
            f"errors must be (Q,) with Q >= 2 for every k, the same for a and b; "
            f"got {a.shape} and {b.shape}"
        )
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, a.shape[1], size=(resamples, a.shape[1]))  # (R, Q)

    def rmse(squared: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        # squared: (K, Q) -> (K,) on all queries, or (K, R) on the resamples
        if rows is None:
            return np.sqrt(squared.mean(axis=1))
        return np.sqrt(squared[:, rows].mean(axis=2))

    full = rmse(a, None) - rmse(b, None)  # (K,)
    boot = rmse(a, picks) - rmse(b, picks)  # (K, R)
    tail = 100.0 * (1.0 - level) / 2.0
    rows: dict[str, Any] = {}
    for name, point, draws in [
        *((f"k={k}", full[i], boot[i]) for i, k in enumerate(ks)),
        ("mean", full.mean(), boot.mean(axis=0)),
    ]:
        low, high = np.percentile(draws, [tail, 100.0 - tail])
        rows[name] = {
            "difference": float(point),
            "low": float(low),
            "high": float(high),
            "p_below_zero": float(np.mean(draws < 0)),
            "resamples": resamples,
        }
    return rows

"""The measurement primitives every benchmark and check in the package uses (numpy only).

:func:`measure_throughput` times a batch function; :func:`neighbour_agreement` says how well
one set of embeddings keeps another's cosine neighbours. ``wavemae bench engine``, the int8
decision at export (:mod:`wavemae.export.quantize`) and the tests all call these two.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

__all__ = ["measure_throughput", "neighbour_agreement"]


def measure_throughput(
    run: Callable[[np.ndarray], object],
    pool: np.ndarray,
    batch: int,
    *,
    seconds: float = 0.5,
    min_calls: int = 2,
) -> dict[str, float]:
    """Spectra/s of ``run`` on batches of ``batch`` rows drawn from ``pool`` ``(N, L)``.

    One warm-up call, then calls until ``seconds`` passed (at least ``min_calls``).

    Returns:
        ``{"spectra_per_s", "ms_per_batch", "calls"}``; ``ms_per_batch`` is the median call.
    """
    reps = -(-batch // pool.shape[0])
    x = np.ascontiguousarray(np.tile(pool, (reps, 1))[:batch], dtype=np.float32)
    run(x)  # warm-up: the first call allocates and picks kernels
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    return {
        "spectra_per_s": batch * len(times) / elapsed,
        "ms_per_batch": float(np.median(times)) * 1e3,
        "calls": len(times),
    }


def neighbour_agreement(reference: np.ndarray, other: np.ndarray, k: int = 5) -> dict[str, float]:
    """Leave-one-out cosine retrieval of ``other`` compared with ``reference``, both ``(N, Z)``.

    Cosine between a spectrum's two embeddings is reported but should not decide anything:
    a random-weight encoder gives 0.9999 there while its neighbours change.

    Returns:
        ``top1_agreement`` (fraction of queries whose nearest other spectrum is the same),
        ``recall_at_{k}`` (mean overlap of the two top-k lists / k), ``min_cosine`` (worst
        cosine between a spectrum's two embeddings), ``max_abs_diff``.

    Raises:
        ValueError: for different shapes or no more than ``k`` rows.
    """
    if reference.shape != other.shape or reference.shape[0] < k + 1:
        raise ValueError(
            f"need equal shapes with more than k={k} rows, got {reference.shape}, {other.shape}"
        )
    ref64, oth64 = reference.astype(np.float64), other.astype(np.float64)

    def unit(z: np.ndarray) -> np.ndarray:
        return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-30)

    def ranks(u: np.ndarray) -> np.ndarray:
        sim = u @ u.T
        np.fill_diagonal(sim, -np.inf)  # a query is not its own neighbour
        return np.argsort(-sim, axis=1, kind="stable")[:, :k]

    u_ref, u_oth = unit(ref64), unit(oth64)
    ref, oth = ranks(u_ref), ranks(u_oth)
    overlap = [len(set(a) & set(b)) / k for a, b in zip(ref, oth, strict=True)]
    return {
        "top1_agreement": float(np.mean(ref[:, 0] == oth[:, 0])),
        f"recall_at_{k}": float(np.mean(overlap)),
        "min_cosine": float(np.min(np.sum(u_ref * u_oth, axis=1))),
        "max_abs_diff": float(np.max(np.abs(ref64 - oth64))),
    }

"""Model FLOPs per spectrum and this machine's measured matrix-multiply throughput.

The encoder's work is counted from its config (the manifest's ``model_config`` or a
:class:`~wavemae.models.WaveMAEConfig` dict): every linear layer plus the two attention matrix
products, for one spectrum with all ``seq_len`` positions visible and the CLS token prepended.
One multiply-add counts as two FLOPs. Layer norms, GELU and softmax are left out: they are a few
percent of the total for any width worth serving and they are not matrix products, so the
"fraction of matmul peak" stays an honest upper-bound comparison.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["encoder_flops_per_spectrum", "measure_matmul_gflops"]


def _int(config: Mapping[str, Any], key: str) -> int:
    if key not in config:
        raise ValueError(f"model config has no {key!r}; keys: {sorted(config)}")
    value = int(config[key])
    if value <= 0:
        raise ValueError(f"model config {key}={value} must be positive")
    return value


def encoder_flops_per_spectrum(config: Mapping[str, Any]) -> int:
    """FLOPs of the all-visible encoder for one spectrum.

    Args:
        config: needs ``seq_len`` (L), ``d_model`` (D), ``num_layers`` (N),
            ``dim_feedforward`` (F) and ``latent_dim`` (Z).

    Returns:
        ``2*L*D + N*(2*S*(4*D^2 + 2*D*F) + 4*S^2*D) + 2*D*Z`` with ``S = L + 1`` tokens:
        input projection, per layer the qkv/out projections, the feed-forward pair and the
        ``QK^T`` and ``AV`` products, and the latent head.

    Raises:
        ValueError: naming a missing or non-positive config value.
    """
    seq_len = _int(config, "seq_len")
    d_model = _int(config, "d_model")
    layers = _int(config, "num_layers")
    d_ff = _int(config, "dim_feedforward")
    latent = _int(config, "latent_dim")
    tokens = seq_len + 1
    projections = 2 * tokens * (3 * d_model * d_model + d_model * d_model)
    feed_forward = 2 * tokens * (2 * d_model * d_ff)
    attention = 2 * 2 * tokens * tokens * d_model
    return (
        2 * seq_len * d_model
        + layers * (projections + feed_forward + attention)
        + (2 * d_model * latent)
    )


def measure_matmul_gflops(
    dtype: str = "float32", *, size: int = 1024, seconds: float = 1.0, threads: int | None = None
) -> float:
    """Best observed throughput of a square ``size x size`` matrix product, in GFLOP/s.

    Uses torch when it is installed (``float32`` and ``bfloat16``), else numpy (``float32``
    only). Runs repeated products for about ``seconds`` after one warm-up and reports the best
    single product, which is what "peak" means on a shared, noisy machine.

    Args:
        dtype: ``"float32"`` or ``"bfloat16"``.
        size: matrix side.
        seconds: time budget of the measurement.
        threads: intra-op threads for torch (default: all CPUs).

    Raises:
        ValueError: for an unknown dtype, or ``bfloat16`` without torch.
    """
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype={dtype!r} must be 'float32' or 'bfloat16'")
    flops = 2.0 * size**3
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None:
        if dtype != "float32":
            raise ValueError("bfloat16 matmul throughput needs torch, which is not installed")
        a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
        b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)

        def run() -> None:
            a @ b
    else:
        old_threads = torch.get_num_threads()
        torch.set_num_threads(threads or os.cpu_count() or 1)
        tdtype = torch.float32 if dtype == "float32" else torch.bfloat16
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=gen).to(tdtype)
        b = torch.randn(size, size, generator=gen).to(tdtype)

        def run() -> None:
            torch.mm(a, b)

    try:
        run()
        best = float("inf")
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t0)
    finally:
        if torch is not None:
            torch.set_num_threads(old_threads)
    return flops / best / 1e9

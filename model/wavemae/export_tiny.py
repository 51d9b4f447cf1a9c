"""Tiny random-weight exports for test suites: a real, verified artifact in seconds.

:func:`export_tiny_model` is what the export, artifact, service and deploy tests build their
artifact with; :func:`synthetic_spectra` makes smooth NIR-like spectra on any grid.
Both are re-exported by :mod:`wavemae.export`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wavemae.models.wave_mae import WaveMAE

__all__ = ["export_tiny_model", "synthetic_spectra"]


def synthetic_spectra(n: int, wavelengths: Any, *, seed: int = 0) -> np.ndarray:
    """``(n, L)`` float32 smooth NIR-like spectra on ``wavelengths``: 3 Gaussian bands whose
    heights vary per spectrum, a sloped baseline and a little noise. For tests and demos."""
    grid = np.asarray(wavelengths, dtype=np.float64)
    rng = np.random.default_rng(seed)
    t = (grid - grid[0]) / max(float(grid[-1] - grid[0]), 1e-12)  # (L,) in [0, 1]
    centres = np.array([0.2, 0.5, 0.8])
    heights = rng.uniform(0.2, 1.0, size=(n, 3))
    bands = np.exp(-0.5 * ((t[None, None, :] - centres[None, :, None]) / 0.06) ** 2)
    values = np.einsum("nk,nkl->nl", heights, np.broadcast_to(bands, (n, 3, grid.size)))
    baseline = rng.uniform(0.0, 0.3, size=(n, 1)) + rng.uniform(-0.2, 0.2, size=(n, 1)) * t
    noise = rng.normal(0.0, 0.005, size=values.shape)
    return (values + baseline + noise).astype(np.float32)


def _tiny_preprocessor(raw: np.ndarray, grid: np.ndarray) -> Any:
    """SNV + per-band standardisation fitted on ``raw`` (N, L) on the model ``grid``."""
    from wavemae.preprocessing import Preprocessor

    return Preprocessor(wavelengths=grid, unit="nm", normalization="snv", standardize=True).fit(
        raw
    )


def export_tiny_model(
    out_dir: str | os.PathLike,
    *,
    seq_len: int = 64,
    latent_dim: int = 16,
    seed: int = 0,
    quantize: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Export a tiny random-weight WaveMAE with a fitted synthetic preprocessor, in seconds.

    For test suites (export, artifact, service): the full verified export, TorchScript
    included, of a 2-layer ``d_model=32`` model on a 1100-1700 nm grid of ``seq_len`` points.
    Its embeddings mean nothing; its files, manifest and parity are real.

    Args:
        out_dir: artifact folder to create.
        seq_len: grid length; a multiple of 8 (the model hides 4 of 8 blocks).
        latent_dim: embedding size.
        seed: weights, spectra and preprocessing fit are all determined by it.
        quantize, overwrite: as for :func:`export_model`.

    Returns:
        ``out_dir`` as a Path.
    """
    if seq_len <= 0 or seq_len % 8 != 0:
        raise ValueError(f"seq_len={seq_len} must be a positive multiple of 8")
    torch.manual_seed(seed)
    model = WaveMAE(
        seq_len, d_model=32, nhead=4, num_layers=2, dim_feedforward=64, dropout=0.0,
        latent_dim=latent_dim, dec_hidden=32, dec_dropout=0.0, n_blocks=8, n_mask=4,
    ).eval()
    grid = np.linspace(1100.0, 1700.0, seq_len)
    raw = synthetic_spectra(96, grid, seed=seed)
    preprocessor = _tiny_preprocessor(raw, grid)
    x = preprocessor.transform(raw)
    from wavemae.export import export_model

    return export_model(
        model, out_dir, preprocessor=preprocessor, wavelengths=grid, unit="nm",
        name="wavemae-tiny", version=f"test-{seed}",
        provenance={"command": "wavemae.export.export_tiny_model", "seed": seed,
                    "note": "random weights, synthetic spectra: for tests only"},
        verify_spectra=x, quantize=quantize, overwrite=overwrite,
    )

"""Tiny random-weight exports for the test suites: a real, verified artifact in seconds.

:func:`export_tiny_model` is what the export, artifact, service and deploy tests build their
artifact with (the root conftest's ``tiny_artifact`` fixture); ``deploy/docker-smoke.sh
--tiny-model`` imports it from here too. It is a test fixture, so it lives beside the tests and
not in the ``wavemae`` package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wavemae.bench.spectra import synthetic_raw_spectra
from wavemae.export import export_model
from wavemae.models.wave_mae import WaveMAE

__all__ = ["export_tiny_model"]


def _tiny_preprocessor(raw: np.ndarray, grid: np.ndarray, axis: str = "fixed") -> Any:
    """SNV + per-band standardisation fitted on ``raw`` (N, L) on the model ``grid``."""
    from wavemae.preprocessing import Preprocessor

    return Preprocessor(
        wavelengths=grid, unit="nm", normalization="snv", standardize=True, axis=axis
    ).fit(raw)


def export_tiny_model(
    out_dir: str | os.PathLike,
    *,
    seq_len: int = 64,
    latent_dim: int = 16,
    seed: int = 0,
    quantize: str | None = None,
    overwrite: bool = False,
    axis: str = "fixed",
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
        axis: ``"fixed"`` (the 1100-1700 nm grid) or ``"relative"`` (a general model's
            axis-relative input: any contiguous range, resampled over itself; the manifest's
            grid is the nominal 0-1).

    Returns:
        ``out_dir`` as a Path.
    """
    if seq_len <= 0 or seq_len % 8 != 0:
        raise ValueError(f"seq_len={seq_len} must be a positive multiple of 8")
    torch.manual_seed(seed)
    model = WaveMAE(
        seq_len,
        d_model=32,
        nhead=4,
        num_layers=2,
        dim_feedforward=64,
        dropout=0.0,
        latent_dim=latent_dim,
        dec_hidden=32,
        dec_dropout=0.0,
        n_blocks=8,
        n_mask=4,
    ).eval()
    if axis == "relative":
        grid = np.linspace(0.0, 1.0, seq_len)
    else:
        grid = np.linspace(1100.0, 1700.0, seq_len)
    raw = synthetic_raw_spectra(96, seq_len, seed=seed)
    preprocessor = _tiny_preprocessor(raw, grid, axis)
    x = preprocessor.transform(raw)
    return export_model(
        model,
        out_dir,
        preprocessor=preprocessor,
        wavelengths=grid,
        unit="nm",
        name="wavemae-tiny" if axis == "fixed" else "wavemae-tiny-general",
        version=f"test-{seed}",
        provenance={
            "command": "tests/tiny_artifact.py export_tiny_model",
            "seed": seed,
            "note": "random weights, synthetic spectra: for tests only",
        },
        verify_spectra=x,
        quantize=quantize,
        overwrite=overwrite,
    )

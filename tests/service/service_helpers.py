"""Constants and data helpers shared by the service tests."""

from __future__ import annotations

import numpy as np

SEQ_LEN = 64
LATENT_DIM = 16


def spectra_like(n: int, seed: int = 0, length: int = SEQ_LEN) -> np.ndarray:
    """Smooth positive NIR-like spectra ``(n, length)`` float64."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, length)
    centres = rng.uniform(0.1, 0.9, size=(n, 3))
    widths = rng.uniform(0.03, 0.15, size=(n, 3))
    heights = rng.uniform(0.2, 1.0, size=(n, 3))
    peaks = heights[:, :, None] * np.exp(-(((t - centres[:, :, None]) / widths[:, :, None]) ** 2))
    return 0.5 + peaks.sum(axis=1) + 0.1 * t + 0.005 * rng.normal(size=(n, length))

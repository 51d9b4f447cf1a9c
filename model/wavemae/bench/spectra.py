"""Spectra the benchmark sends and measures: held-out data where available, else synthetic.

numpy only, so the load generator runs where torch is not installed.
"""

from __future__ import annotations

import numpy as np

from wavemae.artifact import Artifact

__all__ = ["heldout_spectra", "raw_request_spectra", "synthetic_raw_spectra"]


def synthetic_raw_spectra(n: int, length: int, *, seed: int = 0) -> np.ndarray:
    """``(n, length)`` float64 absorbance-like spectra: a baseline plus six Gaussian bands."""
    if n <= 0 or length <= 1:
        raise ValueError(f"n={n} and length={length} must be positive (length >= 2)")
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 1.0, length)
    centres = rng.uniform(0.05, 0.95, (n, 6, 1))
    widths = rng.uniform(0.01, 0.1, (n, 6, 1))
    heights = rng.uniform(0.1, 1.0, (n, 6, 1))
    bands = (heights * np.exp(-0.5 * ((grid - centres) / widths) ** 2)).sum(axis=1)
    baseline = rng.uniform(0.2, 0.6, (n, 1)) + rng.uniform(-0.2, 0.2, (n, 1)) * grid
    return bands + baseline


def _tablet_test(artifact: Artifact, limit: int) -> tuple[np.ndarray, np.ndarray]:
    from wavemae.data import load_corpus

    data = load_corpus("tablet", split="test")
    if getattr(data, "unit", artifact.wavelength_unit) != artifact.wavelength_unit:
        raise ValueError(f"tablet is in {data.unit}, the model in {artifact.wavelength_unit}")
    return np.asarray(data.values, dtype=np.float64)[:limit], np.asarray(data.wavelengths)


def heldout_spectra(artifact: Artifact, *, limit: int = 512) -> tuple[np.ndarray, str]:
    """Held-out spectra as model input ``(N, seq_len)`` float32, and where they came from.

    The ``tablet`` corpus's test split through the artifact's own preprocessing; when that is
    not available (no corpus, another grid or unit), smooth synthetic spectra on the model's
    grid, and the returned description says why.
    """
    try:
        values, wavelengths = _tablet_test(artifact, limit)
        x = artifact.preprocess(values, wavelengths)
        return x, f"tablet:test ({x.shape[0]} spectra)"
    except Exception as exc:  # any failure means: use the fallback, and say why
        reason = f"{type(exc).__name__}: {exc}"[:120]
    n = min(limit, 256)
    x = artifact.preprocess(synthetic_raw_spectra(n, artifact.seq_len))
    return x, f"synthetic bands ({n} spectra; tablet:test unavailable: {reason})"


def raw_request_spectra(artifact: Artifact, n: int = 256) -> tuple[np.ndarray, str]:
    """``(n, seq_len)`` raw spectra on the model's grid, as an instrument would send them (for
    an axis-relative model: ``seq_len`` points over the spectra's own range).

    Tablet test spectra resampled onto the model grid where the corpus covers it, else
    synthetic ones; the server preprocesses either exactly as it would a client's.
    """
    try:
        from wavemae.preprocessing import resample_to_grid

        values, wavelengths = _tablet_test(artifact, n)
        grid = artifact.wavelengths
        if artifact.preprocessor.axis == "relative":  # seq_len points over the tablet's range
            grid = np.linspace(float(wavelengths.min()), float(wavelengths.max()), len(grid))
        raw = resample_to_grid(values, wavelengths, grid)
        artifact.preprocess(raw)  # must be acceptable to the model
        return np.asarray(raw, dtype=np.float32), f"tablet:test on the model grid ({len(raw)})"
    except Exception as exc:  # any failure means: use the fallback, and say why
        reason = f"{type(exc).__name__}: {exc}"[:120]
    raw = synthetic_raw_spectra(n, artifact.seq_len).astype(np.float32)
    return raw, f"synthetic bands ({n}; tablet:test unavailable: {reason})"

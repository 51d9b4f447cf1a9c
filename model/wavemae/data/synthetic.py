"""Synthetic spectra for pretraining a general model: materials measured on simulated
instruments (numpy only).

A *material* is a set of bands: Gaussian, Lorentzian or pseudo-Voigt shapes with random
centres, widths (narrow Raman-like lines to broad NIR overtones) and heights. A *measurement*
of a material on an *instrument* adds what differs between instruments and sessions:

- a polynomial baseline (offset, slope, curvature);
- a fluorescence-like background (a broad, smooth, rising or falling hump);
- multiplicative scatter (a gain) and, for NIR-like spectra, a path-length-like exponent;
- a small wavelength shift and a resolution change (band broadening);
- white noise at the instrument's level.

:func:`synthetic_corpus` returns a :class:`~wavemae.data.spectra.Spectra` with metadata
``material`` (shared by all measurements of one material), ``instrument`` and ``mixture``
(the mixing fractions of the material's components, for retrieval of composition).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wavemae.data.spectra import Spectra

__all__ = ["InstrumentModel", "random_instrument", "random_material", "render", "synthetic_corpus"]

_SHAPES = ("gauss", "lorentz", "voigt")


def _band(t: np.ndarray, centre: float, width: float, shape: str) -> np.ndarray:
    d = (t - centre) / width
    if shape == "gauss":
        return np.exp(-0.5 * d**2)
    if shape == "lorentz":
        return 1.0 / (1.0 + d**2)
    return 0.5 * np.exp(-0.5 * d**2) + 0.5 / (1.0 + d**2)


def random_material(rng: np.random.Generator, *, n_components: int = 3) -> list[np.ndarray]:
    """Band tables ``(n_bands, 4)`` = (centre in [0, 1], width, height, shape index), one per
    pure component of the material."""
    comps = []
    for _ in range(n_components):
        n = int(rng.integers(2, 12))
        narrow = rng.random() < 0.4  # Raman-like narrow lines vs NIR-like broad bands
        widths = rng.uniform(0.002, 0.012, n) if narrow else rng.uniform(0.01, 0.08, n)
        comps.append(
            np.stack(
                [
                    rng.uniform(-0.05, 1.05, n),
                    widths,
                    rng.lognormal(0.0, 0.7, n),
                    rng.integers(0, len(_SHAPES), n),
                ],
                axis=1,
            )
        )
    return comps


@dataclass
class InstrumentModel:
    """What one instrument (or measurement session) adds to the pure spectrum."""

    baseline: tuple[float, float, float]  # offset, slope, curvature (x the signal's scale)
    fluorescence: float  # height of the broad background (x scale)
    fluorescence_centre: float
    gain: float
    shift: float  # axis shift, fraction of the range
    broadening: float  # extra band width, fraction of the range
    noise: float  # white noise std (x scale)


def random_instrument(rng: np.random.Generator, *, strength: float = 1.0) -> InstrumentModel:
    """A random instrument; ``strength`` scales how far it is from an ideal one."""
    s = strength
    return InstrumentModel(
        baseline=(
            float(rng.normal(0, 0.3 * s)),
            float(rng.normal(0, 0.3 * s)),
            float(rng.normal(0, 0.15 * s)),
        ),
        fluorescence=float(abs(rng.normal(0, 0.5 * s))) if rng.random() < 0.5 else 0.0,
        fluorescence_centre=float(rng.uniform(-0.5, 1.5)),
        gain=float(np.exp(rng.normal(0, 0.2 * s))),
        shift=float(rng.normal(0, 0.002 * s)),
        broadening=float(abs(rng.normal(0, 0.003 * s))),
        noise=float(np.exp(rng.uniform(np.log(0.002), np.log(0.03)))),
    )


def render(
    t: np.ndarray,
    components: list[np.ndarray],
    fractions: np.ndarray,
    instrument: InstrumentModel,
    rng: np.random.Generator,
) -> np.ndarray:
    """One measured spectrum on the relative axis ``t`` (values in [0, 1])."""
    tt = t + instrument.shift
    pure = np.zeros_like(t)
    for frac, table in zip(fractions, components, strict=True):
        for centre, width, height, shape in table:
            w = np.hypot(width, instrument.broadening)
            pure += frac * height * (width / w) * _band(tt, centre, w, _SHAPES[int(shape)])
    scale = max(float(pure.std()), 1e-3)
    b0, b1, b2 = instrument.baseline
    x = t - 0.5
    background = scale * (b0 + b1 * x + b2 * x**2)
    if instrument.fluorescence > 0:
        background += (
            scale * instrument.fluorescence * _band(t, instrument.fluorescence_centre, 0.6, "gauss")
        )
    noise = scale * instrument.noise * rng.standard_normal(t.shape)
    return instrument.gain * pure + background + noise


def synthetic_corpus(
    n_materials: int,
    *,
    n_instruments: int = 2,
    n_mixtures: int = 1,
    seq_len: int = 256,
    seed: int = 0,
    strength: float = 1.0,
) -> Spectra:
    """``n_materials x n_mixtures x n_instruments`` spectra on a relative axis 0..1
    (``seq_len`` points; unit ``"nm"`` as a placeholder: the axis is relative).

    Every material is measured on its own ``n_instruments`` random instruments, so pairs with
    the same ``material`` and ``mixture`` are the same sample seen by two instruments.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, seq_len)
    values, ids, meta = [], [], []
    for m in range(n_materials):
        comps = random_material(rng, n_components=int(rng.integers(1, 4)))
        instruments = [random_instrument(rng, strength=strength) for _ in range(n_instruments)]
        for j in range(n_mixtures):
            fractions = rng.dirichlet(np.ones(len(comps)))
            for k, inst in enumerate(instruments):
                values.append(render(t, comps, fractions, inst, rng))
                ids.append(f"m{m:05d}-x{j}-i{k}")
                meta.append({"material": m, "mixture": j, "instrument": k,
                             "fraction0": float(fractions[0])})  # fmt: skip
    grid = 1000.0 + 1000.0 * t  # placeholder nm axis; only its relative position matters
    return Spectra(np.asarray(values), grid, "nm", ids, meta)

"""Faults a QC score should catch, at a size relative to each spectrum's own std.

Every corruption takes spectra on the model grid in their own units ``(N, L)``, a ``level``
(0.01, 0.05, 0.20 ...) and a seeded generator; ``a = level * std(spectrum)`` is the size:

- ``spike``: one random position raised by ``10 a`` (a cosmic ray / dead pixel is far taller
  than the spectrum's variation; at level 1 % it is still only a tenth of the std);
- ``tilt``: a linear baseline from ``-a`` to ``+a`` across the range;
- ``offset``: ``+a`` everywhere;
- ``noise``: white noise of std ``a``;
- ``shift``: the axis moved by ``10 level`` grid points (0.1, 0.5, 2 points);
- ``clip``: values above ``max - 3 a`` are saturated at that value (a clipped peak).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CORRUPTIONS", "corrupt"]

CORRUPTIONS = ("spike", "tilt", "offset", "noise", "shift", "clip")


def _shift(x: np.ndarray, points: np.ndarray) -> np.ndarray:
    pos = np.arange(x.shape[1], dtype=np.float64)
    return np.stack([np.interp(pos - p, pos, row) for row, p in zip(x, points, strict=True)])


def corrupt(x: np.ndarray, kind: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` with the ``kind`` fault of size ``level`` (see the module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    n, length = x.shape
    a = level * x.std(axis=1, keepdims=True)
    if kind == "spike":
        out = x.copy()
        out[np.arange(n), rng.integers(0, length, n)] += 10 * a[:, 0]
        return out
    if kind == "tilt":
        return x + a * np.linspace(-1.0, 1.0, length)[None, :] * rng.choice([-1.0, 1.0], (n, 1))
    if kind == "offset":
        return x + a * rng.choice([-1.0, 1.0], (n, 1))
    if kind == "noise":
        return x + a * rng.standard_normal(x.shape)
    if kind == "shift":
        return _shift(x, 10 * level * rng.choice([-1.0, 1.0], n))
    if kind == "clip":
        ceiling = x.max(axis=1, keepdims=True) - 3 * a
        return np.minimum(x, ceiling)
    raise ValueError(f"corruption {kind!r} must be one of {CORRUPTIONS}")

"""Per-spectrum normalisation (step 2 of the :class:`~wavemae.preprocessing.Preprocessor`
pipeline): the offset and scale of each spectrum for ``"none"``, ``"snv"`` (subtract mean,
divide by standard deviation), ``"minmax"`` (map to [0, 1]) or ``"l2"`` (divide by the
Euclidean norm), kept so the normalisation can be inverted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NORMALIZATIONS", "TINY_SCALE", "NormalizationState", "normalization_state"]

#: The per-spectrum normalisations a :class:`~wavemae.preprocessing.Preprocessor` knows.
NORMALIZATIONS = ("none", "snv", "minmax", "l2")
#: A normalisation scale at or below this is treated as 1 (a flat spectrum is left flat).
TINY_SCALE = 1e-12


@dataclass(frozen=True)
class NormalizationState:
    """Per-spectrum normalisation parameters: ``normalised = (x - offset) / scale``.

    Attributes:
        offset: ``(N,)`` float64.
        scale: ``(N,)`` float64, never zero.
    """

    offset: np.ndarray
    scale: np.ndarray

    def __len__(self) -> int:
        return int(self.offset.shape[0])


def normalization_state(x: np.ndarray, normalization: str) -> NormalizationState:
    """Offsets and scales of ``x`` ``(N, L)`` float64 for one normalisation."""
    n = x.shape[0]
    if normalization == "none":
        offset, scale = np.zeros(n), np.ones(n)
    elif normalization == "snv":
        offset, scale = x.mean(axis=1), x.std(axis=1)
    elif normalization == "minmax":
        offset = x.min(axis=1)
        scale = x.max(axis=1) - offset
    elif normalization == "l2":
        offset, scale = np.zeros(n), np.linalg.norm(x, axis=1)
    else:  # guarded by Preprocessor validation
        raise ValueError(f"normalization={normalization!r} is not one of {NORMALIZATIONS}")
    scale = np.where(scale > TINY_SCALE, scale, 1.0)
    return NormalizationState(offset=offset, scale=scale)

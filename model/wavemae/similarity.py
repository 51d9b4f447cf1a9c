"""Library search as instrument software does it: the Hit Quality Index (numpy + scipy only).

OMNIC, KnowItAll and Open Specy rank library spectra by the Pearson correlation ``r`` of the
query and each reference on their common range, often after a Savitzky-Golay derivative, and
report it as a Hit Quality Index ``HQI = 100 * r`` (some vendors print ``100 * r**2``). This
module does exactly that, for a batch of queries against a library matrix in one product:

1. optional spectral preprocessing, per spectrum, on the full grid: ``"none"``, ``"snv"``,
   ``"deriv1"`` or ``"deriv2"`` (Savitzky-Golay derivative over ``window`` bands, through
   :class:`wavemae.preprocessing.Preprocessor`, the code training and the service use);
2. excluded regions (e.g. water or CO2 bands), given as wavelength ranges, are dropped;
3. each row is mean-centred and scaled to unit length, so a matrix product gives ``r``.

A constant row (or one made constant by the derivative) has no direction; it correlates
``r = 0`` with everything, so every score is a finite number. Pearson's ``r`` ignores any
per-spectrum offset and scale, so ``"snv"`` ranks exactly as ``"none"``; it is offered because
users expect it, and the benchmark shows the two rows equal.

Hits are ranked by ``r`` (an anti-correlated spectrum never tops a list, even on the ``r2``
scale, where negative ``r`` counts as 0). Each hit also carries the gap to the next hit in the
chosen scale, the confidence users read off an HQI list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from wavemae.preprocessing import Preprocessor, resample_to_grid

__all__ = [
    "DEFAULT_PREPROCESSING",
    "DEFAULT_WINDOW",
    "PREPROCESSINGS",
    "SCALES",
    "HQIIndex",
    "HQIOptions",
    "Hits",
    "hqi_vectors",
    "kept_bands",
    "rank_by_correlation",
    "to_scale",
]

#: Spectral preprocessing before the correlation.
PREPROCESSINGS = ("none", "snv", "deriv1", "deriv2")
#: How a correlation is reported: ``hqi`` = 100 r, ``r`` = r, ``r2`` = 100 max(r, 0)^2.
SCALES = ("hqi", "r", "r2")
#: Defaults chosen on the tablet validation split (``wavemae bench search``: the 80
#: calibration spectra of the ``--holdout validation`` tablets searched in the other 320, model
#: grid of 256 bands at 4.7 nm, criterion the mean of the k=1 and k=5 k-NN RMSE): the second
#: derivative over 11 bands was lowest of none/SNV/1st/2nd derivative at windows 5-41
#: (2.97 mg; 9 bands 3.04, the best 1st derivative 3.78).
DEFAULT_PREPROCESSING = "deriv2"
DEFAULT_WINDOW = 11
_DERIV = {"none": 0, "snv": 0, "deriv1": 1, "deriv2": 2}
_MIN_BANDS = 3
# A row whose centred, preprocessed norm is at or below this fraction of its magnitude counts
# as constant: about float32 round-off (stored spectra are float32), far below real structure.
_FLAT = 1e-6


@dataclass(frozen=True)
class HQIOptions:
    """How spectra are compared.

    Attributes:
        preprocessing: one of :data:`PREPROCESSINGS`.
        window: Savitzky-Golay window in bands (odd, >= 3), used by the derivatives only.
        polyorder: Savitzky-Golay polynomial order (>= the derivative order, < window).
        exclude: wavelength ranges ``((low, high), ...)`` left out of the comparison, in the
            unit of the grid; the ends are included in the exclusion.
        scale: one of :data:`SCALES`, how scores are reported.
    """

    preprocessing: str = DEFAULT_PREPROCESSING
    window: int = DEFAULT_WINDOW
    polyorder: int = 2
    exclude: tuple[tuple[float, float], ...] = ()
    scale: str = "hqi"

    def __post_init__(self) -> None:
        if self.preprocessing not in PREPROCESSINGS:
            raise ValueError(f"preprocessing={self.preprocessing!r} is not one of {PREPROCESSINGS}")
        if self.scale not in SCALES:
            raise ValueError(f"scale={self.scale!r} is not one of {SCALES}")
        for name in ("window", "polyorder"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name}={value!r} must be an integer")
        if self.window < 3 or self.window % 2 == 0:
            raise ValueError(f"window={self.window} must be an odd integer >= 3")
        deriv = _DERIV[self.preprocessing]
        if deriv and not deriv <= self.polyorder < self.window:
            raise ValueError(
                f"polyorder={self.polyorder} must lie in [{deriv}, window={self.window}) "
                f"for {self.preprocessing}"
            )
        ranges = []
        for item in self.exclude:
            try:
                low, high = (float(v) for v in item)
            except (TypeError, ValueError):
                raise ValueError(f"exclude range {item!r} must be a pair [low, high]") from None
            if not (np.isfinite(low) and np.isfinite(high)) or low >= high:
                raise ValueError(f"exclude range [{low}, {high}] needs finite low < high")
            ranges.append((low, high))
        object.__setattr__(self, "exclude", tuple(sorted(ranges)))

    def describe(self) -> str:
        """Short label, e.g. ``"deriv1 w11"``."""
        label = self.preprocessing
        if _DERIV[self.preprocessing]:
            label += f" w{self.window}"
        if self.exclude:
            label += " excl " + ",".join(f"{lo:g}-{hi:g}" for lo, hi in self.exclude)
        return label


def kept_bands(wavelengths: Any, exclude: tuple[tuple[float, float], ...]) -> np.ndarray:
    """``(L,)`` bool, True for the bands outside every excluded range.

    Raises:
        ValueError: fewer than 3 bands are left.
    """
    grid = np.asarray(wavelengths, dtype=np.float64)
    keep = np.ones(grid.shape, dtype=bool)
    for low, high in exclude:
        keep &= ~((grid >= low) & (grid <= high))
    if keep.sum() < _MIN_BANDS:
        raise ValueError(
            f"exclude leaves {int(keep.sum())} of {grid.size} bands; at least {_MIN_BANDS} "
            "are needed to correlate"
        )
    return keep


def hqi_vectors(values: Any, wavelengths: Any, options: HQIOptions) -> np.ndarray:
    """Rows whose dot products are Pearson correlations on the kept bands.

    Args:
        values: ``(N, L)`` finite spectra on ``wavelengths``.
        wavelengths: ``(L,)`` their grid.
        options: the comparison.

    Returns:
        ``(N, L_kept)`` float32, each row mean-centred with unit norm, or all zeros for a
        spectrum that is constant on the kept bands after preprocessing.

    Raises:
        ValueError: shapes disagree, non-finite values, a window longer than the spectra, or
            excluded ranges that leave fewer than 3 bands.
    """
    grid = np.asarray(wavelengths, dtype=np.float64)
    deriv = _DERIV[options.preprocessing]
    savgol = (
        {"window": options.window, "polyorder": options.polyorder, "deriv": deriv}
        if deriv
        else None
    )
    normalization = "snv" if options.preprocessing == "snv" else "none"
    pre = Preprocessor(normalization=normalization, savgol=savgol)
    raw = np.asarray(values, dtype=np.float64)
    raw = raw.reshape(1, -1) if raw.ndim == 1 else raw
    x = pre.transform(raw, grid).astype(np.float64)
    x = x[:, kept_bands(grid, options.exclude)]
    # Relative test: what is left of a constant row is round-off of the input's magnitude.
    magnitude = np.abs(raw).max(axis=1, keepdims=True) * np.sqrt(x.shape[1])
    x -= x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    flat = norm <= np.maximum(_FLAT * magnitude, 1e-300)
    x = np.where(flat, 0.0, x / np.where(flat, 1.0, norm))
    return x.astype(np.float32)


def to_scale(r: np.ndarray, scale: str) -> np.ndarray:
    """Correlations ``r`` in ``[-1, 1]`` as reported scores (see :data:`SCALES`)."""
    r = np.clip(np.asarray(r, dtype=np.float64), -1.0, 1.0)
    if scale == "hqi":
        return 100.0 * r
    if scale == "r":
        return r
    if scale == "r2":
        return 100.0 * np.maximum(r, 0.0) ** 2
    raise ValueError(f"scale={scale!r} is not one of {SCALES}")


@dataclass(frozen=True)
class Hits:
    """The top hits of a batch of queries, best first.

    Attributes:
        indices: ``(Q, k)`` int64 rows of the library.
        r: ``(Q, k)`` float64 Pearson correlations.
        score: ``(Q, k)`` float64, ``r`` in the requested scale.
        gap: ``(Q, k)`` float64, score minus the next hit's score (>= 0); NaN for a hit that
            is the library's last entry (nothing follows it).
    """

    indices: np.ndarray
    r: np.ndarray
    score: np.ndarray
    gap: np.ndarray


def rank_by_correlation(r: np.ndarray, k: int, scale: str = "hqi") -> Hits:
    """Top ``k`` of each row of a correlation matrix, with scores and gaps.

    Args:
        r: ``(Q, N)`` correlations (rows: queries, columns: library entries).
        k: hits per query (clipped to N).
        scale: one of :data:`SCALES`.

    Returns:
        :class:`Hits` with ``min(k, N)`` columns; ties are broken by the lower index.
    """
    r = np.asarray(r, dtype=np.float64)
    q, n = r.shape
    take = min(k + 1, n)  # one more than asked, for the last hit's gap
    if k < 1:
        raise ValueError(f"k={k} must be >= 1")
    if take < n:
        part = np.argpartition(-r, take - 1, axis=1)[:, :take]
    else:
        part = np.broadcast_to(np.arange(n), (q, n))
    part_r = np.take_along_axis(r, part, axis=1)
    order = np.lexsort((part, -part_r), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    top_r = np.take_along_axis(part_r, order, axis=1)
    score = to_scale(top_r, scale)
    gap = np.full(score.shape, np.nan)
    gap[:, :-1] = score[:, :-1] - score[:, 1:]
    kk = min(k, n)
    return Hits(idx[:, :kk].astype(np.int64), top_r[:, :kk], score[:, :kk], gap[:, :kk])


class HQIIndex:
    """A library of spectra on one grid, searched exactly by Hit Quality Index.

    Args:
        spectra: ``(N, L)`` reference spectra on ``wavelengths``.
        wavelengths: ``(L,)`` strictly monotonic grid of the library.
        options: the comparison (:class:`HQIOptions`).

    The prepared matrix is ``(N, L_kept)`` float32: 4 bytes per band per entry.
    """

    def __init__(self, spectra: Any, wavelengths: Any, options: HQIOptions | None = None):
        self.options = options or HQIOptions()
        self.wavelengths = np.asarray(wavelengths, dtype=np.float64)
        self.matrix = hqi_vectors(spectra, self.wavelengths, self.options)

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def correlations(self, queries: Any, wavelengths: Any = None) -> np.ndarray:
        """``(Q, N)`` Pearson correlations of each query with each entry (one product).

        ``queries`` ``(Q, L_q)`` are resampled onto the library grid when ``wavelengths``
        ``(L_q,)`` is given, else they must already be on it.
        """
        queries = np.asarray(queries, dtype=np.float64)
        if queries.ndim == 1:
            queries = queries.reshape(1, -1)
        if wavelengths is not None:
            queries = resample_to_grid(queries, wavelengths, self.wavelengths)
        vectors = hqi_vectors(queries, self.wavelengths, self.options)
        return vectors @ self.matrix.T

    def search(self, queries: Any, k: int = 10, wavelengths: Any = None) -> Hits:
        """The ``k`` best entries for each query, in :attr:`options`'s scale."""
        return rank_by_correlation(self.correlations(queries, wavelengths), k, self.options.scale)

"""``space="spectrum"`` search: the Hit Quality Index of instrument software (no FastAPI).

A fixed-grid model: queries and library entries are compared on the model's grid, the common
grid every stored spectrum was resampled onto when it was stored. The stored ``processed``
vector is the model input; undoing its per-band standardisation gives back the spectrum on the
model grid up to the model's per-spectrum normalisation, an offset and a positive scale that
Pearson's ``r`` ignores. The score is then :mod:`wavemae.similarity`'s HQI (Pearson of
mean-centred spectra after the requested preprocessing, excluded regions left out), exact over
every candidate with one matrix product, on every backend the same.

An axis-relative model stores each entry on ``seq_len`` points over the entry's own range, in
the unit it was sent in; the query lies on ``seq_len`` points over its own range. The same
spectra (standardisation undone) are compared on the common range of the query's and each
entry's axis by :class:`wavemae.common_range.CommonRangeIndex` (units converted when both are
known; ``exclude`` in the query's unit). Entries sharing too little range are not hits; the
search says how many there were.

Measured on held-out tablet spectra (``wavemae bench search``): the default, the second
Savitzky-Golay derivative over 11 bands, predicts API content by 1-NN / 5-NN with RMSE
3.35 / 2.69 mg, where the old cosine of the standardised model input gave 6.5 / 6.7 and raw
cosine 3.6 / 4.3.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np

from wavemae.common_range import CommonRangeIndex
from wavemae.similarity import HQIOptions, hqi_vectors, kept_bands, rank_by_correlation

from ..errors import InvalidInput
from .base import SearchHit, StoredVectors

__all__ = [
    "PreparedCache",
    "QueryAxis",
    "check_options",
    "hqi_search",
    "hqi_search_common_range",
    "model_grid_spectra",
    "with_gaps",
]

T = TypeVar("T")

# A few float32 ulps, relative: spread below this is round-off, not a spectrum's shape.
_FLOAT32_ROUNDOFF = 1e-5


class PreparedCache:
    """The library's prepared HQI matrices for the last few searches, keyed by the search's
    options (and, for an axis-relative model, the queries' axis) and a digest of the stored
    ids, spectra and axes, so a changed library is never answered from a stale matrix.

    Preparing is the expensive part of a search (a Savitzky-Golay filter over every entry:
    about 1 s per 100,000 entries); hashing the stored matrix costs a tenth of that.
    """

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def prepared(self, library: StoredVectors, key: tuple[Any, ...], make: Callable[[], T]) -> T:
        """``make()``, or what it returned for the same ``key`` and stored library."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update("\0".join(library.ids).encode())
        digest.update(np.ascontiguousarray(library.matrix).tobytes())
        if library.axes is not None:
            digest.update(np.ascontiguousarray(library.axes).tobytes())
            digest.update("\0".join(str(u) for u in library.units or ()).encode())
        full_key = (*key, digest.hexdigest())
        with self._lock:
            if full_key in self._entries:
                self._entries.move_to_end(full_key)
                return self._entries[full_key]
        value = make()
        with self._lock:
            self._entries[full_key] = value
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value


@dataclass(frozen=True)
class QueryAxis:
    """The axis a batch of an axis-relative model's queries lies on: ``points`` ``(seq_len,)``
    increasing, in ``unit`` (None: not known); ``exclude`` ranges are read in it."""

    points: np.ndarray
    unit: str | None

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.points[0]:g}-{self.points[-1]:g}{unit}"


def check_options(options: HQIOptions, grid: np.ndarray) -> None:
    """Raise InvalidInput (naming the option) when ``options`` cannot work on ``grid``."""
    if options.window > grid.size:
        raise InvalidInput(
            f"window={options.window} is longer than the model grid ({grid.size} bands)",
            field="window",
        )
    try:
        kept_bands(grid, options.exclude)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="exclude") from None


def model_grid_spectra(processed: np.ndarray, preprocessor: Any) -> np.ndarray:
    """``(N, seq_len)`` model input -> float64 spectra on the model grid (standardisation undone;
    the per-spectrum normalisation stays, which the correlation ignores)."""
    x = np.asarray(processed, dtype=np.float64)
    if preprocessor is None or not preprocessor.standardize or preprocessor.band_mean is None:
        return x
    x = x * preprocessor.band_std + preprocessor.band_mean
    # ``processed`` is float32: a spectrum that was flat (e.g. all zeros after SNV) comes back
    # as round-off of the band means. Such rows are made exactly flat, so they score 0.
    reference = np.abs(preprocessor.band_mean).max() + np.abs(x).max(axis=1)
    flat = np.ptp(x, axis=1) <= _FLOAT32_ROUNDOFF * reference
    x[flat] = 0.0
    return x


def hqi_search(
    library: StoredVectors,
    queries: np.ndarray,
    *,
    preprocessor: Any,
    grid: np.ndarray,
    options: HQIOptions,
    k: int,
    cache: PreparedCache | None = None,
) -> list[list[SearchHit]]:
    """Per query, the ``k`` entries with the highest HQI, with each hit's gap to the next.

    Args:
        library: stored processed spectra ``(N, seq_len)`` of the candidates.
        queries: ``(Q, seq_len)`` model input of the queries.
        preprocessor: the served model's :class:`wavemae.preprocessing.Preprocessor`.
        grid: ``(seq_len,)`` the model's grid.
        options: HQI preprocessing, window, excluded regions, scale.
        k: hits per query.
        cache: keeps the library's prepared matrix between searches with the same options.

    Returns:
        Per query, hits best first (ties by id); scores and gaps are finite (the gap of the
        library's last entry is None). A constant library entry scores 0.

    Raises:
        InvalidInput: a query is constant after preprocessing (it correlates with nothing).
    """
    if not library.ids:
        return [[] for _ in range(len(queries))]

    def prepare() -> np.ndarray:
        return hqi_vectors(model_grid_spectra(library.matrix, preprocessor), grid, options)

    lib = prepare() if cache is None else cache.prepared(library, (options,), prepare)
    q = _query_vectors(queries, preprocessor, grid, options)
    return _ranked(library, q @ lib.T, np.arange(len(library.ids)), k, options.scale)


def hqi_search_common_range(
    library: StoredVectors,
    queries: np.ndarray,
    *,
    preprocessor: Any,
    axis: QueryAxis,
    options: HQIOptions,
    k: int,
    cache: PreparedCache | None = None,
) -> tuple[list[list[SearchHit]], str | None]:
    """:func:`hqi_search` for an axis-relative model: each entry compared with the queries on
    their common range (:class:`wavemae.common_range.CommonRangeIndex`).

    Args:
        library: stored processed spectra with their axes (``vectors(..., with_axes=True)``).
        queries: ``(Q, seq_len)`` model input of the queries, on ``axis``.
        axis: the queries' axis and unit; ``options.exclude`` is in that unit.

    Returns:
        The hits (only entries that share enough range with the queries), and when some
        candidates were not compared (no overlap, or too little for the window), a warning
        that says how many and why; else None.

    Raises:
        InvalidInput: a query is constant after preprocessing.
    """
    if not library.ids:
        return [[] for _ in range(len(queries))], None
    if library.axes is None or library.units is None:
        raise ValueError("an axis-relative search needs the entries' axes (with_axes=True)")

    def prepare() -> CommonRangeIndex:
        return CommonRangeIndex(
            model_grid_spectra(library.matrix, preprocessor),
            library.axes,
            library.units,
            axis.points,
            axis.unit,
            options,
        )

    key = (options, axis.points.size, *axis.points[[0, -1]].tolist(), axis.unit)
    index = prepare() if cache is None else cache.prepared(library, key, prepare)
    _query_vectors(queries, preprocessor, axis.points, options)  # refuses a flat query
    r, compared = index.correlations(model_grid_spectra(queries, preprocessor))
    columns = np.flatnonzero(compared)
    note = _not_compared(len(library.ids) - columns.size, len(library.ids), axis, options)
    if columns.size == 0:
        return [[] for _ in range(len(queries))], note
    return _ranked(library, r[:, columns], columns, k, options.scale), note


def _not_compared(skipped: int, total: int, axis: QueryAxis, options: HQIOptions) -> str | None:
    """The warning for ``skipped`` candidates left out of a common-range search."""
    if not skipped:
        return None
    short = (
        f"fewer than window={options.window} points"
        if options.preprocessing.startswith("deriv")
        else "fewer than 3 points"
    )
    return (
        f"{skipped} of {total} library entries were not compared: their range shares no part "
        f"of this spectrum's {axis.describe()}, or {short}, or fewer than 3 after 'exclude'"
    )


def _query_vectors(
    queries: np.ndarray, preprocessor: Any, grid: np.ndarray, options: HQIOptions
) -> np.ndarray:
    """The queries' HQI vectors on ``grid``; InvalidInput for a query flat after
    preprocessing (it correlates with nothing)."""
    q = hqi_vectors(model_grid_spectra(queries, preprocessor), grid, options)
    flat = np.flatnonzero(~q.any(axis=1))
    if flat.size:
        raise InvalidInput(
            f"spectra[{int(flat[0])}] is flat after preprocessing ({options.describe()}): "
            "it correlates with nothing",
            field=f"spectra[{int(flat[0])}]",
        )
    return q


def _ranked(
    library: StoredVectors, r: np.ndarray, columns: np.ndarray, k: int, scale: str
) -> list[list[SearchHit]]:
    """Per query row of ``r`` ``(Q, C)``, the top ``k`` as hits; column ``c`` of ``r`` is entry
    ``columns[c]`` of ``library``."""
    hits = rank_by_correlation(r, k, scale)
    results = []
    for row in range(r.shape[0]):
        results.append(
            [
                SearchHit(
                    id=library.ids[j],
                    score=float(score),
                    metadata=library.metadata[j],
                    gap=None if np.isnan(gap) else float(gap),
                )
                for j, score, gap in zip(
                    columns[hits.indices[row]], hits.score[row], hits.gap[row], strict=True
                )
            ]
        )
    return results


def with_gaps(hits: list[list[SearchHit]]) -> list[list[SearchHit]]:
    """Hits of a search that knows only the returned hits (embedding space) with each hit's
    gap to the next returned one; the last hit's gap stays None."""
    return [
        [
            replace(hit, gap=None if i + 1 == len(row) else hit.score - row[i + 1].score)
            for i, hit in enumerate(row)
        ]
        for row in hits
    ]

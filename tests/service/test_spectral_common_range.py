"""The service's common-range HQI search on stored vectors (no server): hits only among the
entries that share the query's range, and a cache that never answers from a stale axis."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from wavemae.similarity import HQIOptions
from wavemae_service.library.base import StoredVectors
from wavemae_service.library.spectral import PreparedCache, QueryAxis, hqi_search_common_range

L = 64


def _spectrum(nm: np.ndarray, centre: float) -> np.ndarray:
    return 0.1 + np.exp(-(((nm - centre) / 80.0) ** 2))


def _library(ranges: list[tuple[float, float]], units: list[str | None]) -> StoredVectors:
    centres = (1400.0, 1800.0, 2200.0)
    rows = [
        _spectrum(np.linspace(lo, hi, L), c) for (lo, hi), c in zip(ranges, centres, strict=True)
    ]
    return StoredVectors(
        ids=["a", "b", "c"],
        metadata=[{}, {}, {}],
        matrix=np.asarray(rows, dtype=np.float32),
        axes=np.asarray(ranges, dtype=np.float64),
        units=units,
    )


def test_hits_come_from_the_entries_sharing_the_range_and_the_cache_follows_the_axes():
    cache = PreparedCache()
    axis = QueryAxis(np.linspace(1500.0, 2100.0, L), "nm")
    query = _spectrum(axis.points, 1800.0)[None]
    options = HQIOptions(preprocessing="none")
    library = _library([(1100.0, 2500.0)] * 2 + [(3000.0, 4000.0)], ["nm", "nm", "nm"])
    hits, note = hqi_search_common_range(
        library, query, preprocessor=None, axis=axis, options=options, k=5, cache=cache
    )
    assert [h.id for h in hits[0]] == ["b", "a"] and hits[0][0].score > 99.9
    assert note is not None and note.startswith("1 of 3 library entries were not compared")
    # the same stored values, entry "b" now on a range 2x wider: its band moves, so the answer
    # changes although the stored matrix is byte for byte the same (the axes are in the key)
    moved = replace(library, axes=np.array([(1100.0, 2500.0), (700.0, 3500.0), (3000.0, 4000.0)]))
    again, _ = hqi_search_common_range(
        moved, query, preprocessor=None, axis=axis, options=options, k=5, cache=cache
    )
    moved_b = next(h.score for h in again[0] if h.id == "b")
    assert moved_b < hits[0][0].score - 10.0
    # the entry in um is the same axis as in nm
    in_um = replace(library, axes=library.axes / 1000.0, units=["um"] * 3)
    same, _ = hqi_search_common_range(
        in_um, query, preprocessor=None, axis=axis, options=options, k=5, cache=cache
    )
    assert [h.id for h in same[0]] == ["b", "a"]
    np.testing.assert_allclose([h.score for h in same[0]], [h.score for h in hits[0]], atol=1e-6)

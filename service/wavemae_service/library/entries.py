"""The values a reference library stores and answers with: one entry, one search hit, every
matching entry's stored vectors, and the metadata filter that selects entries.

Backends store these through the :class:`~.base.LibraryStore` contract; :mod:`.rows` says how
an entry is laid out in a table row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "SEARCH_SPACES",
    "LibraryEntry",
    "MetadataFilter",
    "SearchHit",
    "SearchSpace",
    "StoredVectors",
    "matches_filter",
]

SearchSpace = Literal["embedding", "spectrum"]
SEARCH_SPACES: tuple[str, ...] = ("embedding", "spectrum")

#: Metadata filter: every key must match. A scalar value matches by equality; a list value
#: matches when the entry's value equals any element of the list ("any of").
MetadataFilter = Mapping[str, Any]


@dataclass(frozen=True, eq=False)
class LibraryEntry:
    """One reference spectrum as stored.

    Attributes:
        id: caller-chosen id, 1..256 characters.
        spectrum: ``(n,)`` float64, the caller's original values, unchanged.
        wavelengths: ``(n,)`` float64 caller's wavelengths, or None when the spectrum was sent
            on the model's own grid (then ``n == seq_len``).
        metadata: JSON-serialisable mapping.
        embedding: ``(latent_dim,)`` float32, as the model returned it.
        processed: ``(seq_len,)`` float32, the spectrum after the model's preprocessing.
        model_version: version of the model that produced ``embedding`` and ``processed``.
        created_at, updated_at: Unix seconds (set by the store; 0.0 on entries not yet stored).
        unit: the unit of ``wavelengths`` (``"nm"``, ``"um"``, ``"cm-1"``), or None when not
            known (an axis-relative model's entry sent without a unit; entries stored before
            the unit was recorded).
    """

    id: str
    spectrum: np.ndarray
    wavelengths: np.ndarray | None
    metadata: dict[str, Any]
    embedding: np.ndarray
    processed: np.ndarray
    model_version: str
    created_at: float = 0.0
    updated_at: float = 0.0
    unit: str | None = None

    def __post_init__(self) -> None:
        spectrum = np.asarray(self.spectrum, dtype=np.float64).reshape(-1)
        object.__setattr__(self, "spectrum", spectrum)
        if self.wavelengths is not None:
            wavelengths = np.asarray(self.wavelengths, dtype=np.float64).reshape(-1)
            if wavelengths.shape != spectrum.shape:
                raise ValueError(
                    f"entry {self.id!r}: wavelengths has {wavelengths.size} values but the "
                    f"spectrum has {spectrum.size}"
                )
            object.__setattr__(self, "wavelengths", wavelengths)
        object.__setattr__(
            self, "embedding", np.asarray(self.embedding, dtype=np.float32).reshape(-1)
        )
        object.__setattr__(
            self, "processed", np.asarray(self.processed, dtype=np.float32).reshape(-1)
        )
        if not isinstance(self.id, str) or not 1 <= len(self.id) <= 256:
            raise ValueError(f"entry id {self.id!r} must be a string of 1..256 characters")


@dataclass(frozen=True)
class SearchHit:
    """One neighbour: entry id, its score (cosine in [-1, 1], or a Hit Quality Index), the
    entry's metadata, and the gap to the next hit's score (None when nothing follows)."""

    id: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    gap: float | None = None


@dataclass(frozen=True)
class StoredVectors:
    """Every matching entry's stored vector, ordered by id.

    Attributes:
        ids: entry ids.
        metadata: their metadata, in the same order.
        matrix: ``(N, latent_dim)`` embeddings or ``(N, seq_len)`` processed spectra, float32.
        axes: when asked for (``vectors(..., with_axes=True)``), ``(N, 2)`` float64 lowest and
            highest stored wavelength of each entry: an axis-relative model's processed
            spectrum lies on ``seq_len`` evenly spaced points between them.
        units: with ``axes``, the unit of each entry's wavelengths (None: not known).
    """

    ids: list[str]
    metadata: list[dict[str, Any]]
    matrix: np.ndarray
    axes: np.ndarray | None = None
    units: list[str | None] | None = None


def matches_filter(metadata: Mapping[str, Any], metadata_filter: MetadataFilter | None) -> bool:
    """True when ``metadata`` satisfies every key of ``metadata_filter`` (see MetadataFilter)."""
    if not metadata_filter:
        return True
    for key, wanted in metadata_filter.items():
        if key not in metadata:
            return False
        value = metadata[key]
        if isinstance(wanted, list):
            if not any(_json_equal(value, w) for w in wanted):
                return False
        elif not _json_equal(value, wanted):
            return False
    return True


def _json_equal(a: Any, b: Any) -> bool:
    # JSON semantics: true != 1 (Python says True == 1), 1 == 1.0.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b

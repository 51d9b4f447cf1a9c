"""The requests and answers of the library service's operations: plain frozen dataclasses
that routes build and :class:`~wavemae_service.library.service.LibraryService` returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wavemae.similarity import HQIOptions

from .base import LibraryEntry, MetadataFilter, SearchSpace

__all__ = [
    "LibraryPage",
    "LibraryState",
    "NewEntry",
    "ReembedResult",
    "SimilarQuery",
    "SimilarResult",
    "SpectraReport",
    "WriteResult",
]


@dataclass(frozen=True)
class NewEntry:
    """One reference spectrum to store.

    Attributes:
        id: the entry id.
        spectrum: ``(L_in,)`` float64, the caller's values (stored unchanged).
        wavelengths: ``(L_in,)`` their grid, or None (the model's grid).
        metadata: JSON-serialisable mapping.
        field: the request field of ``spectrum``, for error messages.
    """

    id: str
    spectrum: np.ndarray
    wavelengths: np.ndarray | None
    metadata: dict[str, Any]
    field: str = "spectrum"
    #: the unit the caller sent ``wavelengths`` in (they arrive converted), for messages
    unit: str | None = None


@dataclass(frozen=True)
class SimilarQuery:
    """A search: exactly one of ``spectra`` (raw, ``(Q, L_in)``, on ``wavelengths`` or the
    model's grid) or ``embeddings`` (``(Q, latent_dim)`` from this model version). ``hqi`` says
    how ``space="spectrum"`` compares spectra (:mod:`.spectral`).

    ``include_metadata`` and ``fields`` choose what the answer shows of each hit's metadata
    (all of it, the named keys, or none)."""

    k: int
    space: SearchSpace = "embedding"
    spectra: np.ndarray | None = None
    wavelengths: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    metadata_filter: MetadataFilter | None = None
    include_metadata: bool = True
    fields: Sequence[str] | None = None
    hqi: HQIOptions = field(default_factory=HQIOptions)
    #: per query spectrum, the parts hidden from the encoder (see inference.visible_mask)
    missing: Sequence[Sequence[Any]] | None = None
    #: the unit the caller sent ``wavelengths`` in (they arrive converted), for messages
    unit: str | None = None


@dataclass(frozen=True)
class SpectraReport:
    """Per spectrum the model read: the fraction of its grid covered, and why an answer about
    it may be doubtful (as /embed reports them)."""

    coverage: list[float]
    warnings: list[list[str]]


@dataclass(frozen=True)
class WriteResult:
    """The ids written, in request order, and the report on their spectra."""

    ids: list[str]
    report: SpectraReport


@dataclass(frozen=True)
class SimilarResult:
    """Per query, the JSON-ready hits; the report on the query spectra (None for queries sent
    as embeddings); the unit-length query embeddings an embedding search used (None for a
    spectrum search), so a caller needing them (the cluster of each query) does not embed
    again."""

    results: list[list[dict[str, Any]]]
    report: SpectraReport | None = None
    vectors: np.ndarray | None = None


@dataclass(frozen=True)
class LibraryPage:
    """``count`` entries match; ``entries`` is the requested page of them, by id."""

    count: int
    model_version: str | None
    entries: list[LibraryEntry]


@dataclass(frozen=True)
class LibraryState:
    """What /readyz and /model report: the store's class name (None without a library), the
    model version the library is embedded with (None when empty), a re-embedding running."""

    backend: str | None
    model_version: str | None
    reembedding: bool


@dataclass(frozen=True)
class ReembedResult:
    """How many entries were re-embedded, and the library's model version afterwards."""

    reembedded: int
    model_version: str | None

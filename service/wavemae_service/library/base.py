"""The reference-library store interface shared by every backend.

A library holds reference spectra. Each entry keeps

- the caller's ORIGINAL spectrum and wavelengths, exactly as sent (float64, never resampled or
  rounded: they are the source of truth for re-embedding with a later model),
- its JSON metadata,
- the model's embedding ``(latent_dim,)`` float32 (L2-normalised by the model),
- the preprocessed model-grid spectrum ``(seq_len,)`` float32 (for ``space="spectrum"`` search),
- the model version that produced the last two.

The library as a whole records the model version it is embedded with. Embeddings from different
model versions are never compared: :meth:`LibraryStore.search` and :meth:`LibraryStore.put` take
the served model's version and raise :class:`ModelVersionMismatchError` when the library was
embedded by another one, until :meth:`LibraryStore.reembed` has replaced every embedding.

Writes are atomic (a batch is stored entirely or not at all) and durable when the method returns
(an acknowledged write survives ``kill -9`` of the process). Implementations must be safe to call
from several threads at once. Backends: :mod:`.sqlite` (embedded default) and ``.postgres``
(PostgreSQL + pgvector, for many replicas); both pass ``tests/service/test_library_store.py``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "SEARCH_SPACES",
    "DimensionMismatchError",
    "EntryNotFoundError",
    "LibraryEntry",
    "LibraryError",
    "LibraryStore",
    "LibraryUnavailableError",
    "MetadataFilter",
    "ModelVersionMismatchError",
    "SearchHit",
    "SearchSpace",
    "matches_filter",
]

SearchSpace = Literal["embedding", "spectrum"]
SEARCH_SPACES: tuple[str, ...] = ("embedding", "spectrum")

#: Metadata filter: every key must match. A scalar value matches by equality; a list value
#: matches when the entry's value equals any element of the list ("any of").
MetadataFilter = Mapping[str, Any]


# --------------------------------------------------------------------------- errors


class LibraryError(Exception):
    """Base of every error a library store raises on purpose."""


class EntryNotFoundError(LibraryError, KeyError):
    """No entry with this id. ``.entry_id`` names it."""

    def __init__(self, entry_id: str) -> None:
        super().__init__(f"no library entry with id {entry_id!r}")
        self.entry_id = entry_id

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ModelVersionMismatchError(LibraryError):
    """The library was embedded by another model version than the one asked for.

    ``.library_version`` is the stored version, ``.model_version`` the requested one.
    """

    def __init__(self, library_version: str | None, model_version: str) -> None:
        super().__init__(
            f"the library is embedded with model version {library_version!r}, not "
            f"{model_version!r}; re-embed it (POST /library/reembed) before using it"
        )
        self.library_version = library_version
        self.model_version = model_version


class DimensionMismatchError(LibraryError, ValueError):
    """An array does not have the length this library stores (latent_dim or seq_len)."""


class LibraryUnavailableError(LibraryError):
    """The library's database cannot be reached (down, wrong URL or credentials); retry later."""


# --------------------------------------------------------------------------- data types


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
    """One neighbour: entry id, cosine similarity in [-1, 1], and the entry's metadata."""

    id: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)


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


# --------------------------------------------------------------------------- interface

#: Embeds a batch for re-embedding: takes stored entries (use their original ``spectrum`` and
#: ``wavelengths``) and returns ``(embeddings (n, latent_dim) f32, processed (n, seq_len) f32)``.
EmbedBatch = Callable[[Sequence[LibraryEntry]], "tuple[np.ndarray, np.ndarray]"]


class LibraryStore(abc.ABC):
    """Reference-library storage. All arrays are numpy; all methods are thread-safe.

    Construct through :func:`wavemae_service.library.open_store`.
    """

    latent_dim: int
    seq_len: int

    # -- state -------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def model_version(self) -> str | None:
        """Model version the library is embedded with; None for a library never written to."""

    @abc.abstractmethod
    def count(self, metadata_filter: MetadataFilter | None = None) -> int:
        """Number of entries (matching ``metadata_filter`` when given)."""

    # -- writes (atomic, durable on return) -------------------------------------------

    @abc.abstractmethod
    def put(self, entries: Sequence[LibraryEntry], *, model_version: str) -> None:
        """Insert or replace ``entries`` (by id) in one transaction.

        Every entry must carry ``model_version``. An empty library adopts it.

        Raises:
            ModelVersionMismatchError: the library is embedded with another version.
            DimensionMismatchError: an embedding is not ``(latent_dim,)`` or ``processed`` not
                ``(seq_len,)``.
            ValueError: duplicate ids within ``entries`` or an entry of another version.
        """

    @abc.abstractmethod
    def delete(self, entry_id: str) -> None:
        """Remove one entry. Raises EntryNotFoundError when absent."""

    # -- reads -------------------------------------------------------------------------

    @abc.abstractmethod
    def get(self, entry_id: str) -> LibraryEntry:
        """The stored entry. Raises EntryNotFoundError when absent."""

    @abc.abstractmethod
    def list_entries(
        self,
        *,
        offset: int = 0,
        limit: int = 100,
        metadata_filter: MetadataFilter | None = None,
    ) -> list[LibraryEntry]:
        """Entries ordered by id, skipping ``offset`` and returning at most ``limit``."""

    @abc.abstractmethod
    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        model_version: str,
        space: SearchSpace = "embedding",
        metadata_filter: MetadataFilter | None = None,
    ) -> list[list[SearchHit]]:
        """Exact (sqlite) or approximate (pgvector HNSW) cosine k-nearest neighbours.

        Args:
            queries: ``(Q, latent_dim)`` for ``space="embedding"`` or ``(Q, seq_len)`` preprocessed
                spectra for ``space="spectrum"``; need not be normalised.
            k: neighbours per query, >= 1 (fewer returned when fewer entries match).
            model_version: the served model's version.
            space: which stored vectors to compare with.
            metadata_filter: only entries matching it are candidates.

        Returns:
            Per query, hits sorted by descending cosine score (ties by id).

        Raises:
            ModelVersionMismatchError: the library is embedded with another version (an empty
                library never raises).
            DimensionMismatchError: ``queries`` has the wrong width for ``space``.
        """

    # -- re-embedding --------------------------------------------------------------------

    @abc.abstractmethod
    def iter_stale(self, model_version: str, batch_size: int) -> Iterator[list[LibraryEntry]]:
        """Batches of entries whose embedding is not from ``model_version``, by id.

        Must tolerate :meth:`replace_embeddings` being called between batches.
        """

    @abc.abstractmethod
    def replace_embeddings(
        self,
        ids: Sequence[str],
        embeddings: np.ndarray,
        processed: np.ndarray,
        *,
        model_version: str,
    ) -> None:
        """Replace the embeddings and processed spectra of ``ids`` in one transaction.

        Original spectra, wavelengths and metadata stay untouched. When no entry of another
        version remains, the library's model version becomes ``model_version`` (in the same
        transaction). Ids deleted meanwhile are skipped. ``embeddings`` is ``(n, latent_dim)``
        and ``processed`` ``(n, seq_len)`` with the store's (the served model's) dims, which may
        differ from the dims of the stale entries (the old model's).

        Raises:
            DimensionMismatchError: wrong array shapes.
        """

    def reembed(self, embed_batch: EmbedBatch, *, model_version: str, batch_size: int = 256) -> int:
        """Re-embed every stale entry with ``embed_batch``; returns how many were re-embedded.

        One transaction per batch, so a crash part-way keeps every finished batch and the
        library stays marked with the old version until the last batch lands.
        """
        done = 0
        for batch in self.iter_stale(model_version, batch_size):
            embeddings, processed = embed_batch(batch)
            self.replace_embeddings(
                [entry.id for entry in batch], embeddings, processed, model_version=model_version
            )
            done += len(batch)
        self.mark_version(model_version)
        return done

    @abc.abstractmethod
    def mark_version(self, model_version: str) -> None:
        """Set the library's version to ``model_version`` if no entry of another version is left
        (used after re-embedding and for an empty library); otherwise do nothing."""

    def _check_shapes(self, embeddings: np.ndarray, processed: np.ndarray, n: int) -> None:
        """Raise DimensionMismatchError unless the arrays are (n, latent_dim) and (n, seq_len)."""
        if embeddings.shape != (n, self.latent_dim):
            raise DimensionMismatchError(
                f"embeddings must be ({n}, {self.latent_dim}), got {embeddings.shape}"
            )
        if processed.shape != (n, self.seq_len):
            raise DimensionMismatchError(
                f"processed spectra must be ({n}, {self.seq_len}), got {processed.shape}"
            )

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files. The store is unusable afterwards."""

    def __enter__(self) -> LibraryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

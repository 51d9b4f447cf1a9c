"""The reference-library store interface shared by every backend.

A library holds reference spectra. Each entry keeps

- the caller's ORIGINAL spectrum and wavelengths, exactly as sent (float64, never resampled or
  rounded: they are the source of truth for re-embedding with a later model), and the unit of
  those wavelengths when known,
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

The values themselves (entries, hits, metadata filters) are defined in :mod:`.entries`, and how
a backend lays an entry out in a row in :mod:`.rows`; both are re-exported here.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .entries import (
    SEARCH_SPACES,
    LibraryEntry,
    MetadataFilter,
    SearchHit,
    SearchSpace,
    StoredVectors,
    matches_filter,
)
from .rows import COLUMNS, axis_range, entry_from_row

__all__ = [
    "COLUMNS",
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
    "StoredVectors",
    "axis_range",
    "entry_from_row",
    "matches_filter",
]

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


# --------------------------------------------------------------------------- interface

#: Embeds a batch for re-embedding: takes stored entries (use their original ``spectrum`` and
#: ``wavelengths``) and returns ``(embeddings (n, latent_dim) f32, processed (n, seq_len) f32)``.
EmbedBatch = Callable[[Sequence[LibraryEntry]], "tuple[np.ndarray, np.ndarray]"]


class LibraryStore(abc.ABC):
    """Reference-library storage. All arrays are numpy; all methods are thread-safe.

    The public methods check their arguments and hold every rule that is not SQL (duplicate
    ids, versions of the entries, array shapes, search arguments, the paging of stale entries,
    the re-embedding loop); a backend implements the ``_``-prefixed hooks with its SQL.
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

    def put(self, entries: Sequence[LibraryEntry], *, model_version: str) -> None:
        """Insert or replace ``entries`` (by id) in one transaction.

        Every entry must carry ``model_version``. An empty library adopts it.

        Raises:
            ModelVersionMismatchError: the library is embedded with another version.
            DimensionMismatchError: an embedding is not ``(latent_dim,)`` or ``processed`` not
                ``(seq_len,)``.
            ValueError: duplicate ids within ``entries`` or an entry of another version.
        """
        if not entries:
            return
        ids = [e.id for e in entries]
        if len(set(ids)) != len(ids):
            raise ValueError(
                "duplicate ids in one write: "
                + ", ".join(sorted({i for i in ids if ids.count(i) > 1}))
            )
        for entry in entries:
            if entry.model_version != model_version:
                raise ValueError(
                    f"entry {entry.id!r} has model_version={entry.model_version!r}, "
                    f"not {model_version!r}"
                )
            self._check_shapes(entry.embedding[None], entry.processed[None], 1)
        self._put(entries, model_version)

    @abc.abstractmethod
    def _put(self, entries: Sequence[LibraryEntry], model_version: str) -> None:
        """Upsert checked entries in one transaction; adopt ``model_version`` when the library
        is empty, else raise ModelVersionMismatchError when it holds another one."""

    @abc.abstractmethod
    def delete(self, entry_id: str) -> None:
        """Remove one entry. Raises EntryNotFoundError when absent."""

    # -- reads -------------------------------------------------------------------------

    @abc.abstractmethod
    def get(self, entry_id: str) -> LibraryEntry:
        """The stored entry. Raises EntryNotFoundError when absent."""

    def list_entries(
        self,
        *,
        offset: int = 0,
        limit: int = 100,
        metadata_filter: MetadataFilter | None = None,
    ) -> list[LibraryEntry]:
        """Entries ordered by id, skipping ``offset`` and returning at most ``limit``.

        Raises:
            ValueError: a negative ``offset`` or ``limit``.
        """
        if offset < 0 or limit < 0:
            raise ValueError(f"offset={offset} and limit={limit} must be >= 0")
        return self._list(offset, limit, metadata_filter)

    @abc.abstractmethod
    def _list(
        self, offset: int, limit: int, metadata_filter: MetadataFilter | None
    ) -> list[LibraryEntry]:
        """One page of entries ordered by id (arguments checked)."""

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
            ValueError: an unknown ``space`` or ``k < 1``.
        """
        if space not in SEARCH_SPACES:
            raise ValueError(f"space={space!r} must be 'embedding' or 'spectrum'")
        if k < 1:
            raise ValueError(f"k={k} must be >= 1")
        width = self.latent_dim if space == "embedding" else self.seq_len
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != width:
            raise DimensionMismatchError(
                f"queries for space={space!r} must be (Q, {width}), got {queries.shape}"
            )
        return self._search(queries, k, model_version, space, metadata_filter)

    @abc.abstractmethod
    def _search(
        self,
        queries: np.ndarray,
        k: int,
        model_version: str,
        space: SearchSpace,
        metadata_filter: MetadataFilter | None,
    ) -> list[list[SearchHit]]:
        """The search on checked arguments (``queries`` float32 ``(Q, width)``)."""

    def vectors(
        self,
        space: SearchSpace,
        *,
        model_version: str,
        metadata_filter: MetadataFilter | None = None,
        with_axes: bool = False,
    ) -> StoredVectors:
        """The stored embeddings (``space="embedding"``) or processed spectra
        (``"spectrum"``) of every entry matching ``metadata_filter``, for whole-library work
        (exact spectral search, clustering, maps); ``with_axes`` adds each entry's stored
        wavelength range and unit (an axis-relative model's spectral search needs them).

        Raises:
            ModelVersionMismatchError: the library is embedded with another version.
            ValueError: an unknown ``space``.
        """
        if space not in SEARCH_SPACES:
            raise ValueError(f"space={space!r} must be 'embedding' or 'spectrum'")
        return self._vectors(space, model_version, metadata_filter, with_axes)

    @abc.abstractmethod
    def _vectors(
        self,
        space: SearchSpace,
        model_version: str,
        metadata_filter: MetadataFilter | None,
        with_axes: bool,
    ) -> StoredVectors:
        """:meth:`vectors` on checked arguments."""

    # -- analyses (clusters, maps) -------------------------------------------------------

    @abc.abstractmethod
    def save_analysis(
        self, name: str, model_version: str, payload: dict[str, Any], *, blob: bytes | None = None
    ) -> None:
        """Store (replace) the JSON result ``payload`` of analysis ``name`` (e.g. ``"clusters"``,
        ``"map:umap"``), computed from the embeddings of ``model_version``, and its binary
        attachment ``blob`` (a map's fitted transform; None: no attachment), in one transaction.
        Durable on return."""

    @abc.abstractmethod
    def update_analysis(
        self, name: str, model_version: str, payload: dict[str, Any], *, digest: str
    ) -> bool:
        """Replace the payload of analysis ``name``, keeping its attachment, only while the
        stored payload's ``transform.digest`` is still ``digest`` (the fit the new payload was
        derived from), checked in the same statement. Returns False, changing nothing, when
        another fit replaced the analysis meanwhile (a map refitted here or by another
        process). Durable on return."""

    @abc.abstractmethod
    def load_analysis(self, name: str) -> tuple[str, dict[str, Any]] | None:
        """``(model_version, payload)`` of a stored analysis, or None."""

    @abc.abstractmethod
    def load_analysis_blob(self, name: str) -> bytes | None:
        """The binary attachment of a stored analysis, or None."""

    @abc.abstractmethod
    def load_analysis_with_blob(self, name: str) -> tuple[str, dict[str, Any], bytes | None] | None:
        """``(model_version, payload, blob)`` of a stored analysis read in one statement, so
        the payload and its attachment are always those of the same write; or None."""

    # -- re-embedding --------------------------------------------------------------------

    def iter_stale(self, model_version: str, batch_size: int) -> Iterator[list[LibraryEntry]]:
        """Batches of entries whose embedding is not from ``model_version``, by id.

        Pages by id (keyset), so :meth:`replace_embeddings` may run between batches.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        after = ""
        while True:
            batch = self._stale_page(model_version, after, batch_size)
            if not batch:
                return
            after = batch[-1].id
            yield batch

    @abc.abstractmethod
    def _stale_page(self, model_version: str, after: str, limit: int) -> list[LibraryEntry]:
        """Up to ``limit`` entries not of ``model_version`` with id > ``after``, by id."""

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
        embeddings = np.asarray(embeddings, dtype=np.float32)
        processed = np.asarray(processed, dtype=np.float32)
        self._check_shapes(embeddings, processed, len(ids))
        self._replace_embeddings(list(ids), embeddings, processed, model_version)

    @abc.abstractmethod
    def _replace_embeddings(
        self, ids: list[str], embeddings: np.ndarray, processed: np.ndarray, model_version: str
    ) -> None:
        """The update on checked arrays, marking the version when nothing stale is left."""

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

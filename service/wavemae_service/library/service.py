"""The reference library as the routes see it: typed operations over one store and the model.

Each operation is one call for a route: :meth:`LibraryService.put` embeds through
:class:`~wavemae_service.inference.Inference` and stores, :meth:`~LibraryService.similar`
decides how the queries become vectors (:mod:`.search`), :meth:`~LibraryService.reembed` feeds
the stored originals through the same bounded batcher as requests. Blocking store calls run in
worker threads; the store's errors become the service's (:mod:`.store_calls`). No FastAPI.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from ..errors import (
    InvalidInput,
    NotReady,
    ReembedInProgress,
)
from ..inference import Inference
from ..validation import rename_rows
from .base import (
    LibraryEntry,
    LibraryStore,
    MetadataFilter,
)
from .records import (
    LibraryPage,
    LibraryState,
    NewEntry,
    ReembedResult,
    SimilarQuery,
    SimilarResult,
    SpectraReport,
    WriteResult,
)
from .search import LibrarySearch
from .store_calls import require_store, run_on_store, service_error

__all__ = ["LibraryService", "require_store", "run_on_store", "service_error"]

log = logging.getLogger("wavemae_service.library")

T = TypeVar("T")


class LibraryService:
    """Typed library operations for one served model.

    Args:
        store: the opened store, or None when the server runs without a library (every
            operation then answers InvalidInput).
        inference: the served model.
        reembed_batch_size: entries per re-embedding transaction.
        max_search_response_bytes: the largest search answer (hits and their metadata as JSON).
    """

    def __init__(
        self,
        store: LibraryStore | None,
        inference: Inference,
        *,
        reembed_batch_size: int = 256,
        max_search_response_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self._store = store
        self._inference = inference
        self.model_id = inference.model_id
        self._reembed_batch_size = reembed_batch_size
        self._reembed_lock = threading.Lock()
        self._stopping = threading.Event()
        self._search = LibrarySearch(
            store, inference, max_search_response_bytes=max_search_response_bytes
        )

    # -- state ---------------------------------------------------------------------------------

    @property
    def backend(self) -> str | None:
        """The store's class name, or None without a library."""
        return None if self._store is None else type(self._store).__name__

    @property
    def reembedding(self) -> bool:
        """A re-embedding is running."""
        return self._reembed_lock.locked()

    def stale_version(self) -> str | None:
        """The library's model version when it is not the served one (re-embed before use);
        None when it matches or the library is empty or absent. Blocking."""
        if self._store is None:
            return None
        version = self._store.model_version
        return None if version in (None, self.model_id) else version

    async def state(self) -> LibraryState:
        """Backend, model version and whether a re-embedding runs.

        Raises:
            NotReady: the library's database is unreachable.
        """
        version = None
        if self._store is not None:
            version = await self._call(lambda store: store.model_version)
        return LibraryState(self.backend, version, self.reembedding)

    async def count(self) -> int | None:
        """Number of entries, None without a library."""
        if self._store is None:
            return None
        return await self._call(lambda store: store.count())

    def stop(self) -> None:
        """Stop a running re-embedding after its current batch (finished batches are kept)."""
        self._stopping.set()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # -- operations ----------------------------------------------------------------------------

    async def put(self, items: Sequence[NewEntry]) -> WriteResult:
        """Embed ``items`` and store them in one transaction (all or none); returns their ids
        and the report on their spectra.

        Spectra are grouped by grid so each group is one preprocessing call and one batched
        submit.

        Raises:
            InvalidInput: a spectrum the model cannot take (naming its field), or no library.
            LibraryVersionMismatch: the library is embedded with another model version.
        """
        self._require_store()
        groups: dict[tuple[int, bytes | None, str | None], list[int]] = {}
        for i, item in enumerate(items):
            key = (
                item.spectrum.size,
                None if item.wavelengths is None else item.wavelengths.tobytes(),
                item.unit,
            )
            groups.setdefault(key, []).append(i)
        embeddings: list[np.ndarray] = [np.empty(0)] * len(items)
        processed: list[np.ndarray] = [np.empty(0)] * len(items)
        coverage: list[float] = [1.0] * len(items)
        warnings: list[list[str]] = [[] for _ in items]
        for indices in groups.values():
            first = items[indices[0]]
            values = np.stack([items[i].spectrum for i in indices])
            try:
                emb, model_input = await self._inference.embed(
                    values, first.wavelengths, field=first.field, unit=first.unit
                )
            except InvalidInput as exc:  # it names {first.field}[row of this group]: name the entry
                raise rename_rows(exc, first.field, [items[i].field for i in indices]) from None
            group_coverage, group_warnings = await self._inference.report(model_input)
            for row, i in enumerate(indices):
                embeddings[i] = emb[row]
                processed[i] = model_input.x[row]
                coverage[i], warnings[i] = group_coverage[row], group_warnings[row]
        entries = [
            LibraryEntry(
                id=item.id,
                spectrum=item.spectrum,
                # on the model's grid: stored explicitly, so a later model knows the grid
                wavelengths=self._inference.grid.copy()
                if item.wavelengths is None
                else item.wavelengths,
                metadata=item.metadata,
                embedding=embeddings[i],
                processed=processed[i],
                model_version=self.model_id,
                # an axis-relative model keeps the caller's axis (and its unit, when sent);
                # a fixed-grid model's wavelengths arrive converted to its unit
                unit=item.unit if self._inference.relative else self._inference.unit,
            )
            for i, item in enumerate(items)
        ]
        await self._call(lambda store: store.put(entries, model_version=self.model_id))
        return WriteResult([entry.id for entry in entries], SpectraReport(coverage, warnings))

    async def get(self, entry_id: str) -> LibraryEntry:
        """The stored entry. Raises NotFound."""
        return await self._call(lambda store: store.get(entry_id))

    async def delete(self, entry_id: str) -> None:
        """Remove one entry. Raises NotFound."""
        await self._call(lambda store: store.delete(entry_id))

    async def list(
        self, *, offset: int, limit: int, metadata_filter: MetadataFilter | None
    ) -> LibraryPage:
        """How many entries match ``metadata_filter``, and the page ``[offset, offset+limit)``."""

        def page(store: LibraryStore) -> LibraryPage:
            return LibraryPage(
                count=store.count(metadata_filter),
                model_version=store.model_version,
                entries=store.list_entries(
                    offset=offset, limit=limit, metadata_filter=metadata_filter
                ),
            )

        return await self._call(page)

    async def similar(self, query: SimilarQuery) -> SimilarResult:
        """Per query, the ``k`` most similar entries, best first, and for query spectra their
        report; see :meth:`.search.LibrarySearch.similar` for the rules and errors."""
        return await self._search.similar(query)

    async def reembed(self) -> ReembedResult:
        """Re-embed every entry written by another model version from its stored original
        spectrum, through the bounded batcher, one transaction per batch.

        Raises:
            ReembedInProgress: a re-embedding is already running.
            InvalidInput: an entry cannot be re-embedded (named; the library keeps its version).
            NotReady: the service began shutting down (finished batches are kept).
        """
        loop = asyncio.get_running_loop()

        def embed_batch(entries: Sequence[LibraryEntry]) -> tuple[np.ndarray, np.ndarray]:
            # In the worker thread: preprocess here, embed on the loop's batcher, wait.
            if self._stopping.is_set():
                raise NotReady("the service is shutting down")
            x = np.stack([self._preprocess_stored(entry) for entry in entries])
            submit = self._inference.embed_model_input(x, background=True)
            return asyncio.run_coroutine_threadsafe(submit, loop).result(), x

        def run(store: LibraryStore) -> int:
            if not self._reembed_lock.acquire(blocking=False):
                raise ReembedInProgress(
                    "the library is being re-embedded already; retry when it is done"
                )
            try:
                return store.reembed(
                    embed_batch, model_version=self.model_id, batch_size=self._reembed_batch_size
                )
            finally:
                self._reembed_lock.release()

        count = await self._call(run)
        if count:
            log.info("re-embedded %d library entries with %s", count, self.model_id)
        return ReembedResult(count, await self._call(lambda store: store.model_version))

    # -- helpers -------------------------------------------------------------------------------

    def _require_store(self) -> LibraryStore:
        return require_store(self._store)

    async def _call(self, work: Callable[[LibraryStore], T]) -> T:
        return await run_on_store(self._store, work)

    def _preprocess_stored(self, entry: LibraryEntry) -> np.ndarray:
        """A stored original spectrum -> ``(seq_len,)`` model input, naming the entry on error.

        An entry stored without wavelengths (by a version that did not record the grid) is
        refused by a model other than the one that wrote it: its grid is unknown.
        """
        if entry.wavelengths is None and entry.model_version != self.model_id:
            raise InvalidInput(
                f"library entry {entry.id!r} was stored by {entry.model_version} without "
                f"wavelengths, so its grid is unknown to {self.model_id}; delete it, re-embed, "
                "and store it again with its wavelengths",
                field="id",
            )
        try:
            return self._inference.preprocess_sync(entry.spectrum[None], entry.wavelengths).x[0]
        except InvalidInput as exc:
            raise InvalidInput(
                f"library entry {entry.id!r} cannot be re-embedded with {self.model_id}: "
                f"{exc.message}",
                field="id",
            ) from None

"""The reference library as the routes see it: typed operations over one store and the model.

Each operation is one call for a route: :meth:`LibraryService.put` embeds through
:class:`~wavemae_service.inference.Inference` and stores, :meth:`~LibraryService.similar`
decides how the queries become vectors, :meth:`~LibraryService.reembed` feeds the stored
originals through the same bounded batcher as requests. Blocking store calls run in worker
threads; the store's errors become the service's (:mod:`wavemae_service.errors`). No FastAPI.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

import numpy as np

from ..errors import (
    InternalError,
    InvalidInput,
    LibraryVersionMismatch,
    NotFound,
    NotReady,
    ReembedInProgress,
    ServiceError,
)
from ..grids import uncovered_ranges
from ..inference import Inference, ModelInput
from ..validation import bounded_hits, rename_rows, unit_rows
from .base import (
    DimensionMismatchError,
    EntryNotFoundError,
    LibraryEntry,
    LibraryError,
    LibraryStore,
    LibraryUnavailableError,
    MetadataFilter,
    ModelVersionMismatchError,
    SearchHit,
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
from .spectral import (
    PreparedCache,
    QueryAxis,
    check_options,
    hqi_search,
    hqi_search_common_range,
    with_gaps,
)

__all__ = ["LibraryService", "require_store", "run_on_store", "service_error"]

log = logging.getLogger("wavemae_service.library")

T = TypeVar("T")


def service_error(exc: LibraryError) -> ServiceError:
    """The service error the caller sees for a store error."""
    if isinstance(exc, EntryNotFoundError):
        return NotFound(str(exc), field="id")
    if isinstance(exc, ModelVersionMismatchError):
        return LibraryVersionMismatch(str(exc))
    if isinstance(exc, DimensionMismatchError):
        return InvalidInput(str(exc))
    if isinstance(exc, LibraryUnavailableError):
        return NotReady("the reference library is unreachable; retry shortly")
    return InternalError("the library could not complete the request")


def require_store(store: LibraryStore | None) -> LibraryStore:
    """The store, or InvalidInput when the server runs without a reference library."""
    if store is None:
        raise InvalidInput("this server runs without a reference library")
    return store


async def run_on_store(store: LibraryStore | None, work: Callable[[LibraryStore], T]) -> T:
    """``work(store)`` in a worker thread (off the event loop), the store's errors translated
    into service errors."""
    checked = require_store(store)
    try:
        return await asyncio.to_thread(work, checked)
    except LibraryError as exc:
        raise service_error(exc) from None


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
        self._max_search_response_bytes = max_search_response_bytes
        self._reembed_lock = threading.Lock()
        self._stopping = threading.Event()
        self._hqi_cache = PreparedCache()

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
        """Per query, the ``k`` most similar entries, best first, as JSON-ready
        ``{"id", "score", "gap", "metadata"?}`` hits (see ``validation.bounded_hits``), and
        for query spectra their report (coverage, warnings).

        ``space="embedding"``: cosine of embeddings (``embeddings`` as they are, ``spectra``
        embedded by the served model; query vectors scaled to unit length safely, rows of 1e300
        or 1e-300 included). ``space="spectrum"``: the Hit Quality Index of the ``spectra``
        against every candidate's stored model-grid spectrum (:mod:`.spectral`; an axis-relative
        model compares each pair on their common range, and candidates sharing too little of it
        are not hits, counted in every query's warnings). ``gap`` is a
        hit's score minus the next one's; None for the last hit of an embedding search and for
        the library's last entry. A query spectrum covering part of the model's range is
        compared on the bands it covers (embedding: the masked encoder; spectrum: the bands
        outside its range are excluded).

        Raises:
            InvalidInput: not exactly one of spectra/embeddings, embeddings with
                ``space="spectrum"`` or of the wrong width, spectra the model cannot take, an
                all-zero query (or a spectrum flat after preprocessing), HQI options that do
                not fit the model grid (``window``, ``exclude``), or an answer larger than
                ``max_search_response_bytes``.
            LibraryVersionMismatch: the library is embedded with another model version.
        """
        self._require_store()
        if (query.spectra is None) == (query.embeddings is None):
            raise InvalidInput("send exactly one of 'spectra' or 'embeddings'", field="spectra")
        if query.embeddings is not None:
            if query.space != "embedding":
                raise InvalidInput(
                    "space='spectrum' needs 'spectra', not 'embeddings'", field="embeddings"
                )
            if query.embeddings.shape[1] != self._inference.latent_dim:
                raise InvalidInput(
                    f"embeddings have {query.embeddings.shape[1]} values but this model's "
                    f"embeddings have latent_dim={self._inference.latent_dim}",
                    field="embeddings",
                )
            vectors = unit_rows(query.embeddings, "embeddings")
            report = None
        elif query.space == "embedding":
            vectors, model_input = await self._inference.embed(
                query.spectra, query.wavelengths, missing=query.missing, unit=query.unit
            )
            vectors = unit_rows(vectors, "spectra")
            report = SpectraReport(*await self._inference.report(model_input))
        else:
            hits, model_input, note = await self._spectral(query)
            shaped = bounded_hits(
                hits,
                query.include_metadata,
                query.fields,
                max_bytes=self._max_search_response_bytes,
            )
            coverage, warnings = await self._inference.report(model_input)
            if note:
                warnings = [[*row, note] for row in warnings]
            return SimilarResult(shaped, SpectraReport(coverage, warnings))
        hits = await self._call(
            lambda store: store.search(
                vectors,
                query.k,
                model_version=self.model_id,
                space=query.space,
                metadata_filter=query.metadata_filter,
            )
        )
        shaped = bounded_hits(
            with_gaps(hits),
            query.include_metadata,
            query.fields,
            max_bytes=self._max_search_response_bytes,
        )
        return SimilarResult(shaped, report, vectors)

    async def _spectral(
        self, query: SimilarQuery
    ) -> tuple[list[list[SearchHit]], ModelInput, str | None]:
        """Hit Quality Index search of raw query spectra against every candidate entry, on
        the bands the queries cover; the queries' model input; and a warning for every query
        when candidates were left out (an axis-relative model's entries sharing too little
        range with the queries)."""
        if query.missing is not None and any(len(row) for row in query.missing):
            raise InvalidInput(
                "missing applies to space='embedding'; the spectrum search leaves bands out "
                "with 'exclude' (wavelength ranges)",
                field="missing",
            )
        grid = self._inference.grid
        model_input = await self._inference.preprocess(
            query.spectra, query.wavelengths, unit=query.unit
        )
        options = query.hqi
        if self._inference.relative:
            return await self._spectral_common_range(query, model_input)
        if model_input.visible is not None:  # the query's range is shared by its spectra
            # a derivative at a band reaches half a window into the edge-filled values
            reach = options.window // 2 if options.preprocessing.startswith("deriv") else 0
            uncovered = tuple(uncovered_ranges(grid, model_input.visible[0], reach))
            options = replace(options, exclude=options.exclude + uncovered)
        check_options(options, grid)

        def search(store: LibraryStore) -> list[list[SearchHit]]:
            candidates = store.vectors(
                "spectrum", model_version=self.model_id, metadata_filter=query.metadata_filter
            )
            return hqi_search(
                candidates,
                model_input.x,
                preprocessor=self._inference.artifact.preprocessor,
                grid=grid,
                options=options,
                k=query.k,
                cache=self._hqi_cache,
            )

        return await self._call(search), model_input, None

    async def _spectral_common_range(
        self, query: SimilarQuery, model_input: ModelInput
    ) -> tuple[list[list[SearchHit]], ModelInput, str | None]:
        """:meth:`_spectral` for an axis-relative model: each candidate compared with the
        queries on their common range; the warning counts the candidates left out."""
        points = self._inference.grid if model_input.grid is None else model_input.grid
        axis = QueryAxis(np.asarray(points, dtype=np.float64), query.unit)
        options = query.hqi
        check_options(options, axis.points)  # on the queries' own axis: the request's error

        def search(store: LibraryStore) -> tuple[list[list[SearchHit]], str | None]:
            candidates = store.vectors(
                "spectrum",
                model_version=self.model_id,
                metadata_filter=query.metadata_filter,
                with_axes=True,
            )
            return hqi_search_common_range(
                candidates,
                model_input.x,
                preprocessor=self._inference.artifact.preprocessor,
                axis=axis,
                options=options,
                k=query.k,
                cache=self._hqi_cache,
            )

        hits, note = await self._call(search)
        return hits, model_input, note

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

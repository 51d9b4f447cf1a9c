"""Similarity search of the reference library: how a search's queries become vectors, and which
comparison answers it (cosine of embeddings in the store, or the Hit Quality Index of spectra,
:mod:`.spectral`). :class:`~.service.LibraryService` answers ``similar`` with it. No FastAPI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import numpy as np

from ..errors import InvalidInput
from ..grids import uncovered_ranges
from ..inference import Inference, ModelInput
from ..validation import bounded_hits, unit_rows
from .base import LibraryStore, SearchHit
from .records import SimilarQuery, SimilarResult, SpectraReport
from .spectral import (
    PreparedCache,
    QueryAxis,
    check_options,
    hqi_search,
    hqi_search_common_range,
    with_gaps,
)
from .store_calls import require_store, run_on_store

__all__ = ["LibrarySearch"]

T = TypeVar("T")


class LibrarySearch:
    """Similarity search over one store for one served model.

    Args:
        store: the opened store, or None when the server runs without a library (every
            search then answers InvalidInput).
        inference: the served model.
        max_search_response_bytes: the largest search answer (hits and their metadata as JSON).
    """

    def __init__(
        self,
        store: LibraryStore | None,
        inference: Inference,
        *,
        max_search_response_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self._store = store
        self._inference = inference
        self.model_id = inference.model_id
        self._max_search_response_bytes = max_search_response_bytes
        self._hqi_cache = PreparedCache()

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

    def _require_store(self) -> LibraryStore:
        return require_store(self._store)

    async def _call(self, work: Callable[[LibraryStore], T]) -> T:
        return await run_on_store(self._store, work)

"""Clusters and maps of the library as the routes see them (no FastAPI).

:class:`AnalysisService` starts fits as background jobs (:class:`.analysis.AnalysisJobs`, one
at a time, in their own thread; a map fit in a child process), stores each result with the model
version whose embeddings it describes, and serves pages of it. A stored result from another
model version is never served: the library's embeddings changed, so the caller recomputes.

A map's fitted transform is stored with it and loaded, once per fit, by every process that
places points with it (a query, or an entry added after the fit): in the background at
start-up and after a fit here, or by the first request that needs it
(:mod:`.fitted_maps`, which also warms it so no request compiles its kernels).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..errors import (
    AnalysisInProgress,
    ClustersNotComputed,
    InvalidInput,
    MapNotLoaded,
    NotFound,
)
from .analysis import (
    CLUSTER_METHODS,
    AnalysisJobs,
    ClusterAssignment,
    Job,
    JobBusy,
    assignment,
    cluster_result,
    map_page,
    map_result,
)
from .base import LibraryStore, MetadataFilter
from .fit_process import FitWorker
from .fitted_maps import MAP_METHODS, FittedMaps, transform_digest
from .map_transform import TransformUnavailable, fit_and_pack
from .service import require_store, run_on_store

__all__ = ["MAP_METHODS", "AnalysisService", "MapFitOptions"]

T = TypeVar("T")
_CLUSTERS = "clusters"
_MAP_SEED = 0
_PAGE_TRIES = 3  # a page whose placed points lost to a concurrent refit reads the map again


@dataclass(frozen=True)
class MapFitOptions:
    """How map fits run and how their transforms are kept (the ``map_*`` settings)."""

    isolation: str = "process"  # "process" | "thread"
    memory_mb: int = 0  # the fit process's address-space limit; 0 = none
    transform_max_bytes: int = 512 * 2**20
    transform_key: str = ""  # HMAC key of stored transforms; "" = plain SHA-256


class AnalysisService:
    """Cluster and map operations over one store, for one served model version.

    Args:
        store: the opened store, or None without a library (every operation: InvalidInput).
        model_id: the served model version.
        map_options: where map fits run and how their transforms are kept.
    """

    def __init__(
        self, store: LibraryStore | None, model_id: str, map_options: MapFitOptions | None = None
    ) -> None:
        self._store = store
        self.model_id = model_id
        self.jobs = AnalysisJobs()
        self.map_options = map_options or MapFitOptions()
        self._worker = FitWorker(self.map_options.memory_mb)  # started by the first map fit
        self.maps = FittedMaps(
            model_id,
            key=self.map_options.transform_key,
            max_bytes=self.map_options.transform_max_bytes,
        )

    def warm_maps_in_background(self) -> None:
        """Load and warm the stored maps' transforms in a daemon thread (start-up), so the
        first placement does not compile them; requests meanwhile wait for the load."""
        if self._store is not None:
            self.maps.warm_in_background(self._store)

    # -- clusters ------------------------------------------------------------------------------

    async def start_clusters(
        self, *, method: str, k: int | str, metadata_filter: MetadataFilter | None
    ) -> Job:
        """Start clustering the (filtered) library's embeddings; returns the queued job.

        Raises:
            InvalidInput: unknown method, k larger than the matching entries, or no entries.
            AnalysisInProgress: another analysis job is running.
        """
        if method not in CLUSTER_METHODS:
            raise InvalidInput(f"method={method!r} is not one of {CLUSTER_METHODS}", field="method")
        count = await self._call(lambda store: store.count(metadata_filter))
        if count == 0:
            raise InvalidInput("no library entries match; nothing to cluster", field="filter")
        if k != "auto" and int(k) > count:
            raise InvalidInput(f"k={k} is more than the {count} matching entries", field="k")
        params = {"method": method, "k": k, "filter": metadata_filter}

        def work(progress: Callable[[float, str], None]) -> dict[str, Any]:
            store = self._require_store()
            vectors = store.vectors(
                "embedding", model_version=self.model_id, metadata_filter=metadata_filter
            )
            result = cluster_result(
                vectors.ids,
                vectors.matrix,
                method=method,
                k=k,
                model_version=self.model_id,
                progress=progress,
            )
            result["filter"] = metadata_filter
            store.save_analysis(_CLUSTERS, self.model_id, result)
            return result

        return self._submit("clusters", params, work)

    async def clusters(self) -> dict[str, Any]:
        """The stored clustering of this model version (labels included).

        Raises:
            NotFound: none stored for the served model version.
        """
        stored = await self._call(lambda store: store.load_analysis(_CLUSTERS))
        if stored is None or stored[0] != self.model_id:
            raise NotFound(
                f"no clusters computed with {self.model_id}; POST /library/clusters first",
                field="clusters",
            )
        return stored[1]

    async def current_clustering(self, field: str = "include_cluster") -> dict[str, Any]:
        """The stored clustering that :meth:`assign` uses: the one computed with the served
        model version. Callers that embed first ask for it before embedding, so a request that
        cannot be answered fails before any inference.

        Args:
            field: the request option that asked for clusters, named by the 409.

        Raises:
            ClustersNotComputed: none stored, or stored for another model version.
            InvalidInput: the server runs without a library.
        """
        stored = await self._call(lambda store: store.load_analysis(_CLUSTERS))
        if stored is None:
            raise ClustersNotComputed(
                f"no clustering of the library is stored; POST /library/clusters to compute "
                f"one with {self.model_id}",
                field=field,
            )
        if stored[0] != self.model_id:
            raise ClustersNotComputed(
                f"the stored clustering was computed with {stored[0]}, not the served "
                f"{self.model_id}; POST /library/clusters to recompute it",
                field=field,
            )
        return stored[1]

    async def assign(
        self, embeddings: np.ndarray, clustering: dict[str, Any] | None = None
    ) -> ClusterAssignment:
        """The cluster of each of ``embeddings`` ``(M, latent_dim)`` (from the served model) in
        the stored clustering, and how strongly it belongs (cosine to the k-means centroid, or
        the vMF posterior). The one place queries, and later cube pixels, are assigned.

        Args:
            embeddings: ``(M, latent_dim)`` query embeddings.
            clustering: :meth:`current_clustering`'s answer, when the caller already has it.

        Raises:
            ClustersNotComputed: no clustering stored for the served model version.
            InvalidInput: embeddings of the wrong width or without direction.
        """
        if clustering is None:
            clustering = await self.current_clustering()
        x = np.asarray(embeddings, dtype=np.float64)
        try:
            if len(x) > 10_000:  # a cube's pixels: keep the loop free
                return await asyncio.to_thread(assignment, x, clustering)
            return assignment(x, clustering)
        except ValueError as exc:
            raise InvalidInput(f"cannot assign to clusters: {exc}", field="embeddings") from None

    # -- maps ----------------------------------------------------------------------------------

    async def start_map(self, *, method: str) -> Job:
        """Start fitting a 2-D map of every entry's embedding; returns the queued job.

        Raises:
            InvalidInput: unknown method or fewer than 5 entries.
            AnalysisInProgress: another analysis job is running.
        """
        if method not in MAP_METHODS:
            raise InvalidInput(f"method={method!r} is not one of {MAP_METHODS}", field="method")
        count = await self._call(lambda store: store.count())
        if count < 5:
            raise InvalidInput(f"a map needs at least 5 library entries; there are {count}")

        options = self.map_options

        def work(progress: Callable[[float, str], None]) -> dict[str, Any]:
            store = self._require_store()
            vectors = store.vectors("embedding", model_version=self.model_id)
            args = (
                vectors.matrix,
                method,
                _MAP_SEED,
                options.transform_key,
                options.transform_max_bytes,
            )
            if options.isolation == "process":
                progress(0.05, "handing the fit to the fit process")
                coordinates, blob, meta = self._worker.run(
                    fit_and_pack, args, progress=progress, cancel=self.jobs.cancelled
                )
            else:
                coordinates, blob, meta = fit_and_pack(*args, progress=progress)
            progress(0.95, "storing coordinates and the fitted transform")
            payload = map_result(
                vectors.ids,
                coordinates,
                method=method,
                model_version=self.model_id,
                seed=_MAP_SEED,
                transform=meta,
            )
            store.save_analysis(f"map:{method}", self.model_id, payload, blob=blob)
            if blob is not None:  # load and warm it here now, not in the first placement
                progress(0.97, "loading the fitted transform to place points")
                try:
                    self.maps.get(store, method, payload)
                except TransformUnavailable as exc:  # the map serves; placing answers why not
                    progress(0.99, f"the fitted transform cannot place points: {exc}")
            return payload

        return self._submit("map", {"method": method}, work)

    async def map_page(
        self, *, method: str, offset: int, limit: int, fields: list[str] | None
    ) -> dict[str, Any]:
        """One page (by id) of map coordinates, cluster labels and metadata (all of it, or only
        ``fields``): ``{"items": [{"id", "x", "y", "cluster", "metadata"}], "count", ...}``.

        Entries added after the fit are placed with the fitted map's stored transform (old
        points do not move) and stored with the map; when that transform cannot be loaded (a
        map stored before transforms were kept, or one refused by :func:`.map_transform.unpack`)
        they answer ``x``/``y`` null until the next fit.

        Raises:
            InvalidInput: unknown method.
            NotFound: no map of this method for the served model version.
        """
        if method not in MAP_METHODS:
            raise InvalidInput(f"method={method!r} is not one of {MAP_METHODS}", field="method")
        return await self._call(lambda store: self._page(store, method, offset, limit, fields))

    async def place(self, *, method: str, embeddings: list[list[float]]) -> dict[str, Any]:
        """Positions of query ``embeddings`` in the stored map, without storing or moving
        anything: ``{"method", "model", "points": [{"x", "y"}]}``.

        Raises:
            InvalidInput: unknown method, or embeddings of the wrong length or without direction.
            NotFound: no map of this method for the served model version.
            MapNotLoaded: the map's fitted transform cannot be loaded (stored before transforms
                were kept, too large, or refused); the message says why. Refit it.
        """
        if method not in MAP_METHODS:
            raise InvalidInput(f"method={method!r} is not one of {MAP_METHODS}", field="method")
        stored = await self._call(lambda store: store.load_analysis(f"map:{method}"))
        if stored is None or stored[0] != self.model_id:
            raise NotFound(
                f"no {method} map computed with {self.model_id}; POST /library/map first",
                field="method",
            )
        meta = stored[1].get("transform")
        dim = meta.get("dim") if isinstance(meta, dict) else None
        lengths = sorted({len(row) for row in embeddings})
        if len(lengths) > 1 or (dim is not None and lengths != [dim]):
            raise InvalidInput(
                f"each embedding needs {dim or 'the same number of'} values (the map's "
                f"latent_dim); got {lengths}",
                field="embeddings",
            )
        x = np.asarray(embeddings, dtype=np.float64)
        zero = np.flatnonzero(~np.any(x != 0, axis=1))
        if zero.size:
            raise InvalidInput(
                f"embedding {int(zero[0])} is all zeros (it has no direction)", field="embeddings"
            )
        try:
            _, fitted = await self._call(lambda store: self.maps.get(store, method, stored[1]))
        except TransformUnavailable as exc:
            raise MapNotLoaded(
                f"the stored {method} map cannot place points: {exc}; POST /library/map again "
                "to refit it",
                field="method",
            ) from None
        placed = await asyncio.to_thread(fitted.transform, x)
        return {
            "method": method,
            "model": self.model_id,
            "points": [{"x": float(px), "y": float(py)} for px, py in placed],
        }

    def _page(
        self,
        store: LibraryStore,
        method: str,
        offset: int,
        limit: int,
        fields: list[str] | None,
    ) -> dict[str, Any]:
        for _ in range(_PAGE_TRIES):
            payload, vectors, stored = self._placed_map(store, method)
            if stored:
                break
        return self._page_of(store, method, payload, vectors, offset, limit, fields)

    def _placed_map(self, store: LibraryStore, method: str) -> tuple[dict[str, Any], Any, bool]:
        """``(payload, vectors, settled)``: the stored map with every entry that has none
        placed by its fitted transform and stored, and the library's embeddings. ``settled``
        is False when the placed points were not stored because another fit replaced the map
        meanwhile (the payload is then the older fit's, consistent in itself)."""
        name = f"map:{method}"
        stored = store.load_analysis(name)
        if stored is None or stored[0] != self.model_id:
            raise NotFound(
                f"no {method} map computed with {self.model_id}; POST /library/map first",
                field="method",
            )
        payload = stored[1]
        vectors = store.vectors("embedding", model_version=self.model_id)
        if all(entry_id in payload["coordinates"] for entry_id in vectors.ids):
            return payload, vectors, True
        try:  # the payload the transform belongs to: a refit may have replaced the one above
            payload, fitted = self.maps.get(store, method, payload)
        except TransformUnavailable:  # they stay unplaced (x, y null) until the next fit
            return payload, vectors, True
        coordinates = payload["coordinates"]
        missing = [i for i, entry_id in enumerate(vectors.ids) if entry_id not in coordinates]
        if not missing:
            return payload, vectors, True
        placed = fitted.transform(vectors.matrix[missing])
        for i, (x, y) in zip(missing, placed, strict=True):
            coordinates[vectors.ids[i]] = [float(x), float(y)]
        # stored only while the map is still this fit: never a stale fit over a refit's
        digest = str(transform_digest(payload))
        settled = store.update_analysis(name, self.model_id, payload, digest=digest)
        return payload, vectors, settled

    def _page_of(
        self,
        store: LibraryStore,
        method: str,
        payload: dict[str, Any],
        vectors: Any,
        offset: int,
        limit: int,
        fields: list[str] | None,
    ) -> dict[str, Any]:
        clusters = store.load_analysis(_CLUSTERS)
        if clusters is None or clusters[0] != self.model_id:
            clusters = None
        page = map_page(
            payload, vectors, None if clusters is None else clusters[1], offset, limit, fields
        )
        return {"method": method, "model": self.model_id, **page}

    # -- jobs ----------------------------------------------------------------------------------

    def job(self, job_id: str) -> dict[str, Any]:
        """A job's state and progress. Raises NotFound for an unknown (or forgotten) id."""
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no analysis job {job_id!r} (only the last 32 are kept)", field="id")
        return job.public()

    def stop(self) -> None:
        """Refuse new jobs, cancel a running map fit and end the fit process."""
        self.jobs.stop()
        self._worker.close()

    # -- helpers -------------------------------------------------------------------------------

    def _submit(self, kind: str, params: dict[str, Any], work: Any) -> Job:
        try:
            return self.jobs.submit(kind, params, work)
        except JobBusy as exc:
            raise AnalysisInProgress(str(exc)) from None

    def _require_store(self) -> LibraryStore:
        return require_store(self._store)

    async def _call(self, work: Callable[[LibraryStore], T]) -> T:
        return await run_on_store(self._store, work)

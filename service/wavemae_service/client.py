"""Python clients for the service (httpx), numpy in and out.

Sync::

    from wavemae_service.client import WaveMAEClient
    with WaveMAEClient("http://127.0.0.1:8000") as client:
        z = client.embed(spectra)                     # (N, latent_dim) float32
        hits = client.similar(spectra, k=5)

Async: :class:`AsyncWaveMAEClient` has the same methods as coroutines. Errors raise
:class:`WaveMAEError` carrying the HTTP status and the service's error ``type``/``field``; so do
answers that are not the service's (a redirect, an HTML page from a proxy). Entry ids are
percent-encoded, so any id the service accepts (``"a?b"``, ``"a#b"``) addresses that entry.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

import httpx
import numpy as np
import orjson

from .client_wire import (
    WaveMAEError,
    auth_headers,
    cube_request,
    embed_request,
    embed_result,
    entry_body,
    entry_path,
    read_json,
    read_npy,
    reconstruct_body,
    reconstruct_result,
    similar_body,
    similar_result,
)

__all__ = ["AsyncWaveMAEClient", "WaveMAEClient", "WaveMAEError"]


async def _chunks(file: BinaryIO, size: int = 1 << 20) -> AsyncIterator[bytes]:
    """An open file as an async body (httpx's async client takes no sync file)."""
    while chunk := file.read(size):
        yield chunk


class WaveMAEClient:
    """Synchronous client.

    Args:
        base_url: e.g. ``"http://127.0.0.1:8000"``.
        api_key: sent as ``Authorization: Bearer``, when the server requires keys.
        timeout: seconds per request.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 30.0):
        self._http = httpx.Client(base_url=base_url, headers=auth_headers(api_key), timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WaveMAEClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def embed(
        self,
        spectra: Any,
        wavelengths: Any = None,
        *,
        binary: bool = False,
        include_cluster: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
        """``(N, L)`` spectra -> ``(N, latent_dim)`` float32. ``binary`` uses .npy both ways.

        ``include_cluster=True`` returns ``(embeddings, clusters)``: ``clusters["labels"]`` and
        ``clusters["scores"]`` per spectrum in the library's stored clustering (see
        :meth:`cluster`); a :class:`WaveMAEError` 409 ``clusters_not_computed`` without one."""
        request = embed_request(spectra, wavelengths, binary, include_cluster)
        response = self._http.post("/embed", **request)
        if binary:
            return read_npy(response)
        return embed_result(read_json(response), include_cluster)

    def embed_cube(
        self,
        cube: Any,
        wavelengths: Any = None,
        *,
        header: str | os.PathLike | None = None,
        unit: str | None = None,
        nan_as_missing: bool = False,
        timeout: float | None = None,
    ) -> np.ndarray:
        """A hyperspectral cube -> ``(rows, cols, latent_dim)`` float32 (``POST /embed/cube``).

        ``cube``: a ``(rows, cols, bands)`` array, a ``.npy`` path, or an ENVI data file path
        with its ``header`` (.hdr) path; files are streamed from disk. ``wavelengths``: one per
        band (default: the header's, else the model's grid). ``timeout``: seconds for this
        request (default: none, a large cube takes a while).
        """
        with contextlib.ExitStack() as files:
            request = cube_request(cube, wavelengths, header, unit, nan_as_missing, files)
            response = self._http.post("/embed/cube", timeout=timeout, **request)
        return read_npy(response)

    def reconstruct(
        self, spectra: Any, wavelengths: Any = None, *, missing: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """-> ``(reconstructions (N, L) float32, NaN outside the model range; rmse (N,))``."""
        body = reconstruct_body(spectra, wavelengths, missing)
        response = self._http.post(
            "/reconstruct", content=body, headers={"Content-Type": "application/json"}
        )
        return reconstruct_result(read_json(response))

    def similar(
        self,
        spectra: Any = None,
        *,
        embeddings: Any = None,
        wavelengths: Any = None,
        k: int = 10,
        space: str = "embedding",
        filter: dict[str, Any] | None = None,  # the API's name for it
        preprocessing: str | None = None,
        window: int | None = None,
        exclude: Any = None,
        scale: str | None = None,
        include_cluster: bool = False,
    ) -> list[list[dict[str, Any]]] | tuple[list[list[dict[str, Any]]], dict[str, Any]]:
        """Per query, ``[{"id", "score", "gap", "metadata"}, ...]`` best first.

        ``space="spectrum"`` scores by Hit Quality Index; ``preprocessing`` (none, snv, deriv1,
        deriv2), ``window``, ``exclude`` (``[(low, high), ...]``) and ``scale`` (hqi, r, r2)
        tune it (server defaults when None). ``include_cluster=True`` returns ``(results,
        clusters)``, each query's cluster as for :meth:`embed`."""
        hqi = {"preprocessing": preprocessing, "window": window, "exclude": exclude}
        hqi["scale"] = scale
        body = similar_body(
            spectra, embeddings, wavelengths, k, space, filter, hqi, include_cluster
        )
        response = self._http.post(
            "/similar", content=body, headers={"Content-Type": "application/json"}
        )
        return similar_result(read_json(response), include_cluster)

    def put(
        self, entry_id: str, spectrum: Any, *, wavelengths: Any = None, metadata: Any = None
    ) -> dict[str, Any]:
        """Store one library entry (admin key)."""
        body = entry_body(spectrum, wavelengths, metadata)
        return read_json(self._http.put(entry_path(entry_id), json=body))

    def put_many(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Store ``[{"id", "spectrum", "wavelengths"?, "metadata"?}, ...]`` in one transaction."""
        body = [
            {"id": e["id"], **entry_body(e["spectrum"], e.get("wavelengths"), e.get("metadata"))}
            for e in entries
        ]
        return read_json(self._http.post("/library", json={"entries": body}))

    def get(self, entry_id: str, *, include_embedding: bool = False) -> dict[str, Any]:
        params = {"include_embedding": "true"} if include_embedding else None
        return read_json(self._http.get(entry_path(entry_id), params=params))

    def delete(self, entry_id: str) -> dict[str, Any]:
        return read_json(self._http.delete(entry_path(entry_id)))

    def list(
        self,
        *,
        offset: int = 0,
        limit: int = 100,
        filter: dict[str, Any] | None = None,  # the API's name for it
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if filter:
            params["filter"] = orjson.dumps(filter).decode()
        return read_json(self._http.get("/library", params=params))

    def reembed(self) -> dict[str, Any]:
        return read_json(self._http.post("/library/reembed"))

    # -- clusters and maps -----------------------------------------------------------------

    def cluster(
        self,
        *,
        method: str = "vmf",
        k: int | str = "auto",
        filter: dict[str, Any] | None = None,  # the API's name for it
        wait: bool = True,
        timeout: float = 600.0,
    ) -> dict[str, Any]:
        """Cluster the library (admin key). With ``wait`` the finished job, else the queued one
        (poll :meth:`job`); the result itself is at :meth:`clusters`."""
        body: dict[str, Any] = {"method": method, "k": k}
        if filter:
            body["filter"] = filter
        job = read_json(self._http.post("/library/clusters", json=body))
        return self.wait_for_job(job["id"], timeout=timeout) if wait else job

    def clusters(self, *, include_labels: bool = False) -> dict[str, Any]:
        """The stored clustering: method, k, criterion, sizes, centroids (and labels)."""
        params = {"include_labels": "true"} if include_labels else None
        return read_json(self._http.get("/library/clusters", params=params))

    def fit_map(self, method: str = "umap", *, wait: bool = True, timeout: float = 600.0) -> dict:
        """Fit a UMAP or t-SNE map of the library (admin key); see :meth:`cluster` for ``wait``."""
        job = read_json(self._http.post("/library/map", json={"method": method}))
        return self.wait_for_job(job["id"], timeout=timeout) if wait else job

    def map(
        self, method: str = "umap", *, offset: int = 0, limit: int = 10_000, fields: Any = None
    ) -> dict[str, Any]:
        """One page: ``{"items": [{"id", "x", "y", "cluster", "metadata"}], "count", ...}``
        by id; ``fields`` limits the metadata to these keys."""
        params: dict[str, Any] = {"method": method, "offset": offset, "limit": limit}
        if fields is not None:
            params["fields"] = ",".join(fields)
        return read_json(self._http.get("/library/map", params=params))

    def job(self, job_id: str) -> dict[str, Any]:
        """A clustering or map job's state, progress and result summary."""
        return read_json(self._http.get(f"/library/jobs/{job_id}"))

    def wait_for_job(self, job_id: str, *, timeout: float = 600.0) -> dict[str, Any]:
        """Poll :meth:`job` until done; raises RuntimeError when it failed, TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] == "done":
                return job
            if job["state"] == "failed":
                raise RuntimeError(f"job {job_id} failed: {job['error']}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout} s")
            time.sleep(0.2)

    def model(self) -> dict[str, Any]:
        return read_json(self._http.get("/model"))

    def ready(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False


class AsyncWaveMAEClient:
    """Asynchronous client with the same methods as :class:`WaveMAEClient` (awaitable)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        limits: httpx.Limits | None = None,
    ):
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=auth_headers(api_key),
            timeout=timeout,
            limits=limits or httpx.Limits(max_connections=256, max_keepalive_connections=256),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncWaveMAEClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def embed(
        self,
        spectra: Any,
        wavelengths: Any = None,
        *,
        binary: bool = False,
        include_cluster: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
        request = embed_request(spectra, wavelengths, binary, include_cluster)
        response = await self._http.post("/embed", **request)
        if binary:
            return read_npy(response)
        return embed_result(read_json(response), include_cluster)

    async def embed_cube(
        self,
        cube: Any,
        wavelengths: Any = None,
        *,
        header: str | os.PathLike | None = None,
        unit: str | None = None,
        nan_as_missing: bool = False,
        timeout: float | None = None,
    ) -> np.ndarray:
        """:meth:`WaveMAEClient.embed_cube`; a ``.npy`` file is streamed in 1 MiB chunks."""
        with contextlib.ExitStack() as files:
            request = cube_request(cube, wavelengths, header, unit, nan_as_missing, files)
            if not isinstance(request.get("content", b""), bytes):
                request["content"] = _chunks(request["content"])
            response = await self._http.post("/embed/cube", timeout=timeout, **request)
        return read_npy(response)

    async def reconstruct(
        self, spectra: Any, wavelengths: Any = None, *, missing: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        body = reconstruct_body(spectra, wavelengths, missing)
        response = await self._http.post(
            "/reconstruct", content=body, headers={"Content-Type": "application/json"}
        )
        return reconstruct_result(read_json(response))

    async def similar(
        self,
        spectra: Any = None,
        *,
        embeddings: Any = None,
        wavelengths: Any = None,
        k: int = 10,
        space: str = "embedding",
        filter: dict[str, Any] | None = None,  # the API's name for it
        preprocessing: str | None = None,
        window: int | None = None,
        exclude: Any = None,
        scale: str | None = None,
        include_cluster: bool = False,
    ) -> list[list[dict[str, Any]]] | tuple[list[list[dict[str, Any]]], dict[str, Any]]:
        hqi = {"preprocessing": preprocessing, "window": window, "exclude": exclude}
        hqi["scale"] = scale
        body = similar_body(
            spectra, embeddings, wavelengths, k, space, filter, hqi, include_cluster
        )
        response = await self._http.post(
            "/similar", content=body, headers={"Content-Type": "application/json"}
        )
        return similar_result(read_json(response), include_cluster)

    async def put(
        self, entry_id: str, spectrum: Any, *, wavelengths: Any = None, metadata: Any = None
    ) -> dict[str, Any]:
        body = entry_body(spectrum, wavelengths, metadata)
        return read_json(await self._http.put(entry_path(entry_id), json=body))

    async def get(self, entry_id: str, *, include_embedding: bool = False) -> dict[str, Any]:
        params = {"include_embedding": "true"} if include_embedding else None
        return read_json(await self._http.get(entry_path(entry_id), params=params))

    async def delete(self, entry_id: str) -> dict[str, Any]:
        return read_json(await self._http.delete(entry_path(entry_id)))

    async def cluster(
        self, *, method: str = "vmf", k: int | str = "auto", filter: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Start clustering (admin key); returns the queued job (poll :meth:`job`)."""
        body: dict[str, Any] = {"method": method, "k": k, **({"filter": filter} if filter else {})}
        return read_json(await self._http.post("/library/clusters", json=body))

    async def map(
        self, method: str = "umap", *, offset: int = 0, limit: int = 10_000, fields: Any = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"method": method, "offset": offset, "limit": limit}
        if fields is not None:
            params["fields"] = ",".join(fields)
        return read_json(await self._http.get("/library/map", params=params))

    async def job(self, job_id: str) -> dict[str, Any]:
        return read_json(await self._http.get(f"/library/jobs/{job_id}"))

    async def model(self) -> dict[str, Any]:
        return read_json(await self._http.get("/model"))

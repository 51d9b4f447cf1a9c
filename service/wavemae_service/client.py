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
import io
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import orjson

__all__ = ["AsyncWaveMAEClient", "WaveMAEClient", "WaveMAEError"]

NPY = "application/x-npy"


class WaveMAEError(Exception):
    """An error answer: ``status`` (HTTP), ``type``, ``message``, ``field``, ``retry_after``.

    Answers that are not the service's have ``type`` ``"redirect"`` (a 3xx: the client does not
    follow redirects, fix ``base_url``) or ``"unexpected_response"`` (not JSON, e.g. a proxy's
    HTML page).
    """

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        kind = response.headers.get("content-type", "no Content-Type")
        if 300 <= self.status < 400:
            location = response.headers.get("location", "nowhere")
            error = {
                "type": "redirect",
                "message": f"the server redirects {response.request.url.path} to {location}; "
                "the client does not follow redirects: check base_url and the entry id",
            }
        else:
            try:
                error = orjson.loads(response.content)["error"]
            except Exception:
                error = {
                    "type": "http_error" if self.status >= 400 else "unexpected_response",
                    "message": f"the server answered {kind}, not the service's JSON: "
                    + response.text[:200],
                }
        self.type = error.get("type")
        self.message = error.get("message")
        self.field = error.get("field")
        retry = response.headers.get("retry-after")
        self.retry_after = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
        super().__init__(f"{self.status} {self.type}: {self.message}")


def _spectra(values: Any) -> list[list[float]]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[None]
    return array.tolist()


def _npy_bytes(values: Any) -> bytes:
    array = np.asarray(values, dtype=np.float32)
    if array.ndim == 1:
        array = array[None]
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _entry_path(entry_id: str) -> str:
    return "/library/" + quote(entry_id, safe="")


def _json(response: httpx.Response) -> Any:
    if not 200 <= response.status_code < 300:
        raise WaveMAEError(response)
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise WaveMAEError(response) from None


def _npy(response: httpx.Response) -> np.ndarray:
    if not 200 <= response.status_code < 300 or response.headers.get("content-type") != NPY:
        raise WaveMAEError(response)
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def _embed_request(
    values: Any, wavelengths: Any, binary: bool, include_cluster: bool = False
) -> dict[str, Any]:
    if binary:
        if wavelengths is not None:
            raise ValueError("binary=True sends spectra on the model's grid; drop wavelengths")
        if include_cluster:
            raise ValueError("include_cluster needs a JSON answer; drop binary=True")
        return {"content": _npy_bytes(values), "headers": {"Content-Type": NPY, "Accept": NPY}}
    body: dict[str, Any] = {"spectra": _spectra(values)}
    if wavelengths is not None:
        body["wavelengths"] = np.asarray(wavelengths, dtype=np.float64).tolist()
    if include_cluster:
        body["include_cluster"] = True
    return {"content": orjson.dumps(body), "headers": {"Content-Type": "application/json"}}


def _embed_result(
    data: dict[str, Any], include_cluster: bool
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    embeddings = np.asarray(data["embeddings"], dtype=np.float32)
    return (embeddings, data["clusters"]) if include_cluster else embeddings


def _similar_result(
    data: dict[str, Any], include_cluster: bool
) -> list[list[dict[str, Any]]] | tuple[list[list[dict[str, Any]]], dict[str, Any]]:
    return (data["results"], data["clusters"]) if include_cluster else data["results"]


def _reconstruct_body(values: Any, wavelengths: Any, missing: Any) -> bytes:
    body: dict[str, Any] = {"spectra": _spectra(values)}
    if wavelengths is not None:
        body["wavelengths"] = np.asarray(wavelengths, dtype=np.float64).tolist()
    if missing is not None:
        body["missing"] = missing
    return orjson.dumps(body)


def _similar_body(
    spectra: Any,
    embeddings: Any,
    wavelengths: Any,
    k: int,
    space: str,
    metadata_filter: Any,
    hqi: dict[str, Any] | None = None,
    include_cluster: bool = False,
) -> bytes:
    body: dict[str, Any] = {"k": k, "space": space}
    if include_cluster:
        body["include_cluster"] = True
    for key, value in (hqi or {}).items():
        if value is not None:
            body[key] = [list(r) for r in value] if key == "exclude" else value
    if embeddings is not None:
        body["embeddings"] = _spectra(embeddings)
    else:
        body["spectra"] = _spectra(spectra)
    if wavelengths is not None:
        body["wavelengths"] = np.asarray(wavelengths, dtype=np.float64).tolist()
    if metadata_filter:
        body["filter"] = metadata_filter
    return orjson.dumps(body)


def _entry_body(spectrum: Any, wavelengths: Any, metadata: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "spectrum": np.asarray(spectrum, dtype=np.float64).reshape(-1).tolist(),
        "metadata": metadata or {},
    }
    if wavelengths is not None:
        body["wavelengths"] = np.asarray(wavelengths, dtype=np.float64).tolist()
    return body


def _reconstruct_result(data: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    recon = np.array(
        [[np.nan if v is None else v for v in row] for row in data["reconstructions"]],
        dtype=np.float32,
    )
    return recon, np.asarray(data["rmse"], dtype=np.float64)


class WaveMAEClient:
    """Synchronous client.

    Args:
        base_url: e.g. ``"http://127.0.0.1:8000"``.
        api_key: sent as ``Authorization: Bearer``, when the server requires keys.
        timeout: seconds per request.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 30.0):
        self._http = httpx.Client(base_url=base_url, headers=_headers(api_key), timeout=timeout)

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
        request = _embed_request(spectra, wavelengths, binary, include_cluster)
        response = self._http.post("/embed", **request)
        if binary:
            return _npy(response)
        return _embed_result(_json(response), include_cluster)

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
        params = {"nan_as_missing": "true" if nan_as_missing else "false"}
        if wavelengths is not None:
            params["wavelengths"] = ",".join(repr(float(w)) for w in np.ravel(wavelengths))
        if unit is not None:
            params["unit"] = unit
        with contextlib.ExitStack() as files:
            if not isinstance(cube, (str, os.PathLike)):
                buffer = io.BytesIO()
                np.save(buffer, np.asarray(cube), allow_pickle=False)
                body: dict[str, Any] = {"content": buffer.getvalue()}
            elif header is None:
                body = {"content": files.enter_context(open(cube, "rb"))}
            else:
                body = {
                    "files": {
                        "cube": (Path(cube).name, files.enter_context(open(cube, "rb"))),
                        "header": (Path(header).name, files.enter_context(open(header, "rb"))),
                    }
                }
            if "content" in body:
                body["headers"] = {"Content-Type": NPY}
            response = self._http.post("/embed/cube", params=params, timeout=timeout, **body)
        return _npy(response)

    def reconstruct(
        self, spectra: Any, wavelengths: Any = None, *, missing: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """-> ``(reconstructions (N, L) float32, NaN outside the model range; rmse (N,))``."""
        body = _reconstruct_body(spectra, wavelengths, missing)
        response = self._http.post(
            "/reconstruct", content=body, headers={"Content-Type": "application/json"}
        )
        return _reconstruct_result(_json(response))

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
        body = _similar_body(
            spectra, embeddings, wavelengths, k, space, filter, hqi, include_cluster
        )
        response = self._http.post(
            "/similar", content=body, headers={"Content-Type": "application/json"}
        )
        return _similar_result(_json(response), include_cluster)

    def put(
        self, entry_id: str, spectrum: Any, *, wavelengths: Any = None, metadata: Any = None
    ) -> dict[str, Any]:
        """Store one library entry (admin key)."""
        body = _entry_body(spectrum, wavelengths, metadata)
        return _json(self._http.put(_entry_path(entry_id), json=body))

    def put_many(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Store ``[{"id", "spectrum", "wavelengths"?, "metadata"?}, ...]`` in one transaction."""
        body = [
            {"id": e["id"], **_entry_body(e["spectrum"], e.get("wavelengths"), e.get("metadata"))}
            for e in entries
        ]
        return _json(self._http.post("/library", json={"entries": body}))

    def get(self, entry_id: str, *, include_embedding: bool = False) -> dict[str, Any]:
        params = {"include_embedding": "true"} if include_embedding else None
        return _json(self._http.get(_entry_path(entry_id), params=params))

    def delete(self, entry_id: str) -> dict[str, Any]:
        return _json(self._http.delete(_entry_path(entry_id)))

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
        return _json(self._http.get("/library", params=params))

    def reembed(self) -> dict[str, Any]:
        return _json(self._http.post("/library/reembed"))

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
        job = _json(self._http.post("/library/clusters", json=body))
        return self.wait_for_job(job["id"], timeout=timeout) if wait else job

    def clusters(self, *, include_labels: bool = False) -> dict[str, Any]:
        """The stored clustering: method, k, criterion, sizes, centroids (and labels)."""
        params = {"include_labels": "true"} if include_labels else None
        return _json(self._http.get("/library/clusters", params=params))

    def fit_map(self, method: str = "umap", *, wait: bool = True, timeout: float = 600.0) -> dict:
        """Fit a UMAP or t-SNE map of the library (admin key); see :meth:`cluster` for ``wait``."""
        job = _json(self._http.post("/library/map", json={"method": method}))
        return self.wait_for_job(job["id"], timeout=timeout) if wait else job

    def map(
        self, method: str = "umap", *, offset: int = 0, limit: int = 10_000, fields: Any = None
    ) -> dict[str, Any]:
        """One page: ``{"items": [{"id", "x", "y", "cluster", "metadata"}], "count", ...}``
        by id; ``fields`` limits the metadata to these keys."""
        params: dict[str, Any] = {"method": method, "offset": offset, "limit": limit}
        if fields is not None:
            params["fields"] = ",".join(fields)
        return _json(self._http.get("/library/map", params=params))

    def job(self, job_id: str) -> dict[str, Any]:
        """A clustering or map job's state, progress and result summary."""
        return _json(self._http.get(f"/library/jobs/{job_id}"))

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
        return _json(self._http.get("/model"))

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
            headers=_headers(api_key),
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
        request = _embed_request(spectra, wavelengths, binary, include_cluster)
        response = await self._http.post("/embed", **request)
        if binary:
            return _npy(response)
        return _embed_result(_json(response), include_cluster)

    async def reconstruct(
        self, spectra: Any, wavelengths: Any = None, *, missing: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        body = _reconstruct_body(spectra, wavelengths, missing)
        response = await self._http.post(
            "/reconstruct", content=body, headers={"Content-Type": "application/json"}
        )
        return _reconstruct_result(_json(response))

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
        body = _similar_body(
            spectra, embeddings, wavelengths, k, space, filter, hqi, include_cluster
        )
        response = await self._http.post(
            "/similar", content=body, headers={"Content-Type": "application/json"}
        )
        return _similar_result(_json(response), include_cluster)

    async def put(
        self, entry_id: str, spectrum: Any, *, wavelengths: Any = None, metadata: Any = None
    ) -> dict[str, Any]:
        body = _entry_body(spectrum, wavelengths, metadata)
        return _json(await self._http.put(_entry_path(entry_id), json=body))

    async def get(self, entry_id: str, *, include_embedding: bool = False) -> dict[str, Any]:
        params = {"include_embedding": "true"} if include_embedding else None
        return _json(await self._http.get(_entry_path(entry_id), params=params))

    async def delete(self, entry_id: str) -> dict[str, Any]:
        return _json(await self._http.delete(_entry_path(entry_id)))

    async def cluster(
        self, *, method: str = "vmf", k: int | str = "auto", filter: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Start clustering (admin key); returns the queued job (poll :meth:`job`)."""
        body: dict[str, Any] = {"method": method, "k": k, **({"filter": filter} if filter else {})}
        return _json(await self._http.post("/library/clusters", json=body))

    async def map(
        self, method: str = "umap", *, offset: int = 0, limit: int = 10_000, fields: Any = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"method": method, "offset": offset, "limit": limit}
        if fields is not None:
            params["fields"] = ",".join(fields)
        return _json(await self._http.get("/library/map", params=params))

    async def job(self, job_id: str) -> dict[str, Any]:
        return _json(await self._http.get(f"/library/jobs/{job_id}"))

    async def model(self) -> dict[str, Any]:
        return _json(await self._http.get("/model"))

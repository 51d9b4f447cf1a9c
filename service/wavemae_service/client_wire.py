"""What the clients of :mod:`wavemae_service.client` send and how they read the answers:
request bodies and the error type, shared by the sync and the async client."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import orjson

__all__ = [
    "NPY",
    "WaveMAEError",
    "as_rows",
    "auth_headers",
    "cube_request",
    "embed_request",
    "embed_result",
    "entry_body",
    "entry_path",
    "npy_bytes",
    "read_json",
    "read_npy",
    "reconstruct_body",
    "reconstruct_result",
    "similar_body",
    "similar_result",
]

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


def as_rows(values: Any) -> list[list[float]]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[None]
    return array.tolist()


def npy_bytes(values: Any) -> bytes:
    array = np.asarray(values, dtype=np.float32)
    if array.ndim == 1:
        array = array[None]
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def entry_path(entry_id: str) -> str:
    return "/library/" + quote(entry_id, safe="")


def read_json(response: httpx.Response) -> Any:
    if not 200 <= response.status_code < 300:
        raise WaveMAEError(response)
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise WaveMAEError(response) from None


def read_npy(response: httpx.Response) -> np.ndarray:
    if not 200 <= response.status_code < 300 or response.headers.get("content-type") != NPY:
        raise WaveMAEError(response)
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def embed_request(
    values: Any, wavelengths: Any, binary: bool, include_cluster: bool = False
) -> dict[str, Any]:
    if binary:
        if wavelengths is not None:
            raise ValueError("binary=True sends spectra on the model's grid; drop wavelengths")
        if include_cluster:
            raise ValueError("include_cluster needs a JSON answer; drop binary=True")
        return {"content": npy_bytes(values), "headers": {"Content-Type": NPY, "Accept": NPY}}
    body: dict[str, Any] = {"spectra": as_rows(values)}
    if wavelengths is not None:
        body["wavelengths"] = np.asarray(wavelengths, dtype=np.float64).tolist()
    if include_cluster:
        body["include_cluster"] = True
    return {"content": orjson.dumps(body), "headers": {"Content-Type": "application/json"}}


def embed_result(
    data: dict[str, Any], include_cluster: bool
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    embeddings = np.asarray(data["embeddings"], dtype=np.float32)
    return (embeddings, data["clusters"]) if include_cluster else embeddings


def similar_result(
    data: dict[str, Any], include_cluster: bool
) -> list[list[dict[str, Any]]] | tuple[list[list[dict[str, Any]]], dict[str, Any]]:
    return (data["results"], data["clusters"]) if include_cluster else data["results"]


def reconstruct_body(values: Any, wavelengths: Any, missing: Any) -> bytes:
    body: dict[str, Any] = {"spectra": as_rows(values)}
    if wavelengths is not None:
        body["wavelengths"] = np.asarray(wavelengths, dtype=np.float64).tolist()
    if missing is not None:
        body["missing"] = missing
    return orjson.dumps(body)


def similar_body(
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
        body["embeddings"] = as_rows(embeddings)
    else:
        body["spectra"] = as_rows(spectra)
    if wavelengths is not None:
        body["wavelengths"] = np.asarray(wavelengths, dtype=np.float64).tolist()
    if metadata_filter:
        body["filter"] = metadata_filter
    return orjson.dumps(body)


def entry_body(spectrum: Any, wavelengths: Any, metadata: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "spectrum": np.asarray(spectrum, dtype=np.float64).reshape(-1).tolist(),
        "metadata": metadata or {},
    }
    if wavelengths is not None:
        body["wavelengths"] = np.asarray(wavelengths, dtype=np.float64).tolist()
    return body


def reconstruct_result(data: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    recon = np.array(
        [[np.nan if v is None else v for v in row] for row in data["reconstructions"]],
        dtype=np.float32,
    )
    return recon, np.asarray(data["rmse"], dtype=np.float64)


def cube_request(
    cube: Any,
    wavelengths: Any,
    header: str | os.PathLike | None,
    unit: str | None,
    nan_as_missing: bool,
    files: contextlib.ExitStack,
) -> dict[str, Any]:
    """The ``POST /embed/cube`` keyword arguments for httpx: the query and either the .npy
    body (an array's bytes, or the open file) or the ENVI cube and header as multipart; files
    are opened on ``files`` and closed with it."""
    params = {"nan_as_missing": "true" if nan_as_missing else "false"}
    if wavelengths is not None:
        params["wavelengths"] = ",".join(repr(float(w)) for w in np.ravel(wavelengths))
    if unit is not None:
        params["unit"] = unit
    if not isinstance(cube, (str, os.PathLike)):
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(cube), allow_pickle=False)
        return {"params": params, "content": buffer.getvalue(), "headers": {"Content-Type": NPY}}
    if header is None:
        return {
            "params": params,
            "content": files.enter_context(open(cube, "rb")),
            "headers": {"Content-Type": NPY},
        }
    return {
        "params": params,
        "files": {
            "cube": (Path(cube).name, files.enter_context(open(cube, "rb"))),
            "header": (Path(header).name, files.enter_context(open(header, "rb"))),
        },
    }

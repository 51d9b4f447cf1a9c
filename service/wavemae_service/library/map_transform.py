"""The fitted transform of a stored map, kept with it in the library so any process can place
new points (after a restart, or on another replica sharing a PostgreSQL library).

Format, chosen deliberately: both umap-learn and openTSNE document pickling as the way to keep
a fitted model (``umap.UMAP`` and ``openTSNE.TSNEEmbedding`` pickle with their nearest-neighbour
search indexes; neither has another serialisation), and the transform needs those internals:
the training rows, the kNN index, the fitted layout and its parameters. So the blob is a
protocol-5 pickle of the whole :class:`wavemae.maps.SpectralMap`, zlib-compressed. Measured for
10,000 64-D entries: UMAP 11.0 MiB pickled, 8.4 MiB compressed (the training rows, the kNN graph
and pynndescent's search index); t-SNE 45.2 MiB, 29.2 MiB compressed (its affinity matrix and
Annoy index); about linear in the entries. Bounded by ``map_transform_max_mb`` (a larger
transform is not stored: the map still serves its coordinates, ``place`` answers 409).

Trust assumption: unpickling runs code named in the data, so **whoever can write the library
database can run code in every server that places points on a map from it**. The library
database is trusted like the model directory. Two checks narrow this:

- the payload stores the blob's digest, and a blob is unpickled only when it matches (a
  corrupted blob, or one from another fit, is refused: ``map_not_loaded``);
- with ``WAVEMAE_MAP_TRANSFORM_KEY`` set (the same secret on every replica, never in the
  database) the digest is an HMAC-SHA256 under that key, so someone who can write the database
  but cannot read the servers' settings cannot forge a blob that will be unpickled. Without a
  key the digest is a plain SHA-256 (integrity only).

A blob is also refused, before unpickling, when it is larger than the bound, when its format is
unknown, or when it was written by another version of the fitting package or of Python (pickles
of numba-compiled models are not promised to load across versions).
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import platform
import zlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

__all__ = ["FORMAT", "TransformUnavailable", "fit_and_pack", "pack", "unpack"]

#: The blob format this module writes and reads.
FORMAT = "pickle-5+zlib"
_PACKAGES = {"umap": "umap-learn", "tsne": "openTSNE"}


class TransformUnavailable(RuntimeError):
    """The stored transform cannot be used here; the message says why."""


def _package(method: str) -> dict[str, str]:
    name = _PACKAGES[method]
    try:
        return {"package": name, "package_version": version(name)}
    except PackageNotFoundError:
        return {"package": name, "package_version": "not installed"}


def _digest(blob: bytes, key: str) -> str:
    if key:
        return "hmac-sha256:" + hmac.new(key.encode(), blob, hashlib.sha256).hexdigest()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def fit_and_pack(
    matrix: np.ndarray, method: str, seed: int, key: str, max_bytes: int, *, progress: Any
) -> tuple[np.ndarray, bytes | None, dict[str, Any]]:
    """Fit a map of ``matrix`` ``(N, D)`` and pack its transform (runs in the fit process).

    Returns:
        ``(coordinates (N, 2), blob or None, meta)``: ``meta`` goes into the stored map's
        payload; ``blob`` is None (and ``meta["stored"]`` False with the reason) when the
        packed transform is larger than ``max_bytes``.
    """
    from wavemae.maps import fit_map

    progress(0.1, f"fitting {method} on {len(matrix)} entries")
    fitted = fit_map(
        matrix, method, seed=seed, progress=lambda f, stage: progress(0.1 + 0.75 * f, stage)
    )
    progress(0.85, "packing the fitted transform")
    blob, meta = pack(fitted, method, int(matrix.shape[1]), key=key, max_bytes=max_bytes)
    return fitted.coordinates, blob, meta


def pack(
    fitted: Any, method: str, dim: int, *, key: str, max_bytes: int
) -> tuple[bytes | None, dict[str, Any]]:
    """``(blob, meta)`` of a fitted map: the compressed pickle and its description (format,
    fitting package and Python versions, input ``dim``, size, digest). ``blob`` is None and
    ``meta["stored"]`` False, with the reason, when it is larger than ``max_bytes``."""
    blob = zlib.compress(pickle.dumps(fitted, protocol=5))
    meta: dict[str, Any] = {
        "format": FORMAT,
        "method": method,
        **_package(method),
        "python": platform.python_version(),
        "dim": dim,
        "bytes": len(blob),
    }
    if len(blob) > max_bytes:
        meta.update(
            stored=False,
            reason=f"its fitted transform is {len(blob) / 2**20:.1f} MiB, more than "
            f"map_transform_max_mb={max_bytes / 2**20:.0f}",
        )
        return None, meta
    meta.update(stored=True, digest=_digest(blob, key))
    return blob, meta


def unpack(blob: bytes | None, meta: dict[str, Any] | None, *, key: str, max_bytes: int) -> Any:
    """The :class:`wavemae.maps.SpectralMap` of a stored map, after every check above.

    Raises:
        TransformUnavailable: with the reason (none stored, too large, digest mismatch or
            unverifiable, other package or Python version, or it fails to load).
    """
    if meta is None:
        raise TransformUnavailable("it was stored before fitted transforms were kept with maps")
    if not meta.get("stored"):
        raise TransformUnavailable(meta.get("reason", "its fitted transform was not stored"))
    if meta.get("format") != FORMAT:
        raise TransformUnavailable(f"its transform format {meta.get('format')!r} is not {FORMAT}")
    if blob is None:
        raise TransformUnavailable("its fitted transform is missing from the library")
    if len(blob) > max_bytes:
        raise TransformUnavailable(
            f"its transform is {len(blob) / 2**20:.1f} MiB, more than map_transform_max_mb"
        )
    stored_digest = str(meta.get("digest", ""))
    if key and not stored_digest.startswith("hmac-sha256:"):
        raise TransformUnavailable("its transform is not signed, and this server requires it")
    if not key and stored_digest.startswith("hmac-sha256:"):
        raise TransformUnavailable(
            "its transform is signed, and this server has no WAVEMAE_MAP_TRANSFORM_KEY"
        )
    if not hmac.compare_digest(stored_digest, _digest(blob, key)):
        raise TransformUnavailable(
            "its transform does not match the map's digest (another fit, a changed key, or a "
            "corrupted blob)"
        )
    method = meta.get("method")
    if method not in _PACKAGES:
        raise TransformUnavailable(f"its transform is of an unknown method {method!r}")
    here = {**_package(method), "python": platform.python_version()}
    for field in ("package_version", "python"):
        if meta.get(field) != here[field]:
            raise TransformUnavailable(
                f"it was fitted with {meta.get('package')} {meta.get('package_version')} on "
                f"Python {meta.get('python')}; this server has {here['package_version']} on "
                f"Python {here['python']}"
            )
    try:
        # unpickles: trusted database, digest verified above (module docstring)
        return pickle.loads(zlib.decompress(blob))
    except Exception as exc:
        raise TransformUnavailable(f"its transform failed to load ({type(exc).__name__})") from exc

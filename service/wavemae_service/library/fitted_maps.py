"""The fitted transforms of the library's stored maps, as one serving process holds them.

Loading a map's transform means: read the stored map and its transform **in one statement**
(:meth:`.base.LibraryStore.load_analysis_with_blob`), so a refit that lands between two reads
can never pair one fit's payload with another fit's transform; verify and unpickle it
(:func:`.map_transform.unpack`); and **warm it up**: place one dummy point. The first
placement in a process makes numba compile UMAP's transform kernels, 10-18 s of holding the GIL
on the development machine (a dashboard once showed "drawn in 18301 ms"), and umap-learn marks
almost none of its kernels for numba's on-disk cache, so only running them moves that cost.

:meth:`FittedMaps.warm_in_background` loads (and warms) every stored map of the served model in
a daemon thread: at start-up, and after a fit finished here. A request that needs a map while
it loads waits for that load (one per method, under its lock) and then places with it: it gets
the right answer, never an error for the warm-up. Loaded transforms are kept per method, keyed
by the stored fit's digest, so a refit (here or by another replica) is loaded again, never
answered from the old one.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from .base import LibraryStore
from .map_transform import TransformUnavailable, unpack

__all__ = ["MAP_METHODS", "FittedMaps", "transform_digest"]

log = logging.getLogger("wavemae_service.library")

MAP_METHODS = ("umap", "tsne")


def transform_digest(payload: dict[str, Any]) -> str | None:
    """The digest of a stored map's fitted transform (it names the fit), or None."""
    meta = payload.get("transform")
    digest = meta.get("digest") if isinstance(meta, dict) else None
    return digest if isinstance(digest, str) else None


class FittedMaps:
    """Loaded (and warmed) fitted transforms of the stored maps of one model version.

    Args:
        model_id: the served model version; maps of another are not loaded.
        key: ``map_transform_key`` (HMAC key of stored transforms; "" = plain SHA-256).
        max_bytes: the largest stored transform that is loaded.
    """

    def __init__(self, model_id: str, *, key: str, max_bytes: int) -> None:
        self.model_id = model_id
        self._key = key
        self._max_bytes = max_bytes
        self._locks = {method: threading.Lock() for method in MAP_METHODS}
        self._loaded: dict[str, tuple[str, Any]] = {}  # method -> (digest, SpectralMap)
        self._states: dict[str, str] = {}
        self._warming = threading.Lock()  # one background warm-up at a time

    def get(
        self, store: LibraryStore, method: str, payload: dict[str, Any]
    ) -> tuple[dict[str, Any], Any]:
        """``(payload, fitted)``: the stored map's fitted ``wavemae.maps.SpectralMap``, from
        memory when it is the fit ``payload`` describes, else loaded (and warmed) from the
        store. The payload answered is the one the transform belongs to: ``payload`` itself,
        or the stored map read with the transform when a refit replaced ``payload`` meanwhile.

        Raises:
            TransformUnavailable: it cannot be loaded; the message says why.
        """
        digest = transform_digest(payload)
        with self._locks[method]:  # one load per fit, however many requests wait for it
            cached = self._loaded.get(method)
            if digest is not None and cached is not None and cached[0] == digest:
                return payload, cached[1]
            return self._load(store, method)

    def states(self) -> dict[str, str]:
        """Per method whose stored map was looked at here: ``loading``, ``ready`` or
        ``unavailable: <why>`` (what /readyz shows)."""
        return dict(self._states)

    def warm(self, store: LibraryStore) -> None:
        """Load and warm every stored map of the served model that is not loaded yet
        (blocking; failures are logged, and requests then answer them)."""
        with self._warming:
            for method in MAP_METHODS:
                try:
                    stored = store.load_analysis(f"map:{method}")
                    if stored is None or stored[0] != self.model_id:
                        continue
                    self.get(store, method, stored[1])
                except TransformUnavailable as exc:
                    log.warning("the stored %s map cannot place points: %s", method, exc)
                except Exception:  # a library outage: requests report it themselves
                    log.exception("loading the stored %s map failed", method)

    def warm_in_background(self, store: LibraryStore) -> threading.Thread:
        """:meth:`warm` in a daemon thread (it never delays start-up or shutdown)."""
        thread = threading.Thread(target=self.warm, args=(store,), name="map-warm-up", daemon=True)
        thread.start()
        return thread

    def _load(self, store: LibraryStore, method: str) -> tuple[dict[str, Any], Any]:
        self._states[method] = "loading"
        try:
            row = store.load_analysis_with_blob(f"map:{method}")
            if row is None or row[0] != self.model_id:
                raise TransformUnavailable(
                    f"no {method} map computed with {self.model_id} is stored any more"
                )
            _, payload, blob = row
            meta = payload.get("transform")
            fitted = unpack(blob, meta, key=self._key, max_bytes=self._max_bytes)
            _warm_up(fitted, meta)
        except TransformUnavailable as exc:
            self._states[method] = f"unavailable: {exc}"
            raise
        except BaseException:
            self._states.pop(method, None)
            raise
        self._loaded[method] = (str(transform_digest(payload)), fitted)
        self._states[method] = "ready"
        return payload, fitted


def _warm_up(fitted: Any, meta: dict[str, Any]) -> None:
    """Place one dummy point, so the kernels a placement runs are compiled now.

    Raises:
        TransformUnavailable: the transform fails on it (it would fail every placement).
    """
    try:
        fitted.transform(np.ones((1, int(meta["dim"]))))
    except Exception as exc:
        raise TransformUnavailable(
            f"its transform fails to place a point ({type(exc).__name__}: {exc})"
        ) from exc

"""2-D maps of embeddings with cosine geometry: UMAP (``umap-learn``) and t-SNE (``openTSNE``).

The seed names both, metric cosine. :func:`fit_map` fits one with a fixed seed and returns a
:class:`SpectralMap` holding the coordinates of the fitted rows and a :meth:`~SpectralMap.transform`
that places new rows into the same map without moving the old ones (UMAP's and openTSNE's own
out-of-sample transforms), so a map stays stable while a library grows.

Neither package imports torch; UMAP compiles with numba on first use (a few seconds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from wavemae.cluster import unit_rows

__all__ = ["MAP_METHODS", "SpectralMap", "fit_map"]

#: The map methods :func:`fit_map` knows.
MAP_METHODS = ("umap", "tsne")
_MIN_POINTS = 5


@dataclass
class SpectralMap:
    """A fitted 2-D map.

    Attributes:
        method: ``"umap"`` or ``"tsne"``.
        coordinates: ``(N, 2)`` float64 positions of the fitted rows, in their order.
        seed: the seed it was fitted with.
        model: the fitted ``umap.UMAP`` or ``openTSNE.TSNEEmbedding`` (picklable).
    """

    method: str
    coordinates: np.ndarray
    seed: int
    model: Any

    def transform(self, x: Any) -> np.ndarray:
        """``(M, 2)`` positions of new rows ``x`` ``(M, D)`` in this map (old ones unmoved).

        Deterministic for a given map and ``x``.
        """
        x = unit_rows(x)
        if self.method == "umap":
            return np.asarray(self.model.transform(x), dtype=np.float64)
        return np.asarray(
            self.model.prepare_partial(x, initialization="median", k=min(25, len(self.coordinates)))
            .optimize(n_iter=250, learning_rate=0.1, momentum=0.8)
            .view(np.ndarray),
            dtype=np.float64,
        )


def fit_map(
    x: Any,
    method: str = "umap",
    *,
    seed: int = 0,
    n_neighbors: int = 15,
    perplexity: float = 30.0,
    progress: Callable[[float, str], None] | None = None,
) -> SpectralMap:
    """Fit a 2-D map of ``x`` ``(N, D)`` with cosine distances.

    Args:
        x: rows (scaled to unit length here); N >= 5.
        method: ``"umap"`` or ``"tsne"``.
        seed: fixes the initialisation and the optimisation (UMAP then runs single-threaded).
        n_neighbors: UMAP's neighbourhood size (clipped to N - 1).
        perplexity: t-SNE's perplexity (clipped to (N - 1) / 3).
        progress: called with ``(fraction 0-1, stage)`` as the fit advances (t-SNE every 50
            iterations; UMAP, whose fit has no hook, once at the start).

    Returns:
        :class:`SpectralMap`.

    Raises:
        ValueError: unknown method, bad rows, or fewer than 5 rows.
    """
    if method not in MAP_METHODS:
        raise ValueError(f"method={method!r} is not one of {MAP_METHODS}")
    x = unit_rows(x)
    n = x.shape[0]
    if n < _MIN_POINTS:
        raise ValueError(f"a map needs at least {_MIN_POINTS} points; got {n}")
    report = progress or (lambda fraction, stage: None)
    if method == "umap":
        import umap

        report(0.0, f"UMAP: nearest neighbours and layout of {n} points")

        model = umap.UMAP(
            n_components=2,
            metric="cosine",
            n_neighbors=max(2, min(n_neighbors, n - 1)),
            random_state=seed,
            n_jobs=1,  # a seed makes UMAP single-threaded anyway; saying so avoids a warning
            # a small library is mapped spectrally; init="spectral" fails below ~n_neighbors
            init="spectral" if n > 2 * n_neighbors else "random",
        )
        coordinates = model.fit_transform(x)
    else:
        from openTSNE import TSNE

        every, phases = 50, (250, 500)  # openTSNE's default early-exaggeration and main phases
        done = [0]

        def iterations(iteration: int, error: float, embedding: Any) -> bool:
            done[0] += every
            report(min(done[0] / sum(phases), 1.0), f"t-SNE: {done[0]} of {sum(phases)} iterations")
            return False  # never stop early

        report(0.0, f"t-SNE: affinities of {n} points")
        model = TSNE(
            n_components=2,
            metric="cosine",
            perplexity=max(1.0, min(perplexity, (n - 1) / 3.0)),
            early_exaggeration_iter=phases[0],
            n_iter=phases[1],
            random_state=seed,
            n_jobs=1,
            callbacks=iterations,
            callbacks_every_iters=every,
        ).fit(x)
        # the embedding keeps its optimiser's parameters for transform(); the progress hook
        # must not be called from there, and would make the fitted map unpicklable
        model.gradient_descent_params["callbacks"] = None
        coordinates = model.view(np.ndarray)
    return SpectralMap(method, np.asarray(coordinates, dtype=np.float64).copy(), seed, model)

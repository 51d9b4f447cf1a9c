"""Exact cosine search over in-memory matrices.

Embeddings are L2-normalised once on insert, so a query batch is scored with ONE matrix product
``(Q, dim) @ (dim, N)``; the top ``k`` per row come from ``argpartition``. Two matrices are kept
per entry: the embedding and the preprocessed model-grid spectrum, the latter as stored
(normalised per search).
Not thread-safe on its own: the owning store serialises access.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import (
    DimensionMismatchError,
    MetadataFilter,
    SearchHit,
    SearchSpace,
    StoredVectors,
    matches_filter,
)

__all__ = ["ExactIndex", "normalise_rows"]


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """``(n, d)`` float32 rows scaled to unit L2 norm; all-zero rows stay zero."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


class ExactIndex:
    """Id-addressed rows of (embedding, processed spectrum, metadata) with exact cosine top-k.

    Args:
        latent_dim: embedding width.
        seq_len: processed-spectrum width.
    """

    def __init__(self, latent_dim: int, seq_len: int) -> None:
        self.latent_dim = latent_dim
        self.seq_len = seq_len
        self._ids: list[str] = []
        self._row_of: dict[str, int] = {}
        self._metadata: list[dict[str, Any]] = []
        self._embeddings = np.zeros((0, latent_dim), dtype=np.float32)
        self._spectra = np.zeros((0, seq_len), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._row_of

    def _grow(self, needed: int) -> None:
        capacity = self._embeddings.shape[0]
        if needed <= capacity:
            return
        new_capacity = max(needed, 2 * capacity, 64)
        for name in ("_embeddings", "_spectra"):
            old = getattr(self, name)
            grown = np.zeros((new_capacity, old.shape[1]), dtype=np.float32)
            grown[: len(self._ids)] = old[: len(self._ids)]
            setattr(self, name, grown)

    def upsert(
        self,
        ids: Sequence[str],
        embeddings: np.ndarray,
        spectra: np.ndarray,
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Insert or replace rows. ``metadata=None`` keeps the metadata of existing rows."""
        embeddings = normalise_rows(np.asarray(embeddings).reshape(len(ids), -1))
        # Spectra are kept as stored (whole-library spectral work needs their scale);
        # a cosine search normalises them per query batch.
        spectra = np.asarray(spectra, dtype=np.float32).reshape(len(ids), -1)
        if embeddings.shape[1] != self.latent_dim or spectra.shape[1] != self.seq_len:
            raise DimensionMismatchError(
                f"index holds ({self.latent_dim},) embeddings and ({self.seq_len},) spectra, "
                f"got {embeddings.shape[1:]} and {spectra.shape[1:]}"
            )
        self._grow(len(self._ids) + len(ids))
        for i, entry_id in enumerate(ids):
            row = self._row_of.get(entry_id)
            if row is None:
                row = len(self._ids)
                self._ids.append(entry_id)
                self._row_of[entry_id] = row
                self._metadata.append(metadata[i] if metadata is not None else {})
            elif metadata is not None:
                self._metadata[row] = metadata[i]
            self._embeddings[row] = embeddings[i]
            self._spectra[row] = spectra[i]

    def remove(self, entry_id: str) -> None:
        """Drop a row (no-op when absent) by moving the last row into its place."""
        row = self._row_of.pop(entry_id, None)
        if row is None:
            return
        last = len(self._ids) - 1
        if row != last:
            moved = self._ids[last]
            self._ids[row] = moved
            self._row_of[moved] = row
            self._metadata[row] = self._metadata[last]
            self._embeddings[row] = self._embeddings[last]
            self._spectra[row] = self._spectra[last]
        self._ids.pop()
        self._metadata.pop()

    def clear(self) -> None:
        """Drop every row."""
        self.__init__(self.latent_dim, self.seq_len)  # type: ignore[misc]

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        space: SearchSpace = "embedding",
        metadata_filter: MetadataFilter | None = None,
    ) -> list[list[SearchHit]]:
        """Top-``k`` rows by cosine similarity for each query row.

        Args:
            queries: ``(Q, latent_dim)`` or ``(Q, seq_len)`` depending on ``space``.
            k: neighbours per query, >= 1.
            space: ``"embedding"`` or ``"spectrum"``.
            metadata_filter: restricts candidates (see :func:`matches_filter`).

        Returns:
            Per query, hits by descending score, ties broken by id.
        """
        if k < 1:
            raise ValueError(f"k={k} must be >= 1")
        matrix = self._embeddings if space == "embedding" else self._spectra
        width = matrix.shape[1]
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != width:
            raise DimensionMismatchError(
                f"queries for space={space!r} must be (Q, {width}), got {queries.shape}"
            )
        n = len(self._ids)
        rows = np.arange(n)
        if metadata_filter:
            rows = np.fromiter(
                (i for i in range(n) if matches_filter(self._metadata[i], metadata_filter)),
                dtype=np.int64,
            )
        if rows.size == 0:
            return [[] for _ in range(queries.shape[0])]
        candidates = matrix[rows] if rows.size != n else matrix[:n]
        if space == "spectrum":
            candidates = normalise_rows(candidates)
        scores = normalise_rows(queries) @ candidates.T  # (Q, C) cosine, one product per batch
        top = min(k, rows.size)
        results: list[list[SearchHit]] = []
        for q_scores in scores:
            if top < rows.size:
                part = np.argpartition(-q_scores, top - 1)[:top]
            else:
                part = np.arange(rows.size)
            ids = [self._ids[rows[j]] for j in part]
            order = sorted(range(len(part)), key=lambda t: (-float(q_scores[part[t]]), ids[t]))
            results.append(
                [
                    SearchHit(
                        id=ids[t],
                        score=float(np.clip(q_scores[part[t]], -1.0, 1.0)),
                        metadata=self._metadata[rows[part[t]]],
                    )
                    for t in order
                ]
            )
        return results

    def rows(self, space: SearchSpace, metadata_filter: MetadataFilter | None) -> StoredVectors:
        """Copies of the matching rows' embeddings or spectra, ordered by id."""
        matrix = self._embeddings if space == "embedding" else self._spectra
        n = len(self._ids)
        rows = sorted(
            (i for i in range(n) if matches_filter(self._metadata[i], metadata_filter)),
            key=lambda i: self._ids[i],
        )
        picked = np.asarray(rows, dtype=np.int64)
        return StoredVectors(
            ids=[self._ids[i] for i in rows],
            metadata=[self._metadata[i] for i in rows],
            matrix=matrix[picked].copy() if rows else np.zeros((0, matrix.shape[1]), np.float32),
        )

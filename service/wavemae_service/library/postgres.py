"""Shared library: PostgreSQL + pgvector, so every replica of the service sees the same library.

Same interface and semantics as the embedded :mod:`.sqlite` store (ids, metadata filters, the
model-version rules, errors); both pass ``tests/service/test_library_store.py``.

Layout and start-up migration: :mod:`.postgres_schema` (exact bytes of every array, plus
``vector(latent_dim)`` / ``vector(seq_len)`` search copies, an HNSW cosine index on the
embeddings, ``jsonb`` metadata with a GIN index; created or migrated under an advisory lock).

Search: ``space="embedding"`` without a metadata filter uses the HNSW index (approximate: with
``hnsw.ef_search`` >= k a small library is answered exactly; a large one may, rarely, miss a true
neighbour). With a metadata filter, and for ``space="spectrum"``, the search is an exact scan
(pgvector 0.6 has no iterative index scans, so an index scan plus a selective filter could
return fewer than ``k`` hits). Pass ``exact_search=True`` to never use the index.

Durability and concurrency: every write is one transaction, so a replica that dies mid-write
leaves the entry either fully written or absent. The library's model version lives in one row;
writes read it ``FOR SHARE`` and only a write that changes it takes it ``FOR UPDATE``, so two
replicas serving different models cannot both adopt an empty library. Connecting, the pool,
the transaction per call and the version-row locks: :mod:`.postgres_transactions`; stored
analyses (clusters, maps): :mod:`.postgres_analyses`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from .base import (
    DimensionMismatchError,
    EntryNotFoundError,
    LibraryStore,
    LibraryUnavailableError,
    ModelVersionMismatchError,
)
from .entries import LibraryEntry, MetadataFilter, SearchHit, SearchSpace, StoredVectors
from .postgres_analyses import PostgresAnalyses
from .postgres_schema import (
    ENTRIES,
    HNSW_MAX_DIMS,
    META,
    filter_clause,
    migrate,
)
from .postgres_transactions import (
    has_entries,
    lock_version,
    mark_version_in,
    normalise_url,
    open_pool,
    run_on_pool,
    set_version,
    wait_for_database,
)
from .rows import COLUMNS, array_bytes, axis_range, entry_from_row, f32_bytes

__all__ = ["LibraryUnavailableError", "PostgresLibraryStore"]

T = TypeVar("T")


class PostgresLibraryStore(PostgresAnalyses, LibraryStore):
    """Library store on PostgreSQL + pgvector (see module docstring).

    Args:
        url: ``postgresql://user:password@host:port/dbname`` (any libpq URI or conninfo).
        latent_dim: served model's embedding width.
        seq_len: served model's grid length.
        pool_min_size, pool_max_size: connections kept open / allowed per process.
        connect_timeout_s: how long start-up waits for the database to accept connections
            (a replica may start before its database); LibraryUnavailableError after that.
        request_timeout_s: how long one call waits for a pooled connection (database down or
            every connection busy) before LibraryUnavailableError.
        hnsw_ef_search: candidate list size of an HNSW search (raised to ``k`` when smaller);
            higher is more exact and slower.
        exact_search: never use the HNSW index (exact cosine scan for every search).

    Raises:
        LibraryUnavailableError: no connection within ``connect_timeout_s``.
        ValueError: non-positive dims.
    """

    def __init__(
        self,
        url: str,
        *,
        latent_dim: int,
        seq_len: int,
        pool_min_size: int = 1,
        pool_max_size: int = 8,
        connect_timeout_s: float = 30.0,
        request_timeout_s: float = 5.0,
        hnsw_ef_search: int = 100,
        exact_search: bool = False,
    ) -> None:
        if latent_dim < 1 or seq_len < 1:
            raise ValueError(f"latent_dim={latent_dim} and seq_len={seq_len} must be >= 1")
        self.latent_dim = int(latent_dim)
        self.seq_len = int(seq_len)
        self.hnsw_ef_search = int(hnsw_ef_search)
        self.exact_search = bool(exact_search)
        self._url = normalise_url(url)
        wait_for_database(self._url, connect_timeout_s)
        migrate(self._url, latent_dim=self.latent_dim, seq_len=self.seq_len)
        self._pool = open_pool(
            self._url,
            min_size=pool_min_size,
            max_size=pool_max_size,
            request_timeout_s=request_timeout_s,
            connect_timeout_s=connect_timeout_s,
        )

    def _run(self, work: Callable[[psycopg.Connection], T], *, transaction: bool = True) -> T:
        """Run ``work(conn)`` on a pooled connection, in one transaction unless told otherwise."""
        return run_on_pool(self._pool, work, transaction=transaction)

    # -- state ---------------------------------------------------------------------------

    @property
    def model_version(self) -> str | None:
        def work(conn: psycopg.Connection) -> str | None:
            row = conn.execute(
                sql.SQL("SELECT value FROM {meta} WHERE key = 'model_version'").format(
                    meta=sql.Identifier(META)
                )
            ).fetchone()
            return None if row is None else row[0]

        return self._run(work, transaction=False)

    def count(self, metadata_filter: MetadataFilter | None = None) -> int:
        where, params = filter_clause(metadata_filter)
        query = sql.SQL("SELECT count(*) FROM {entries} WHERE {where}").format(
            entries=sql.Identifier(ENTRIES), where=where
        )
        return int(
            self._run(lambda conn: conn.execute(query, params).fetchone()[0], transaction=False)
        )

    # -- writes --------------------------------------------------------------------------

    def _put(self, entries: Sequence[LibraryEntry], model_version: str) -> None:
        now = time.time()
        rows = [
            (
                e.id,
                *array_bytes(e),
                Jsonb(e.metadata),
                e.embedding.astype(np.float32),
                e.processed.astype(np.float32),
                model_version,
                now,
                now,
                e.unit,
            )
            for e in entries
        ]
        upsert = sql.SQL(
            "INSERT INTO {entries} (id, spectrum, wavelengths, embedding, processed, metadata, "
            "embedding_v, processed_v, model_version, created_at, updated_at, unit) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET spectrum = EXCLUDED.spectrum, "
            "wavelengths = EXCLUDED.wavelengths, unit = EXCLUDED.unit, "
            "metadata = EXCLUDED.metadata, "
            "embedding = EXCLUDED.embedding, processed = EXCLUDED.processed, "
            "embedding_v = EXCLUDED.embedding_v, processed_v = EXCLUDED.processed_v, "
            "model_version = EXCLUDED.model_version, updated_at = EXCLUDED.updated_at"
        ).format(entries=sql.Identifier(ENTRIES))

        def work(conn: psycopg.Connection, *, for_update: bool) -> bool:
            version = lock_version(conn, for_update=for_update)
            if version != model_version:
                if has_entries(conn):
                    raise ModelVersionMismatchError(version, model_version)
                if not for_update:
                    return False  # adopting needs the exclusive lock: retry with it
                set_version(conn, model_version)
            with conn.cursor() as cur:
                try:
                    cur.executemany(upsert, rows)
                except psycopg.errors.DataException as exc:
                    # Another replica serving a model of other dims retyped the vector columns.
                    raise DimensionMismatchError(
                        f"the library's vector columns no longer fit this model's dims "
                        f"({self.latent_dim}, {self.seq_len}): {exc.diag.message_primary}"
                    ) from exc
            return True

        if not self._run(lambda conn: work(conn, for_update=False)):
            self._run(lambda conn: work(conn, for_update=True))

    def delete(self, entry_id: str) -> None:
        query = sql.SQL("DELETE FROM {entries} WHERE id = %s").format(
            entries=sql.Identifier(ENTRIES)
        )
        if self._run(lambda conn: conn.execute(query, (entry_id,)).rowcount) == 0:
            raise EntryNotFoundError(entry_id)

    # -- reads ---------------------------------------------------------------------------

    def get(self, entry_id: str) -> LibraryEntry:
        query = sql.SQL("SELECT {cols} FROM {entries} WHERE id = %s").format(
            cols=sql.SQL(COLUMNS), entries=sql.Identifier(ENTRIES)
        )
        row = self._run(lambda conn: conn.execute(query, (entry_id,)).fetchone(), transaction=False)
        if row is None:
            raise EntryNotFoundError(entry_id)
        return entry_from_row(row)

    def _list(
        self, offset: int, limit: int, metadata_filter: MetadataFilter | None
    ) -> list[LibraryEntry]:
        where, params = filter_clause(metadata_filter)
        query = sql.SQL(
            "SELECT {cols} FROM {entries} WHERE {where} ORDER BY id LIMIT %s OFFSET %s"
        ).format(cols=sql.SQL(COLUMNS), entries=sql.Identifier(ENTRIES), where=where)
        rows = self._run(
            lambda conn: conn.execute(query, [*params, limit, offset]).fetchall(),
            transaction=False,
        )
        return [entry_from_row(r) for r in rows]

    def _search(
        self,
        queries: np.ndarray,
        k: int,
        model_version: str,
        space: SearchSpace,
        metadata_filter: MetadataFilter | None,
    ) -> list[list[SearchHit]]:
        column = sql.Identifier("embedding_v" if space == "embedding" else "processed_v")
        where, params = filter_clause(metadata_filter)
        use_index = (
            space == "embedding"
            and not metadata_filter
            and not self.exact_search
            and self.latent_dim <= HNSW_MAX_DIMS
        )
        entries = sql.Identifier(ENTRIES)
        # ORDER BY the bare distance so the planner may use the HNSW index.
        approximate = sql.SQL(
            "SELECT id, metadata, {col} <=> %s AS distance FROM {entries} "
            "WHERE {col} IS NOT NULL ORDER BY {col} <=> %s LIMIT %s"
        ).format(col=column, entries=entries)
        # Exact scan; a zero vector has an undefined (NaN) cosine distance: score it 0.
        exact = sql.SQL(
            "SELECT id, metadata, distance FROM (SELECT id, metadata, "
            "COALESCE(NULLIF({col} <=> %s, 'NaN'::float8), 1.0) AS distance "
            "FROM {entries} WHERE {col} IS NOT NULL AND {where}) AS scored "
            "ORDER BY distance, id LIMIT %s"
        ).format(col=column, entries=entries, where=where)
        first_by_id = sql.SQL(
            "SELECT id, metadata, 1.0::float8 FROM {entries} WHERE {col} IS NOT NULL AND {where} "
            "ORDER BY id LIMIT %s"
        ).format(col=column, entries=entries, where=where)

        def work(conn: psycopg.Connection) -> list[list[SearchHit]]:
            if not has_entries(conn):
                return [[] for _ in range(queries.shape[0])]
            version = lock_version(conn, for_update=False)
            if version != model_version:
                raise ModelVersionMismatchError(version, model_version)
            if use_index:
                conn.execute(
                    "SELECT set_config('hnsw.ef_search', %s, true)",
                    (str(min(1000, max(self.hnsw_ef_search, k))),),
                )
            results = []
            for query in queries:
                if not np.any(query):
                    # Cosine with a zero query is 0 for every entry: ties, broken by id.
                    rows = conn.execute(first_by_id, [*params, k]).fetchall()
                else:
                    rows = []
                    if use_index:
                        rows = conn.execute(approximate, (query, query, k)).fetchall()
                    if len(rows) < k:
                        # Fewer than k from the index: a small library, or entries the index
                        # cannot rank (zero vectors). The exact scan decides.
                        rows = conn.execute(exact, [query, *params, k]).fetchall()
                hits = [
                    SearchHit(id=i, score=float(np.clip(1.0 - d, -1.0, 1.0)), metadata=m)
                    for i, m, d in rows
                ]
                hits.sort(key=lambda h: (-h.score, h.id))
                results.append(hits)
            return results

        return self._run(work)

    def _vectors(
        self,
        space: SearchSpace,
        model_version: str,
        metadata_filter: MetadataFilter | None,
        with_axes: bool,
    ) -> StoredVectors:
        column = sql.Identifier("embedding" if space == "embedding" else "processed")
        where, params = filter_clause(metadata_filter)
        axes = sql.SQL(", wavelengths, unit" if with_axes else "")
        query = sql.SQL(
            "SELECT id, metadata, {col}{axes} FROM {entries} WHERE {where} ORDER BY id"
        ).format(col=column, axes=axes, entries=sql.Identifier(ENTRIES), where=where)
        width = self.latent_dim if space == "embedding" else self.seq_len

        def work(conn: psycopg.Connection) -> StoredVectors:
            if has_entries(conn):
                version = lock_version(conn, for_update=False)
                if version != model_version:
                    raise ModelVersionMismatchError(version, model_version)
            rows = conn.execute(query, params).fetchall()
            matrix = np.zeros((len(rows), width), dtype=np.float32)
            for i, row in enumerate(rows):
                matrix[i] = np.frombuffer(row[2], dtype="<f4")
            if not with_axes:
                return StoredVectors([r[0] for r in rows], [r[1] for r in rows], matrix)
            return StoredVectors(
                [r[0] for r in rows],
                [r[1] for r in rows],
                matrix,
                axes=np.array([axis_range(r[3]) for r in rows], np.float64).reshape(-1, 2),
                units=[r[4] for r in rows],
            )

        return self._run(work)

    # -- re-embedding --------------------------------------------------------------------

    def _stale_page(self, model_version: str, after: str, limit: int) -> list[LibraryEntry]:
        query = sql.SQL(
            "SELECT {cols} FROM {entries} WHERE model_version <> %s AND id > %s "
            "ORDER BY id LIMIT %s"
        ).format(cols=sql.SQL(COLUMNS), entries=sql.Identifier(ENTRIES))
        rows = self._run(
            lambda conn: conn.execute(query, (model_version, after, limit)).fetchall(),
            transaction=False,
        )
        return [entry_from_row(r) for r in rows]

    def _replace_embeddings(
        self, ids: list[str], embeddings: np.ndarray, processed: np.ndarray, model_version: str
    ) -> None:
        now = time.time()
        update = sql.SQL(
            "UPDATE {entries} SET embedding = %s, processed = %s, embedding_v = %s, "
            "processed_v = %s, model_version = %s, updated_at = %s WHERE id = %s"
        ).format(entries=sql.Identifier(ENTRIES))
        rows = [
            (f32_bytes(emb), f32_bytes(proc), emb, proc, model_version, now, entry_id)
            for entry_id, emb, proc in zip(ids, embeddings, processed, strict=True)
        ]

        def work(conn: psycopg.Connection) -> None:
            lock_version(conn, for_update=True)
            with conn.cursor() as cur:
                cur.executemany(update, rows)
            mark_version_in(conn, model_version)

        self._run(work)

    def mark_version(self, model_version: str) -> None:
        def work(conn: psycopg.Connection) -> None:
            lock_version(conn, for_update=True)
            mark_version_in(conn, model_version)

        self._run(work)

    def close(self) -> None:
        self._pool.close()

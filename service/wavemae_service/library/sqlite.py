"""Embedded library: one SQLite file (WAL, ``synchronous=FULL``) plus an in-memory exact index.

Durability: every write is one ``BEGIN IMMEDIATE ... COMMIT`` transaction; with WAL and
``synchronous=FULL`` the commit fsyncs the log before returning, so an acknowledged write survives
``kill -9`` (and power loss, as far as the disk honours fsync). The in-memory
:class:`~.exact_index.ExactIndex` is rebuilt from the file at open and updated only after a
commit succeeds, so it never shows an entry the file does not hold.

Arrays are stored as little-endian BLOBs: the original spectrum and wavelengths as float64
(exactly what the caller sent), the embedding and processed spectrum as float32. Each entry's
wavelength range and unit are also kept in memory (an axis-relative model's spectral search
reads them per search). The tables and opening the file: :mod:`.sqlite_schema`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .base import EntryNotFoundError, LibraryStore, ModelVersionMismatchError
from .entries import (
    LibraryEntry,
    MetadataFilter,
    SearchHit,
    SearchSpace,
    StoredVectors,
    matches_filter,
)
from .exact_index import ExactIndex
from .rows import COLUMNS, array_bytes, axis_range, entry_from_row, f32_bytes
from .sqlite_schema import connect

__all__ = ["SQLiteLibraryStore"]


class SQLiteLibraryStore(LibraryStore):
    """The embedded default store (see module docstring).

    Args:
        path: file path (parent folders are created) or ``":memory:"``.
        latent_dim: served model's embedding width.
        seq_len: served model's grid length.
    """

    def __init__(self, path: str | Path, *, latent_dim: int, seq_len: int) -> None:
        self.latent_dim = int(latent_dim)
        self.seq_len = int(seq_len)
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.path = str(Path(self.path).expanduser())
        self._lock = threading.RLock()
        self._conn = connect(self.path)
        self._index = ExactIndex(self.latent_dim, self.seq_len)
        # id -> (lowest, highest wavelength, unit) of every entry, for with_axes
        self._axes: dict[str, tuple[float, float, str | None]] = {}
        self._version: str | None = self._read_version()
        self._rebuild_index()

    # -- helpers -------------------------------------------------------------------------

    def _read_version(self) -> str | None:
        row = self._conn.execute(
            "SELECT value FROM library_meta WHERE key = 'model_version'"
        ).fetchone()
        return None if row is None else row[0]

    def _rebuild_index(self) -> None:
        """Load every row whose arrays fit the served model's dims into the index."""
        self._index.clear()
        self._axes.clear()
        ids, embeddings, spectra, metadata = [], [], [], []
        cursor = self._conn.execute(
            "SELECT id, embedding, processed, metadata, wavelengths, unit FROM entries"
        )
        for entry_id, embedding, processed, meta, wavelengths, unit in cursor:
            self._axes[entry_id] = (*axis_range(wavelengths), unit)
            emb = np.frombuffer(embedding, dtype="<f4")
            proc = np.frombuffer(processed, dtype="<f4")
            if emb.size == self.latent_dim and proc.size == self.seq_len:
                ids.append(entry_id)
                embeddings.append(emb)
                spectra.append(proc)
                metadata.append(orjson.loads(meta))
        if ids:
            self._index.upsert(ids, np.stack(embeddings), np.stack(spectra), metadata)

    def _write(self, statements: Any) -> None:
        """Run ``statements(conn)`` inside one IMMEDIATE transaction; roll back on any error."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            statements(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _count_unlocked(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    # -- state ---------------------------------------------------------------------------

    @property
    def model_version(self) -> str | None:
        with self._lock:
            return self._version

    def count(self, metadata_filter: MetadataFilter | None = None) -> int:
        with self._lock:
            if not metadata_filter:
                return self._count_unlocked()
            rows = self._conn.execute("SELECT metadata FROM entries").fetchall()
        return sum(matches_filter(orjson.loads(m), metadata_filter) for (m,) in rows)

    # -- writes --------------------------------------------------------------------------

    def _put(self, entries: Sequence[LibraryEntry], model_version: str) -> None:
        ids = [e.id for e in entries]
        embeddings = np.stack([e.embedding for e in entries])
        processed = np.stack([e.processed for e in entries])
        now = time.time()
        rows = [
            (
                e.id,
                *array_bytes(e),
                orjson.dumps(e.metadata).decode(),
                model_version,
                now,
                now,
                e.unit,
            )
            for e in entries
        ]

        def statements(conn: sqlite3.Connection) -> None:
            count = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
            version = self._read_version()
            if count > 0 and version != model_version:
                raise ModelVersionMismatchError(version, model_version)
            conn.executemany(
                "INSERT INTO entries (id, spectrum, wavelengths, embedding, processed, metadata, "
                "model_version, created_at, updated_at, unit) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET spectrum=excluded.spectrum, "
                "wavelengths=excluded.wavelengths, unit=excluded.unit, metadata=excluded.metadata, "
                "embedding=excluded.embedding, processed=excluded.processed, "
                "model_version=excluded.model_version, updated_at=excluded.updated_at",
                rows,
            )
            conn.execute(
                "INSERT OR REPLACE INTO library_meta VALUES ('model_version', ?)",
                (model_version,),
            )

        with self._lock:
            self._write(statements)
            self._version = model_version
            self._index.upsert(ids, embeddings, processed, [e.metadata for e in entries])
            for e in entries:
                self._axes[e.id] = (*axis_range(e.wavelengths), e.unit)

    def delete(self, entry_id: str) -> None:
        def statements(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM entries WHERE id = ?", (entry_id,)).rowcount == 0:
                raise EntryNotFoundError(entry_id)

        with self._lock:
            self._write(statements)
            self._index.remove(entry_id)
            self._axes.pop(entry_id, None)

    # -- reads ---------------------------------------------------------------------------

    def get(self, entry_id: str) -> LibraryEntry:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {COLUMNS} FROM entries WHERE id = ?", (entry_id,)
            ).fetchone()
        if row is None:
            raise EntryNotFoundError(entry_id)
        return entry_from_row(row)

    def _list(
        self, offset: int, limit: int, metadata_filter: MetadataFilter | None
    ) -> list[LibraryEntry]:
        with self._lock:
            if not metadata_filter:
                rows = self._conn.execute(
                    f"SELECT {COLUMNS} FROM entries ORDER BY id LIMIT ? OFFSET ?",
                    (limit, offset),
                ).fetchall()
                return [entry_from_row(r) for r in rows]
            candidates = self._conn.execute(
                "SELECT id, metadata FROM entries ORDER BY id"
            ).fetchall()
            wanted = [i for i, m in candidates if matches_filter(orjson.loads(m), metadata_filter)][
                offset : offset + limit
            ]
            return [self.get(i) for i in wanted]

    def _search(
        self,
        queries: np.ndarray,
        k: int,
        model_version: str,
        space: SearchSpace,
        metadata_filter: MetadataFilter | None,
    ) -> list[list[SearchHit]]:
        with self._lock:
            if self._count_unlocked() > 0 and self._version != model_version:
                raise ModelVersionMismatchError(self._version, model_version)
            return self._index.search(queries, k, space=space, metadata_filter=metadata_filter)

    def _vectors(
        self,
        space: SearchSpace,
        model_version: str,
        metadata_filter: MetadataFilter | None,
        with_axes: bool,
    ) -> StoredVectors:
        with self._lock:
            if self._count_unlocked() > 0 and self._version != model_version:
                raise ModelVersionMismatchError(self._version, model_version)
            rows = self._index.rows(space, metadata_filter)
            if not with_axes:
                return rows
            axes = [self._axes[entry_id] for entry_id in rows.ids]
        return replace(
            rows,
            axes=np.array([a[:2] for a in axes], dtype=np.float64).reshape(-1, 2),
            units=[a[2] for a in axes],
        )

    # -- analyses ------------------------------------------------------------------------

    def save_analysis(
        self, name: str, model_version: str, payload: dict[str, Any], *, blob: bytes | None = None
    ) -> None:
        body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY).decode()

        def statements(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO analyses VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "model_version=excluded.model_version, payload=excluded.payload, "
                "updated_at=excluded.updated_at",
                (name, model_version, body, time.time()),
            )
            conn.execute("DELETE FROM analysis_blobs WHERE name = ?", (name,))
            if blob is not None:
                conn.execute("INSERT INTO analysis_blobs VALUES (?, ?)", (name, blob))

        with self._lock:
            self._write(statements)

    def update_analysis(
        self, name: str, model_version: str, payload: dict[str, Any], *, digest: str
    ) -> bool:
        body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        updated: list[int] = []

        def statements(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE analyses SET model_version = ?, payload = ?, updated_at = ? "
                "WHERE name = ? AND json_extract(payload, '$.transform.digest') = ?",
                (model_version, body, time.time(), name, digest),
            )
            updated.append(cursor.rowcount)

        with self._lock:
            self._write(statements)
        return updated == [1]

    def load_analysis(self, name: str) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT model_version, payload FROM analyses WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else (row[0], orjson.loads(row[1]))

    def load_analysis_blob(self, name: str) -> bytes | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT body FROM analysis_blobs WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def load_analysis_with_blob(self, name: str) -> tuple[str, dict[str, Any], bytes | None] | None:
        with self._lock:  # one statement: one snapshot of both tables
            row = self._conn.execute(
                "SELECT a.model_version, a.payload, b.body FROM analyses AS a "
                "LEFT JOIN analysis_blobs AS b ON b.name = a.name WHERE a.name = ?",
                (name,),
            ).fetchone()
        if row is None:
            return None
        return row[0], orjson.loads(row[1]), None if row[2] is None else bytes(row[2])

    # -- re-embedding --------------------------------------------------------------------

    def _stale_page(self, model_version: str, after: str, limit: int) -> list[LibraryEntry]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {COLUMNS} FROM entries WHERE model_version != ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (model_version, after, limit),
            ).fetchall()
        return [entry_from_row(r) for r in rows]

    def _replace_embeddings(
        self, ids: list[str], embeddings: np.ndarray, processed: np.ndarray, model_version: str
    ) -> None:
        now = time.time()

        def statements(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE entries SET embedding = ?, processed = ?, model_version = ?, "
                "updated_at = ? WHERE id = ?",
                [
                    (f32_bytes(emb), f32_bytes(proc), model_version, now, entry_id)
                    for entry_id, emb, proc in zip(ids, embeddings, processed, strict=True)
                ],
            )
            self._mark_version_in(conn, model_version)

        with self._lock:
            self._write(statements)
            self._version = self._read_version()
            present = (
                {
                    r[0]
                    for r in self._conn.execute(
                        f"SELECT id FROM entries WHERE id IN ({','.join('?' * len(ids))})",
                        ids,
                    )
                }
                if ids
                else set()
            )
            keep = [j for j, i in enumerate(ids) if i in present]
            if keep:
                # Metadata of existing rows is kept; rows new to the index (other dims before)
                # need theirs.
                missing_meta = [ids[j] for j in keep if ids[j] not in self._index]
                if missing_meta:
                    self._rebuild_index()
                else:
                    self._index.upsert(
                        [ids[j] for j in keep], embeddings[keep], processed[keep], None
                    )

    @staticmethod
    def _mark_version_in(conn: sqlite3.Connection, model_version: str) -> None:
        stale = conn.execute(
            "SELECT COUNT(*) FROM entries WHERE model_version != ?", (model_version,)
        ).fetchone()[0]
        if stale == 0:
            conn.execute(
                "INSERT OR REPLACE INTO library_meta VALUES ('model_version', ?)",
                (model_version,),
            )

    def mark_version(self, model_version: str) -> None:
        with self._lock:
            self._write(lambda conn: self._mark_version_in(conn, model_version))
            self._version = self._read_version()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

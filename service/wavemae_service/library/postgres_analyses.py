"""Stored analyses (clusters, maps) of the PostgreSQL library store.

An analysis is one row of the analyses table (its JSON payload, ``jsonb``, and the model version
it was computed from) plus, for a map, its fitted transform as one row of the blobs table;
both are written in one transaction and read in one statement. Layout: :mod:`.postgres_schema`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from .postgres_schema import ANALYSES, ANALYSIS_BLOBS

__all__ = ["PostgresAnalyses"]


def _jsonb(payload: dict[str, Any]) -> Jsonb:
    return Jsonb(
        payload, dumps=lambda v: orjson.dumps(v, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    )


class PostgresAnalyses:
    """The analysis methods of :class:`~.postgres.PostgresLibraryStore` (see
    :class:`~.base.LibraryStore` for what each promises); the store supplies ``_run``."""

    #: ``_run(work)``: ``work(conn)`` in one transaction on a pooled connection (the store's)
    _run: Callable[..., Any]

    def save_analysis(
        self, name: str, model_version: str, payload: dict[str, Any], *, blob: bytes | None = None
    ) -> None:
        query = sql.SQL(
            "INSERT INTO {analyses} VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
            "model_version = EXCLUDED.model_version, payload = EXCLUDED.payload, "
            "updated_at = EXCLUDED.updated_at"
        ).format(analyses=sql.Identifier(ANALYSES))
        blobs = sql.Identifier(ANALYSIS_BLOBS)

        def statements(conn: psycopg.Connection) -> None:
            conn.execute(query, (name, model_version, _jsonb(payload), time.time()))
            conn.execute(sql.SQL("DELETE FROM {} WHERE name = %s").format(blobs), (name,))
            if blob is not None:
                conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(blobs), (name, blob))

        self._run(statements)

    def update_analysis(
        self, name: str, model_version: str, payload: dict[str, Any], *, digest: str
    ) -> bool:
        query = sql.SQL(
            "UPDATE {analyses} SET model_version = %s, payload = %s, updated_at = %s "
            "WHERE name = %s AND payload -> 'transform' ->> 'digest' = %s"
        ).format(analyses=sql.Identifier(ANALYSES))
        values = (model_version, _jsonb(payload), time.time(), name, digest)
        return self._run(lambda conn: conn.execute(query, values).rowcount == 1)

    def load_analysis(self, name: str) -> tuple[str, dict[str, Any]] | None:
        query = sql.SQL("SELECT model_version, payload FROM {analyses} WHERE name = %s").format(
            analyses=sql.Identifier(ANALYSES)
        )
        row = self._run(lambda conn: conn.execute(query, (name,)).fetchone(), transaction=False)
        return None if row is None else (row[0], row[1])

    def load_analysis_blob(self, name: str) -> bytes | None:
        query = sql.SQL("SELECT body FROM {blobs} WHERE name = %s").format(
            blobs=sql.Identifier(ANALYSIS_BLOBS)
        )
        row = self._run(lambda conn: conn.execute(query, (name,)).fetchone(), transaction=False)
        return None if row is None else bytes(row[0])

    def load_analysis_with_blob(self, name: str) -> tuple[str, dict[str, Any], bytes | None] | None:
        query = sql.SQL(  # one statement: one snapshot of both tables
            "SELECT a.model_version, a.payload, b.body FROM {analyses} AS a "
            "LEFT JOIN {blobs} AS b ON b.name = a.name WHERE a.name = %s"
        ).format(analyses=sql.Identifier(ANALYSES), blobs=sql.Identifier(ANALYSIS_BLOBS))
        row = self._run(lambda conn: conn.execute(query, (name,)).fetchone(), transaction=False)
        if row is None:
            return None
        return row[0], row[1], None if row[2] is None else bytes(row[2])

"""Schema of the PostgreSQL + pgvector library: tables, indexes, start-up migration, filters.

Two tables: ``wavemae_library_meta`` (key/value: schema and model version) and
``wavemae_library_entries``. Arrays are kept twice: the exact little-endian bytes (any dims; the
source of truth) and ``vector`` search copies sized for the served model (``embedding_v
vector(latent_dim)`` with an HNSW cosine index, ``processed_v vector(seq_len)``). When the served
model's dims change, :func:`migrate` retypes the search copies and refills them from the bytes
that fit; entries stay stale (another model version) until re-embedded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb

from .base import MetadataFilter

__all__ = [
    "ANALYSES",
    "ANALYSIS_BLOBS",
    "ENTRIES",
    "HNSW_MAX_DIMS",
    "META",
    "SCHEMA_VERSION",
    "filter_clause",
    "migrate",
]

SCHEMA_VERSION = "1"
ENTRIES = "wavemae_library_entries"
META = "wavemae_library_meta"
ANALYSES = "wavemae_library_analyses"  # clusters and maps, per model version
ANALYSIS_BLOBS = "wavemae_library_analysis_blobs"  # a map's fitted transform (map_transform.py)
#: pgvector cannot build an HNSW index over ``vector`` columns wider than this.
HNSW_MAX_DIMS = 2000
# Key of the advisory lock that serialises schema creation and migration across replicas.
_SCHEMA_LOCK_KEY = 0x5741_5645_4D41_45  # "WAVEMAE"


def migrate(url: str, *, latent_dim: int, seq_len: int) -> None:
    """Create the schema, or retype the vector columns for the served model's dims.

    Runs in one transaction under an advisory lock, so replicas starting together queue up
    instead of racing on ``CREATE TABLE``.
    """
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {meta} (key text PRIMARY KEY, value text)").format(
                meta=sql.Identifier(META)
            )
        )
        conn.execute(
            sql.SQL(
                """CREATE TABLE IF NOT EXISTS {entries} (
                id            text COLLATE "C" PRIMARY KEY,
                spectrum      bytea NOT NULL,
                wavelengths   bytea,
                metadata      jsonb NOT NULL,
                embedding     bytea NOT NULL,
                processed     bytea NOT NULL,
                embedding_v   vector({dim}),
                processed_v   vector({seq}),
                model_version text NOT NULL,
                created_at    double precision NOT NULL,
                updated_at    double precision NOT NULL,
                unit          text)"""
            ).format(
                entries=sql.Identifier(ENTRIES),
                dim=sql.Literal(latent_dim),
                seq=sql.Literal(seq_len),
            )
        )
        # a library written before units were recorded: NULL = not known
        conn.execute(
            sql.SQL("ALTER TABLE {entries} ADD COLUMN IF NOT EXISTS unit text").format(
                entries=sql.Identifier(ENTRIES)
            )
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {analyses} (name text PRIMARY KEY, "
                "model_version text NOT NULL, payload jsonb NOT NULL, "
                "updated_at double precision NOT NULL)"
            ).format(analyses=sql.Identifier(ANALYSES))
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {blobs} (name text PRIMARY KEY, body bytea NOT NULL)"
            ).format(blobs=sql.Identifier(ANALYSIS_BLOBS))
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {meta} VALUES ('schema_version', %s), ('model_version', NULL) "
                "ON CONFLICT (key) DO NOTHING"
            ).format(meta=sql.Identifier(META)),
            (SCHEMA_VERSION,),
        )
        _retype_vector_column(conn, "embedding_v", "embedding", latent_dim)
        _retype_vector_column(conn, "processed_v", "processed", seq_len)
        if latent_dim <= HNSW_MAX_DIMS:
            conn.execute(
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {name} ON {entries} "
                    "USING hnsw (embedding_v vector_cosine_ops)"
                ).format(
                    name=sql.Identifier(f"{ENTRIES}_embedding_hnsw"),
                    entries=sql.Identifier(ENTRIES),
                )
            )
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {entries} USING gin (metadata)").format(
                name=sql.Identifier(f"{ENTRIES}_metadata_gin"),
                entries=sql.Identifier(ENTRIES),
            )
        )
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {entries} (model_version)").format(
                name=sql.Identifier(f"{ENTRIES}_model_version"),
                entries=sql.Identifier(ENTRIES),
            )
        )


def _retype_vector_column(conn: psycopg.Connection, column: str, raw: str, dims: int) -> None:
    """Make ``column`` a ``vector(dims)``, refilled from the raw float32 bytes that fit."""
    row = conn.execute(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s",
        (ENTRIES, column),
    ).fetchone()
    if row is not None and row[0] == dims:
        return
    entries = sql.Identifier(ENTRIES)
    if column == "embedding_v":
        conn.execute(
            sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(f"{ENTRIES}_embedding_hnsw"))
        )
    conn.execute(
        sql.SQL("ALTER TABLE {entries} ALTER COLUMN {col} TYPE vector({dims}) USING NULL").format(
            entries=entries, col=sql.Identifier(column), dims=sql.Literal(dims)
        )
    )
    fitting = conn.execute(
        sql.SQL("SELECT id, {raw} FROM {entries} WHERE octet_length({raw}) = %s").format(
            raw=sql.Identifier(raw), entries=entries
        ),
        (4 * dims,),
    ).fetchall()
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL("UPDATE {entries} SET {col} = %s WHERE id = %s").format(
                entries=entries, col=sql.Identifier(column)
            ),
            [(np.frombuffer(blob, dtype="<f4"), entry_id) for entry_id, blob in fitting],
        )


def filter_clause(metadata_filter: MetadataFilter | None) -> tuple[sql.Composable, list[Any]]:
    """SQL condition (and its parameters) equivalent to :func:`.entries.matches_filter`.

    A scalar value becomes jsonb containment ``metadata @> {key: value}`` (GIN-indexable; jsonb
    compares numbers by value and keeps ``true`` apart from ``1``, as JSON does); a list value
    "any of" becomes ``metadata -> key = ANY(values)``; an object value, exact jsonb equality.
    """
    if not metadata_filter:
        return sql.SQL("TRUE"), []
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for key, wanted in metadata_filter.items():
        if isinstance(wanted, list):
            parts.append(sql.SQL("(metadata -> %s) = ANY(%s::jsonb[])"))
            params += [str(key), [Jsonb(w) for w in wanted]]
        elif isinstance(wanted, dict):
            parts.append(sql.SQL("(metadata -> %s) = %s::jsonb"))
            params += [str(key), Jsonb(wanted)]
        else:
            parts.append(sql.SQL("metadata @> %s::jsonb"))
            params.append(Jsonb({str(key): wanted}))
    return sql.SQL(" AND ").join(parts), params

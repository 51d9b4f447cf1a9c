"""The SQLite library file: its tables, and opening it durably.

:func:`connect` opens (creating if needed) the file in WAL mode with ``synchronous=FULL``, so a
commit fsyncs the log before returning, creates the tables of :data:`SCHEMA`, and migrates a
library written before units were recorded. The store itself: :mod:`.sqlite`.
"""

from __future__ import annotations

import sqlite3

__all__ = ["SCHEMA", "SCHEMA_VERSION", "connect"]

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS library_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    id            TEXT PRIMARY KEY,
    spectrum      BLOB NOT NULL,     -- float64 (n,), caller's original values
    wavelengths   BLOB,              -- float64 (n,) or NULL (= model grid)
    metadata      TEXT NOT NULL,     -- JSON object
    embedding     BLOB NOT NULL,     -- float32 (latent_dim,)
    processed     BLOB NOT NULL,     -- float32 (seq_len,)
    model_version TEXT NOT NULL,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    unit          TEXT               -- unit of wavelengths, NULL = not known
);
CREATE TABLE IF NOT EXISTS analyses (   -- clusters and maps, per model version
    name          TEXT PRIMARY KEY,
    model_version TEXT NOT NULL,
    payload       TEXT NOT NULL,      -- JSON object
    updated_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS analysis_blobs (   -- a map's fitted transform (see map_transform.py)
    name          TEXT PRIMARY KEY,
    body          BLOB NOT NULL
);
"""


def connect(path: str) -> sqlite3.Connection:
    """Open the library file at ``path`` (or ``":memory:"``) in autocommit mode, shareable
    between threads (the store serialises access), with its tables created and migrated.

    Raises:
        sqlite3.DatabaseError: the file is not a SQLite database, or cannot be opened.
    """
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.executescript(SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(entries)")}
    if "unit" not in columns:  # a library written before units were recorded
        conn.execute("ALTER TABLE entries ADD COLUMN unit TEXT")
    conn.execute(
        "INSERT OR IGNORE INTO library_meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
    )
    return conn

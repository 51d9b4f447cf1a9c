"""Reference-library stores: the interface (:mod:`.base`) and its backends.

Open one with :func:`open_store`; the service never names a backend class itself.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .base import (
    DimensionMismatchError,
    EntryNotFoundError,
    LibraryEntry,
    LibraryError,
    LibraryStore,
    ModelVersionMismatchError,
    SearchHit,
)

__all__ = [
    "DimensionMismatchError",
    "EntryNotFoundError",
    "LibraryEntry",
    "LibraryError",
    "LibraryOpenError",
    "LibraryStore",
    "ModelVersionMismatchError",
    "SearchHit",
    "open_store",
]


class LibraryOpenError(LibraryError):
    """The library at the configured path or URL cannot be opened (the message names it)."""


def open_store(url_or_path: str | Path, *, latent_dim: int, seq_len: int) -> LibraryStore:
    """Open (creating if needed) the library at ``url_or_path``.

    Args:
        url_or_path: ``postgresql://...`` (or ``postgres://``) for PostgreSQL + pgvector; anything
            else is a SQLite file path (``sqlite:///path`` also accepted; ``:memory:`` for a
            throw-away library).
        latent_dim: the served model's embedding width.
        seq_len: the served model's grid length.

    Returns:
        A ready :class:`LibraryStore`.

    Raises:
        LibraryOpenError: a SQLite path that is not a database, or that cannot be opened.
    """
    target = str(url_or_path)
    if target.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from .postgres import PostgresLibraryStore

        return PostgresLibraryStore(target, latent_dim=latent_dim, seq_len=seq_len)
    if target.startswith("sqlite:///"):
        target = target[len("sqlite:///") :]
    from .sqlite import SQLiteLibraryStore

    try:
        return SQLiteLibraryStore(target, latent_dim=latent_dim, seq_len=seq_len)
    except sqlite3.OperationalError as exc:
        raise LibraryOpenError(f"cannot open the library {target}: {exc}") from None
    except sqlite3.DatabaseError as exc:  # "file is not a database"
        raise LibraryOpenError(
            f"the library {target} is not a SQLite database ({exc}); point "
            "WAVEMAE_LIBRARY_URL at a library file or at a path where one may be created"
        ) from None

"""Reference-library stores: the interface (:mod:`.base`) and its backends.

Open one with :func:`open_store`; the service never names a backend class itself.
"""

from __future__ import annotations

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
    "LibraryStore",
    "ModelVersionMismatchError",
    "SearchHit",
    "open_store",
]


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
    """
    target = str(url_or_path)
    if target.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from .postgres import PostgresLibraryStore

        return PostgresLibraryStore(target, latent_dim=latent_dim, seq_len=seq_len)
    if target.startswith("sqlite:///"):
        target = target[len("sqlite:///") :]
    from .sqlite import SQLiteLibraryStore

    return SQLiteLibraryStore(target, latent_dim=latent_dim, seq_len=seq_len)

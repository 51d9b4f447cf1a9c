"""How every call of the PostgreSQL library store reaches the database.

Start-up waits for a database that may start after the replica (:func:`wait_for_database`) and
opens a pool whose connections are checked at each checkout (:func:`open_pool`). Each call then
runs as one transaction on a pooled connection, a lost database reported as
:class:`~.base.LibraryUnavailableError` (:func:`run_on_pool`). The library's model version lives
in one row of the meta table; writes read it ``FOR SHARE`` and only a write that changes it
takes it ``FOR UPDATE`` (:func:`lock_version`), so two replicas serving different models cannot
both adopt an empty library.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from .base import LibraryUnavailableError
from .postgres_schema import ENTRIES, META

__all__ = [
    "has_entries",
    "lock_version",
    "mark_version_in",
    "normalise_url",
    "open_pool",
    "run_on_pool",
    "set_version",
    "wait_for_database",
]

T = TypeVar("T")


# --------------------------------------------------------------------------- connecting


def normalise_url(url: str) -> str:
    """Accept SQLAlchemy-style ``postgresql+psycopg://`` as well as libpq URIs."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def wait_for_database(url: str, timeout_s: float) -> None:
    """Return once the database at ``url`` accepts a connection.

    Raises:
        LibraryUnavailableError: it did not within ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(url, connect_timeout=5):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() >= deadline:
                raise LibraryUnavailableError(
                    f"the library database did not accept connections within {timeout_s:g} s: {exc}"
                ) from exc
            time.sleep(0.5)


def open_pool(
    url: str,
    *,
    min_size: int,
    max_size: int,
    request_timeout_s: float,
    connect_timeout_s: float,
) -> ConnectionPool:
    """An open pool of autocommit connections with pgvector types registered.

    Args:
        url: the libpq URI.
        min_size, max_size: connections kept open / allowed.
        request_timeout_s: how long a checkout waits for a connection.
        connect_timeout_s: how long opening waits for ``min_size`` connections.

    Raises:
        LibraryUnavailableError: the pool could not be opened (it is closed again).
    """
    pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"autocommit": True},
        configure=register_vector,
        # One round trip per checkout: a connection broken by a database restart or
        # fail-over is replaced before a request sees it.
        check=ConnectionPool.check_connection,
        timeout=request_timeout_s,
        open=False,
        name="wavemae-library",
    )
    try:
        pool.open(wait=True, timeout=connect_timeout_s)
    except (psycopg.Error, PoolTimeout) as exc:
        pool.close()
        raise LibraryUnavailableError(f"cannot open the library connection pool: {exc}") from exc
    return pool


def run_on_pool(
    pool: ConnectionPool, work: Callable[[psycopg.Connection], T], *, transaction: bool = True
) -> T:
    """Run ``work(conn)`` on a pooled connection, in one transaction unless told otherwise.

    Raises:
        LibraryUnavailableError: the database was lost (down, restarted, unreachable).
    """
    try:
        with pool.connection() as conn:
            if not transaction:
                return work(conn)
            with conn.transaction():
                return work(conn)
    except psycopg.OperationalError as exc:
        raise LibraryUnavailableError(f"library database error: {exc}") from exc


# --------------------------------------------------------------------------- the version row


def lock_version(conn: psycopg.Connection, *, for_update: bool) -> str | None:
    """The library's model version (None: never set), its row locked for the transaction:
    ``FOR UPDATE`` to change it, else ``FOR SHARE``."""
    mode = sql.SQL("FOR UPDATE" if for_update else "FOR SHARE")
    row = conn.execute(
        sql.SQL("SELECT value FROM {meta} WHERE key = 'model_version' {mode}").format(
            meta=sql.Identifier(META), mode=mode
        )
    ).fetchone()
    return None if row is None else row[0]


def has_entries(conn: psycopg.Connection) -> bool:
    """Whether the library holds any entry."""
    query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {entries})").format(
        entries=sql.Identifier(ENTRIES)
    )
    return bool(conn.execute(query).fetchone()[0])


def set_version(conn: psycopg.Connection, model_version: str) -> None:
    """Record ``model_version`` as the library's (its row locked ``FOR UPDATE`` first)."""
    conn.execute(
        sql.SQL("UPDATE {meta} SET value = %s WHERE key = 'model_version'").format(
            meta=sql.Identifier(META)
        ),
        (model_version,),
    )


def mark_version_in(conn: psycopg.Connection, model_version: str) -> None:
    """Set the library's version to ``model_version`` when no entry of another version is left."""
    stale = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {entries} WHERE model_version <> %s)").format(
            entries=sql.Identifier(ENTRIES)
        ),
        (model_version,),
    ).fetchone()[0]
    if not stale:
        set_version(conn, model_version)

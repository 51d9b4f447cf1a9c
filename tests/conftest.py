"""Fixtures shared by every test folder.

``tiny_artifact``: a tiny exported WaveMAE (seq_len 64, latent_dim 16), once per session;
``tiny_relative_artifact``: the same with an axis-relative manifest.

``postgres_url``: a real PostgreSQL 16 with pgvector for the whole session, started from Python
by the ``pgserver`` package (no apt, no docker) in a temporary folder and stopped and deleted at
the end. As root (this machine and CI), pgserver creates and runs the server as a system user
``pgserver`` (PostgreSQL refuses to run as root). The server listens on a Unix socket only; the
URL names it (``postgresql://postgres:@/postgres?host=/socket/dir``), so subprocesses can use it.
Tests using it skip only when pgserver cannot start a server, and then fail instead under CI
(``CI`` set), so a broken database setup never passes silently there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import pytest


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL for the tests could not start under CI: {reason}")
    pytest.skip(f"PostgreSQL (pgserver) could not start here: {reason}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a session-wide PostgreSQL 16 + pgvector (extension created in ``postgres``)."""
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver
        import psycopg
    except ImportError as exc:  # the dev extra installs both
        _unavailable(f"{exc.name} is not installed (pip install -e '.[dev]')")
    # Not under pytest's basetemp: a pytest session starting meanwhile resets that folder to
    # mode 0700, which would lock the server's own user out of its data directory.
    workdir = Path(tempfile.mkdtemp(prefix="wavemae-pg-"))
    pgdata = workdir / "pgdata"
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="delete")
    except Exception as exc:  # any failure to start means: no database here
        shutil.rmtree(workdir, ignore_errors=True)
        _unavailable(f"{type(exc).__name__}: {exc}")
    try:
        url = server.get_uri()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            # New databases (fresh_postgres_url) inherit the extension from template1.
            with psycopg.connect(_with_database(url, "template1"), autocommit=True) as tmpl:
                tmpl.execute("CREATE EXTENSION IF NOT EXISTS vector")
        yield url
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """URL of a new, empty database on the session server, dropped after the test."""
    import psycopg
    from psycopg import sql

    name = f"wavemae_test_{uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(postgres_url, name)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny exported WaveMAE (seq_len 64, latent_dim 16, 1100-1700 nm grid): real files and
    parity, meaningless weights. Exported once per session (needs the train extra)."""
    from tiny_artifact import export_tiny_model

    return export_tiny_model(
        tmp_path_factory.mktemp("artifact") / "tiny", seq_len=64, latent_dim=16
    )


@pytest.fixture(scope="session")
def tiny_relative_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny export with an axis-relative manifest (``axis: relative``, SNV): any contiguous
    axis in any unit, resampled onto its 64 points over the caller's own range."""
    from tiny_artifact import export_tiny_model

    return export_tiny_model(
        tmp_path_factory.mktemp("relative-artifact") / "general", seq_len=64, axis="relative"
    )

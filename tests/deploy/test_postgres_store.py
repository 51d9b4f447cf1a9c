"""PostgreSQL + pgvector store: what the shared store suite cannot show with one process.

Replicas are separate store objects (own connection pools) or separate processes on one real
database (``fresh_postgres_url``: a new empty database per test on the pgserver instance).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import psycopg
import pytest

from wavemae_service.library import (
    LibraryEntry,
    ModelVersionMismatchError,
    open_store,
)
from wavemae_service.library.base import LibraryUnavailableError, matches_filter
from wavemae_service.library.postgres import PostgresLibraryStore
from wavemae_service.library.postgres_schema import ENTRIES
from wavemae_service.library.sqlite import SQLiteLibraryStore

pytestmark = pytest.mark.postgres

DIM = 8
SEQ = 16


def _entries(n: int, *, seed: int = 0, version: str = "m:1", dim: int = DIM, prefix: str = "e"):
    rng = np.random.default_rng(seed)
    return [
        LibraryEntry(
            id=f"{prefix}{i:04d}",
            spectrum=rng.normal(size=SEQ),
            wavelengths=None,
            metadata={"group": i % 4, "even": i % 2 == 0},
            embedding=rng.normal(size=dim).astype(np.float32),
            processed=rng.normal(size=SEQ).astype(np.float32),
            model_version=version,
        )
        for i in range(n)
    ]


@pytest.fixture
def url(fresh_postgres_url: str) -> str:
    return fresh_postgres_url


def test_two_replicas_see_each_others_writes_at_once(url):
    a = open_store(url, latent_dim=DIM, seq_len=SEQ)
    b = open_store(url, latent_dim=DIM, seq_len=SEQ)
    try:
        entries = _entries(6)
        a.put(entries[:3], model_version="m:1")
        b.put(entries[3:], model_version="m:1")
        assert a.count() == b.count() == 6
        assert b.model_version == "m:1"
        hit = b.search(entries[1].embedding[None], k=1, model_version="m:1")[0][0]
        assert hit.id == entries[1].id
        b.delete(entries[1].id)
        assert entries[1].id not in [e.id for e in a.list_entries(limit=10)]
    finally:
        a.close()
        b.close()


def test_replicas_starting_together_create_the_schema_once(url):
    """Start-up DDL runs under an advisory lock: simultaneous first starts do not collide."""
    stores, errors = [], []
    barrier = threading.Barrier(4)

    def start():
        barrier.wait()
        try:
            stores.append(open_store(url, latent_dim=DIM, seq_len=SEQ))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        stores[0].put(_entries(3), model_version="m:1")
        assert [s.count() for s in stores] == [3, 3, 3, 3]
    finally:
        for s in stores:
            s.close()


def test_replicas_of_two_model_versions_cannot_both_adopt_an_empty_library(url):
    stores = [open_store(url, latent_dim=DIM, seq_len=SEQ) for _ in range(2)]
    outcomes: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def adopt(store, version):
        barrier.wait()
        try:
            store.put(_entries(20, version=version, prefix=version), model_version=version)
            outcomes[version] = "stored"
        except ModelVersionMismatchError:
            outcomes[version] = "refused"

    try:
        threads = [
            threading.Thread(target=adopt, args=(s, v))
            for s, v in zip(stores, ["m:1", "m:2"], strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes.values()) == ["refused", "stored"]
        winner = next(v for v, o in outcomes.items() if o == "stored")
        assert stores[0].model_version == winner
        assert {e.model_version for e in stores[1].list_entries(limit=100)} == {winner}
        assert stores[1].count() == 20
    finally:
        for s in stores:
            s.close()


def test_metadata_filters_match_the_reference_semantics(url):
    """jsonb containment/equality must agree with base.matches_filter, value types included."""
    values = [1, 1.0, 2, True, False, None, "1", "a", [1, 2], {"x": 1}, {"x": 1, "y": 2}, 0]
    rng = np.random.default_rng(3)
    entries = [
        LibraryEntry(
            id=f"m{i:02d}",
            spectrum=rng.normal(size=SEQ),
            wavelengths=None,
            metadata={"v": v, "k": i % 3} if i % 5 else {"k": i % 3},
            embedding=rng.normal(size=DIM).astype(np.float32),
            processed=rng.normal(size=SEQ).astype(np.float32),
            model_version="m:1",
        )
        for i, v in enumerate(values * 2)
    ]
    filters = [
        {"v": 1},
        {"v": True},
        {"v": False},
        {"v": 0},
        {"v": None},
        {"v": "1"},
        {"v": [1, "a"]},
        {"v": [True, None]},
        {"v": {"x": 1}},
        {"v": [[1, 2]]},
        {"v": 2, "k": 1},
        {"missing": 1},
        {"k": [0, 2]},
        {"v": []},
    ]
    store = open_store(url, latent_dim=DIM, seq_len=SEQ)
    try:
        store.put(entries, model_version="m:1")
        for metadata_filter in filters:
            expected = sorted(e.id for e in entries if matches_filter(e.metadata, metadata_filter))
            got = [e.id for e in store.list_entries(limit=100, metadata_filter=metadata_filter)]
            assert got == expected, metadata_filter
            assert store.count(metadata_filter) == len(expected), metadata_filter
            hits = store.search(
                np.ones((1, DIM)), k=100, model_version="m:1", metadata_filter=metadata_filter
            )[0]
            assert sorted(h.id for h in hits) == expected, metadata_filter
    finally:
        store.close()


@pytest.mark.parametrize("exact", [False, True], ids=["hnsw", "exact"])
def test_answers_equal_the_embedded_store(url, tmp_path, exact):
    """Same library, same queries: the same ids and scores as SQLite's exact search."""
    entries = _entries(60, seed=7)
    # A zero embedding and a zero query have no direction: both stores score them 0.
    entries[5] = LibraryEntry(
        id=entries[5].id,
        spectrum=entries[5].spectrum,
        wavelengths=None,
        metadata=entries[5].metadata,
        embedding=np.zeros(DIM, np.float32),
        processed=entries[5].processed,
        model_version="m:1",
    )
    pg = PostgresLibraryStore(url, latent_dim=DIM, seq_len=SEQ, exact_search=exact)
    lite = SQLiteLibraryStore(tmp_path / "lib.sqlite3", latent_dim=DIM, seq_len=SEQ)
    try:
        for store in (pg, lite):
            store.put(entries, model_version="m:1")
        rng = np.random.default_rng(8)
        queries = rng.normal(size=(5, DIM)).astype(np.float32)
        queries[4] = 0.0
        spectra = rng.normal(size=(3, SEQ)).astype(np.float32)
        cases = [
            {"queries": queries, "k": 7},
            {"queries": queries, "k": 100},
            {"queries": queries, "k": 5, "metadata_filter": {"group": [1, 3]}},
            {"queries": spectra, "k": 4, "space": "spectrum"},
            {"queries": spectra, "k": 3, "space": "spectrum", "metadata_filter": {"even": True}},
        ]
        for case in cases:
            got = pg.search(model_version="m:1", **case)
            want = lite.search(model_version="m:1", **case)
            for g, w in zip(got, want, strict=True):
                assert [h.id for h in g] == [h.id for h in w], case.get("space", "embedding")
                np.testing.assert_allclose([h.score for h in g], [h.score for h in w], atol=1e-5)
                assert [h.metadata for h in g] == [h.metadata for h in w]
    finally:
        pg.close()
        lite.close()


def test_hnsw_cosine_index_serves_embedding_search_with_high_recall(url):
    n, dim, k = 3000, 16, 10
    rng = np.random.default_rng(11)
    matrix = rng.normal(size=(n, dim)).astype(np.float32)
    store = open_store(url, latent_dim=dim, seq_len=SEQ)
    try:
        entries = [
            LibraryEntry(
                id=f"r{i:05d}",
                spectrum=np.zeros(1),
                wavelengths=np.zeros(1),
                metadata={},
                embedding=matrix[i],
                processed=np.zeros(SEQ, np.float32),
                model_version="m:1",
            )
            for i in range(n)
        ]
        for start in range(0, n, 1000):
            store.put(entries[start : start + 1000], model_version="m:1")
        with psycopg.connect(url) as conn:
            (indexdef,) = conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexdef LIKE '%%hnsw%%'",
                (ENTRIES,),
            ).fetchone()
            assert "vector_cosine_ops" in indexdef
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    f"EXPLAIN SELECT id FROM {ENTRIES} ORDER BY embedding_v <=> %s::vector "
                    "LIMIT 10",
                    (str(matrix[0].tolist()),),
                ).fetchall()
            )
            assert "hnsw" in plan, plan  # the planner picks the index on a library this size
        queries = rng.normal(size=(20, dim)).astype(np.float32)
        unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
        exact = np.argsort(-(unit @ (queries / np.linalg.norm(queries, axis=1)[:, None]).T).T)
        results = store.search(queries, k=k, model_version="m:1")
        recall = np.mean(
            [
                len({h.id for h in hits} & {f"r{j:05d}" for j in exact[q, :k]}) / k
                for q, hits in enumerate(results)
            ]
        )
        assert recall >= 0.95, recall
        assert all(len(hits) == k for hits in results)
    finally:
        store.close()


def test_new_model_dims_migrate_the_vector_columns_and_reembed(url):
    old = open_store(url, latent_dim=DIM, seq_len=SEQ)
    entries = _entries(5, seed=2)
    old.put(entries, model_version="m:1")
    old.close()

    new_dim = 12
    new = open_store(url, latent_dim=new_dim, seq_len=SEQ)
    try:
        assert new.model_version == "m:1"
        got = new.get(entries[0].id)  # originals and old embeddings still readable, bit-exact
        assert np.array_equal(got.spectrum, entries[0].spectrum)
        np.testing.assert_array_equal(got.embedding, entries[0].embedding)
        with pytest.raises(ModelVersionMismatchError):
            new.search(np.ones((1, new_dim)), k=1, model_version="m:2")

        def embed_batch(batch):
            emb = np.stack([np.resize(e.spectrum, new_dim) for e in batch]).astype(np.float32)
            return emb, np.stack([e.processed for e in batch])

        assert new.reembed(embed_batch, model_version="m:2", batch_size=2) == 5
        assert new.model_version == "m:2"
        query = np.resize(entries[3].spectrum, new_dim)[None]
        assert new.search(query, k=1, model_version="m:2")[0][0].id == entries[3].id
        with psycopg.connect(url) as conn:
            (typmod,) = conn.execute(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attname = 'embedding_v'",
                (ENTRIES,),
            ).fetchone()
            assert typmod == new_dim
    finally:
        new.close()


def test_replica_started_before_its_database_waits_for_it():
    """Compose/Kubernetes start the service and the database together: the store retries."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver

    workdir = Path(tempfile.mkdtemp(prefix="wavemae-pg-late-"))
    pgdata = workdir / "pgdata"
    pgdata.mkdir()
    opened: list[object] = []
    errors: list[Exception] = []

    def open_early():
        try:  # pgserver's socket lives in the data folder: the URL is known before it starts
            opened.append(
                PostgresLibraryStore(
                    f"postgresql://postgres@/postgres?host={pgdata}",
                    latent_dim=DIM,
                    seq_len=SEQ,
                    connect_timeout_s=30,
                )
            )
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=open_early)
    thread.start()
    time.sleep(1.5)
    assert thread.is_alive() and not opened  # still waiting, not failed
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        thread.join(30)
        assert errors == [] and len(opened) == 1
        opened[0].put(_entries(2), model_version="m:1")
        assert opened[0].count() == 2
        opened[0].close()
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def test_unreachable_database_raises_library_unavailable(tmp_path):
    started = time.monotonic()
    with pytest.raises(LibraryUnavailableError, match="did not accept connections"):
        PostgresLibraryStore(
            f"postgresql://postgres@/postgres?host={tmp_path}",  # no server on this socket
            latent_dim=DIM,
            seq_len=SEQ,
            connect_timeout_s=1.0,
        )
    assert time.monotonic() - started < 10


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from wavemae_service.library import LibraryEntry, open_store

    store = open_store(sys.argv[1], latent_dim=8, seq_len=16)
    rng = np.random.default_rng(0)
    print("ready", flush=True)
    for batch in range(10_000):
        store.put(
            [
                LibraryEntry(
                    id=f"b{batch:05d}-{i:03d}",
                    spectrum=rng.normal(size=2000),
                    wavelengths=None,
                    metadata={"batch": batch},
                    embedding=rng.normal(size=8).astype(np.float32),
                    processed=rng.normal(size=16).astype(np.float32),
                    model_version="m:1",
                )
                for i in range(200)
            ],
            model_version="m:1",
        )
        print(batch, flush=True)
    """
)


def test_replica_killed_mid_write_leaves_whole_batches_only(url):
    """kill -9 a writing process in the middle of a write transaction, three times: every batch
    is there in full or not at all, and every acknowledged batch is there."""
    writer_url = url + "&application_name=wavemae-killed-writer"
    mid_write_kills = 0
    acknowledged: list[int] = []
    with psycopg.connect(url, autocommit=True) as watcher:
        for delay in (0.2, 0.5, 0.8):
            proc = subprocess.Popen(
                [sys.executable, "-c", _WRITER, writer_url],
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            try:
                assert proc.stdout.readline().strip() == "ready"
                time.sleep(delay)
                # Kill while its transaction has written rows (an xid is assigned) but not
                # committed them.
                for _ in range(500):
                    writing = watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                        "AND backend_xid IS NOT NULL",
                        ("wavemae-killed-writer",),
                    ).fetchone()[0]
                    if writing:
                        break
                    time.sleep(0.002)
                os.kill(proc.pid, signal.SIGKILL)
                mid_write_kills += bool(writing)
                acknowledged += [int(line) for line in proc.stdout.read().split()]
            finally:
                proc.kill()
                proc.wait()
        for _ in range(50):  # the server notices the dead connections within moments
            open_transactions = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                ("wavemae-killed-writer",),
            ).fetchone()[0]
            if open_transactions == 0:
                break
            time.sleep(0.1)
        sizes = watcher.execute(
            f"SELECT metadata->>'batch', count(*) FROM {ENTRIES} GROUP BY 1"
        ).fetchall()
    assert mid_write_kills == 3
    assert open_transactions == 0
    assert sizes, "no batch was committed before the kills: raise the delays"
    assert {count for _, count in sizes} == {200}, sizes
    # Every acknowledged batch survived (each run rewrites the same ids, so by batch number).
    assert {int(b) for b, _ in sizes} >= set(acknowledged)

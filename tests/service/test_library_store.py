"""The library-store contract, run against every backend (SQLite file; PostgreSQL + pgvector).

The postgres branch needs the ``postgres_url`` session fixture (tests/conftest.py) and is marked
``postgres``. Every test builds its own small library with known answers.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from wavemae_service.library import (
    DimensionMismatchError,
    EntryNotFoundError,
    LibraryEntry,
    ModelVersionMismatchError,
    open_store,
)

LATENT_DIM = 8
SEQ_LEN = 16
V1 = "tiny:1"
V2 = "tiny:2"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_target(request, tmp_path):
    """A fresh, empty library location for the backend under test."""
    if request.param == "sqlite":
        return str(tmp_path / "library.sqlite3")
    url = request.getfixturevalue("postgres_url")
    # A fresh schema per test: drop whatever the previous test left.
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for (table,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall():
            conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    return url


@pytest.fixture
def store(store_target):
    s = open_store(store_target, latent_dim=LATENT_DIM, seq_len=SEQ_LEN)
    yield s
    s.close()


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def make_entry(
    entry_id: str,
    seed: int,
    *,
    version: str = V1,
    metadata: dict | None = None,
    n_raw: int = 20,
    with_wavelengths: bool = True,
) -> LibraryEntry:
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=n_raw) * 1e3 + 1 / 3  # values whose float64 bits must survive
    return LibraryEntry(
        id=entry_id,
        spectrum=raw,
        wavelengths=np.linspace(1000.0, 2500.0, n_raw) + 0.1234567891 if with_wavelengths else None,
        metadata=metadata if metadata is not None else {"seed": seed},
        embedding=_unit(rng.normal(size=LATENT_DIM)),
        processed=rng.normal(size=SEQ_LEN).astype(np.float32),
        model_version=version,
    )


def test_put_get_roundtrip_keeps_original_spectrum_bit_exact(store):
    entry = make_entry("a", 1, metadata={"name": "quartz", "tags": ["x", 1], "n": 2.5})
    store.put([entry], model_version=V1)
    got = store.get("a")
    assert np.array_equal(got.spectrum, entry.spectrum)  # float64 bits unchanged
    assert np.array_equal(got.wavelengths, entry.wavelengths)
    assert got.metadata == {"name": "quartz", "tags": ["x", 1], "n": 2.5}
    np.testing.assert_allclose(got.embedding, entry.embedding, atol=1e-7)
    np.testing.assert_allclose(got.processed, entry.processed, atol=1e-7)
    assert got.model_version == V1
    assert got.created_at > 0
    assert store.model_version == V1


def test_entry_without_wavelengths_roundtrips(store):
    store.put([make_entry("g", 3, with_wavelengths=False, n_raw=SEQ_LEN)], model_version=V1)
    assert store.get("g").wavelengths is None


def test_put_replaces_by_id_and_count(store):
    store.put([make_entry("a", 1), make_entry("b", 2)], model_version=V1)
    store.put([make_entry("a", 3, metadata={"v": 2})], model_version=V1)
    assert store.count() == 2
    assert store.get("a").metadata == {"v": 2}


def test_missing_ids_raise_not_found(store):
    with pytest.raises(EntryNotFoundError):
        store.get("nope")
    with pytest.raises(EntryNotFoundError):
        store.delete("nope")


def test_delete_removes_from_reads_and_search(store):
    store.put([make_entry(f"e{i}", i) for i in range(5)], model_version=V1)
    target = store.get("e3")
    store.delete("e3")
    assert store.count() == 4
    with pytest.raises(EntryNotFoundError):
        store.get("e3")
    hits = store.search(target.embedding[None], k=5, model_version=V1)[0]
    assert "e3" not in [h.id for h in hits]
    assert len(hits) == 4


def test_batch_write_is_atomic(store):
    store.put([make_entry("keep", 1)], model_version=V1)
    bad = make_entry("bad", 2)
    bad = LibraryEntry(
        id="bad",
        spectrum=bad.spectrum,
        wavelengths=bad.wavelengths,
        metadata={},
        embedding=np.ones(LATENT_DIM + 1, np.float32),  # wrong width
        processed=bad.processed,
        model_version=V1,
    )
    with pytest.raises(DimensionMismatchError):
        store.put([make_entry("good", 3), bad], model_version=V1)
    assert store.count() == 1
    with pytest.raises(EntryNotFoundError):
        store.get("good")


def test_paging_is_ordered_by_id_and_filterable(store):
    store.put(
        [
            make_entry(f"id{i:02d}", i, metadata={"kind": "odd" if i % 2 else "even"})
            for i in range(10)
        ],
        model_version=V1,
    )
    page1 = store.list_entries(offset=0, limit=4)
    page2 = store.list_entries(offset=4, limit=4)
    page3 = store.list_entries(offset=8, limit=4)
    assert [e.id for e in page1 + page2 + page3] == [f"id{i:02d}" for i in range(10)]
    odd = store.list_entries(offset=1, limit=10, metadata_filter={"kind": "odd"})
    assert [e.id for e in odd] == ["id03", "id05", "id07", "id09"]
    assert store.count({"kind": "even"}) == 5


def test_search_finds_known_neighbours_with_cosine_scores(store):
    rng = np.random.default_rng(0)
    base = [_unit(rng.normal(size=LATENT_DIM)) for _ in range(20)]
    entries = [
        LibraryEntry(
            id=f"ref{i}",
            spectrum=rng.normal(size=SEQ_LEN),
            wavelengths=None,
            metadata={"group": i % 3},
            embedding=v,
            processed=rng.normal(size=SEQ_LEN).astype(np.float32),
            model_version=V1,
        )
        for i, v in enumerate(base)
    ]
    store.put(entries, model_version=V1)
    # Query: a slightly perturbed copy of ref7 (must rank first) and exact ref12.
    queries = np.stack([base[7] + 0.01 * rng.normal(size=LATENT_DIM), base[12]])
    results = store.search(queries, k=3, model_version=V1)
    assert [r[0].id for r in results] == ["ref7", "ref12"]
    assert results[1][0].score == pytest.approx(1.0, abs=1e-5)
    matrix = np.stack(base)
    expected = np.argsort(-(matrix @ _unit(queries[0])))[:3]
    assert [h.id for h in results[0]] == [f"ref{j}" for j in expected]
    scores = [h.score for h in results[0]]
    assert scores == sorted(scores, reverse=True)
    assert results[0][0].metadata == {"group": 7 % 3}
    # Metadata filter: only group 0 entries may answer.
    filtered = store.search(queries[:1], k=100, model_version=V1, metadata_filter={"group": 0})[0]
    assert sorted(h.id for h in filtered) == sorted(f"ref{i}" for i in range(20) if i % 3 == 0)
    any_of = store.search(queries[:1], k=100, model_version=V1, metadata_filter={"group": [1, 2]})
    assert len(any_of[0]) == sum(1 for i in range(20) if i % 3)


def test_spectrum_space_searches_processed_spectra(store):
    rng = np.random.default_rng(1)
    spectra = rng.normal(size=(6, SEQ_LEN)).astype(np.float32)
    store.put(
        [
            LibraryEntry(
                id=f"s{i}",
                spectrum=spectra[i],
                wavelengths=None,
                metadata={},
                embedding=_unit(np.ones(LATENT_DIM)),  # embeddings all equal: only spectra differ
                processed=spectra[i],
                model_version=V1,
            )
            for i in range(6)
        ],
        model_version=V1,
    )
    hits = store.search(3.0 * spectra[4:5], k=2, model_version=V1, space="spectrum")[0]
    assert hits[0].id == "s4"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(DimensionMismatchError):
        store.search(spectra[:1, : LATENT_DIM + 1], k=1, model_version=V1, space="spectrum")


def test_vectors_return_stored_arrays_by_id_and_analyses_persist(store, store_target):
    entries = [make_entry(f"v{i}", i, metadata={"odd": i % 2}) for i in (3, 1, 2, 0)]
    store.put(entries, model_version=V1)
    by_id = {e.id: e for e in entries}
    spectra = store.vectors("spectrum", model_version=V1)
    assert spectra.ids == ["v0", "v1", "v2", "v3"]
    # processed spectra come back as stored (not normalised): HQI needs their scale
    np.testing.assert_array_equal(
        spectra.matrix, np.stack([by_id[i].processed for i in spectra.ids])
    )
    odd = store.vectors("embedding", model_version=V1, metadata_filter={"odd": 1})
    assert odd.ids == ["v1", "v3"] and odd.metadata == [{"odd": 1}, {"odd": 1}]
    np.testing.assert_allclose(
        odd.matrix, np.stack([by_id[i].embedding for i in odd.ids]), atol=1e-6
    )
    with pytest.raises(ModelVersionMismatchError):
        store.vectors("embedding", model_version=V2)

    assert store.load_analysis("clusters") is None
    payload = {"k": 2, "labels": {"v0": 0, "v1": 1}, "centroids": [[0.5, 0.25]]}
    store.save_analysis("clusters", V1, payload)
    store.save_analysis("clusters", V1, {**payload, "k": 3})  # replaced, not added
    # a map keeps its fitted transform (bytes) next to its payload, in the same write
    transform = bytes(range(256)) * 1000
    fit_a = {"transform": {"digest": "a"}}
    store.save_analysis("map:umap", V1, fit_a, blob=transform)
    # a payload updated in place (points placed) keeps the blob, while it is still fit "a"
    assert store.update_analysis("map:umap", V1, {**fit_a, "placed": 1}, digest="a")
    assert not store.update_analysis("map:umap", V1, {"transform": {"digest": "z"}}, digest="z")
    store.close()
    reopened = open_store(store_target, latent_dim=LATENT_DIM, seq_len=SEQ_LEN)
    try:
        assert reopened.load_analysis("clusters") == (V1, {**payload, "k": 3})
        assert reopened.load_analysis_blob("clusters") is None
        assert reopened.load_analysis("map:umap") == (V1, {**fit_a, "placed": 1})
        assert reopened.load_analysis_blob("map:umap") == transform
        assert reopened.load_analysis_with_blob("map:umap") == (
            V1,
            {**fit_a, "placed": 1},
            transform,
        )
        assert reopened.load_analysis_with_blob("clusters") == (V1, {**payload, "k": 3}, None)
        assert reopened.load_analysis_with_blob("map:tsne") is None
        fit_b = {"transform": {"digest": "b"}}
        reopened.save_analysis("map:umap", V1, fit_b)  # a refit without one
        assert reopened.load_analysis_blob("map:umap") is None
        # a payload derived from fit "a" no longer replaces the refit's
        assert not reopened.update_analysis("map:umap", V1, {**fit_a, "placed": 2}, digest="a")
        assert reopened.load_analysis("map:umap") == (V1, fit_b)
    finally:
        reopened.close()


def test_other_model_version_is_refused_until_reembedded(store):
    store.put([make_entry(f"e{i}", i) for i in range(7)], model_version=V1)
    with pytest.raises(ModelVersionMismatchError):
        store.search(np.ones((1, LATENT_DIM)), k=1, model_version=V2)
    with pytest.raises(ModelVersionMismatchError):
        store.put([make_entry("new", 99, version=V2)], model_version=V2)
    originals = {e.id: store.get(e.id) for e in store.list_entries(limit=100)}

    calls = []

    def embed_batch(batch):
        calls.append(len(batch))
        # New "model": embedding = first LATENT_DIM raw values, normalised.
        emb = np.stack([_unit(e.spectrum[:LATENT_DIM]) for e in batch])
        proc = np.stack([e.spectrum[:SEQ_LEN].astype(np.float32) for e in batch])
        return emb, proc

    assert store.reembed(embed_batch, model_version=V2, batch_size=3) == 7
    assert calls == [3, 3, 1]
    assert store.model_version == V2
    for entry_id, old in originals.items():
        new = store.get(entry_id)
        assert new.model_version == V2
        assert np.array_equal(new.spectrum, old.spectrum)  # originals untouched
        assert np.array_equal(new.wavelengths, old.wavelengths)
        assert new.metadata == old.metadata
        np.testing.assert_allclose(new.embedding, _unit(old.spectrum[:LATENT_DIM]), atol=1e-6)
    query = _unit(originals["e5"].spectrum[:LATENT_DIM])[None]
    assert store.search(query, k=1, model_version=V2)[0][0].id == "e5"
    with pytest.raises(ModelVersionMismatchError):
        store.search(query, k=1, model_version=V1)


def test_empty_library_adopts_any_version(store):
    assert store.model_version is None
    assert store.search(np.ones((2, LATENT_DIM)), k=3, model_version=V2) == [[], []]
    store.put([make_entry("a", 1, version=V2)], model_version=V2)
    assert store.model_version == V2


def test_reopen_sees_committed_entries(store_target):
    first = open_store(store_target, latent_dim=LATENT_DIM, seq_len=SEQ_LEN)
    entry = make_entry("durable", 5)
    first.put([entry], model_version=V1)
    first.close()
    second = open_store(store_target, latent_dim=LATENT_DIM, seq_len=SEQ_LEN)
    try:
        assert second.model_version == V1
        assert np.array_equal(second.get("durable").spectrum, entry.spectrum)
        assert second.search(entry.embedding[None], k=1, model_version=V1)[0][0].id == "durable"
    finally:
        second.close()


def test_concurrent_writers_lose_nothing(store):
    def writer(start: int) -> None:
        for i in range(start, start + 10):
            store.put([make_entry(f"w{i:03d}", i)], model_version=V1)

    threads = [threading.Thread(target=writer, args=(t * 10,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count() == 40
    assert [e.id for e in store.list_entries(limit=100)] == [f"w{i:03d}" for i in range(40)]


def test_the_unit_and_range_of_each_entrys_axis_are_kept(store):
    from dataclasses import replace

    nir = replace(make_entry("nir", 1), unit="nm")
    mid_ir = replace(make_entry("mid", 2), wavelengths=np.linspace(4000.0, 400.0, 20), unit="cm-1")
    unknown = make_entry("plain", 3)  # unit not known
    store.put([nir, mid_ir, unknown], model_version=V1)
    assert [store.get(i).unit for i in ("nir", "mid", "plain")] == ["nm", "cm-1", None]
    rows = store.vectors("spectrum", model_version=V1, with_axes=True)
    assert rows.ids == ["mid", "nir", "plain"]
    assert rows.units == ["cm-1", "nm", None]
    np.testing.assert_allclose(rows.axes[0], [400.0, 4000.0])
    np.testing.assert_allclose(rows.axes[1], [1000.1234567891, 2500.1234567891])
    # a re-put changes them; a filter and without with_axes work as before
    store.put([replace(nir, unit="um", wavelengths=nir.wavelengths / 1000.0)], model_version=V1)
    rows = store.vectors("spectrum", model_version=V1, with_axes=True, metadata_filter={"seed": 1})
    assert rows.units == ["um"] and rows.axes[0, 1] == pytest.approx(2.5001234567891)
    assert store.vectors("spectrum", model_version=V1).axes is None


def test_a_sqlite_library_written_before_units_opens_with_units_unknown(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with open_store(str(path), latent_dim=LATENT_DIM, seq_len=SEQ_LEN) as s:
        s.put([make_entry("a", 1)], model_version=V1)
    conn = sqlite3.connect(path)  # the schema of the previous release: no unit column
    conn.execute("ALTER TABLE entries DROP COLUMN unit")
    conn.commit()
    conn.close()
    with open_store(str(path), latent_dim=LATENT_DIM, seq_len=SEQ_LEN) as s:
        assert s.get("a").unit is None
        assert s.vectors("spectrum", model_version=V1, with_axes=True).units == [None]
        s.put([make_entry("b", 2)], model_version=V1)
        assert s.count() == 2

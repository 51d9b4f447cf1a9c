"""HQI search, clusters and maps through a real uvicorn server, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools

import httpx
import numpy as np
import pytest
from service_helpers import SEQ_LEN, spectra_like

from wavemae_service.client import WaveMAEClient, WaveMAEError

GRID = np.linspace(1100.0, 1700.0, SEQ_LEN)  # the tiny model's grid


def _groups(per_group: int = 8, seed: int = 3) -> tuple[np.ndarray, list[str]]:
    """Three families of near-duplicate spectra: (3 * per_group, SEQ_LEN) and their kinds."""
    rng = np.random.default_rng(seed)
    bases = spectra_like(3, seed=seed)
    rows, kinds = [], []
    for g, base in enumerate(bases):
        for _ in range(per_group):
            rows.append(base * rng.uniform(0.9, 1.1) + 0.002 * rng.normal(size=SEQ_LEN))
            kinds.append("abc"[g])
    return np.array(rows), kinds


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(request, start_server):
    """A server with read and admin keys, on a fresh SQLite file or a fresh PostgreSQL schema."""
    settings = {"api_keys": "reader", "admin_keys": "admin"}
    if request.param == "postgres":
        import psycopg

        url = request.getfixturevalue("postgres_url")
        with psycopg.connect(url, autocommit=True) as conn:
            for (table,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            ).fetchall():
                conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
        settings["library_url"] = url
    return start_server(**settings)


@pytest.fixture(scope="module")
def admin(server):
    with WaveMAEClient(server.url, api_key="admin", timeout=120) as client:
        x, kinds = _groups()
        client.put_many(
            [
                {"id": f"s{i:02d}", "spectrum": row, "metadata": {"kind": kind, "n": i}}
                for i, (row, kind) in enumerate(zip(x, kinds, strict=True))
            ]
        )
        yield client


@pytest.fixture(scope="module")
def reader(server, admin):
    with WaveMAEClient(server.url, api_key="reader", timeout=120) as client:
        yield client


def test_spectrum_space_scores_hqi_with_gaps(reader):
    x, _ = _groups()
    # the same sample with another baseline and path length still scores HQI 100
    query = 2.5 * x[5] + 0.3
    hits = reader.similar(query[None], k=4, space="spectrum", preprocessing="none")[0]
    assert hits[0]["id"] == "s05"
    assert hits[0]["score"] == pytest.approx(100.0, abs=1e-3)
    for hit, following in itertools.pairwise(hits):
        assert hit["gap"] == pytest.approx(hit["score"] - following["score"], abs=1e-9)
    assert all(np.isfinite(h["score"]) for h in hits)
    # the default (2nd derivative) finds the same family first; r2 scale reads 0-100
    default = reader.similar(query[None], k=8, space="spectrum", scale="r2")[0]
    assert {h["id"] for h in default} <= {f"s{i:02d}" for i in range(8)}
    assert all(0.0 <= h["score"] <= 100.0 for h in default)
    # a flat query correlates with nothing: refused, naming it (never NaN scores)
    with pytest.raises(WaveMAEError) as err:
        reader.similar(np.vstack([query, np.full(SEQ_LEN, 3.0)]), k=2, space="spectrum")
    assert err.value.status == 422 and err.value.field == "spectra[1]"
    # embedding hits carry the gap between returned hits; the last one's is unknown
    nearest = reader.similar(query[None], k=3)[0]
    assert nearest[0]["gap"] == pytest.approx(nearest[0]["score"] - nearest[1]["score"])
    assert nearest[-1]["gap"] is None


def test_spectrum_space_excluded_region_and_bad_options(reader):
    x, _ = _groups()
    hits = reader.similar(
        x[:1], k=1, space="spectrum", preprocessing="none", exclude=[(1100.0, 1300.0)]
    )[0]
    assert hits[0]["id"] == "s00" and hits[0]["score"] == pytest.approx(100.0, abs=1e-3)
    for options, field in (
        ({"window": 8}, "window"),
        ({"window": 99}, "window"),
        ({"exclude": [(1100.0, 1699.0)]}, "exclude"),
        ({"exclude": [(1500.0, 1400.0)]}, "exclude"),
    ):
        with pytest.raises(WaveMAEError) as err:
            reader.similar(x[:1], space="spectrum", **options)
        assert err.value.status == 422, options
        assert err.value.field == field, options


def _post(server, path: str, **kwargs) -> httpx.Response:
    headers = {"Authorization": "Bearer reader", **kwargs.pop("headers", {})}
    return httpx.post(server.url + path, headers=headers, timeout=120, **kwargs)


def test_include_cluster_needs_a_clustering_of_the_served_model(reader, server):
    # Runs before any test of this module clusters the library.
    x, _ = _groups()
    with pytest.raises(WaveMAEError) as err:
        reader.embed(x[:2], include_cluster=True)
    assert err.value.status == 409 and err.value.type == "clusters_not_computed"
    assert err.value.field == "include_cluster" and "POST /library/clusters" in str(err.value)
    with pytest.raises(WaveMAEError) as err:
        reader.similar(x[:2], k=2, include_cluster=True)
    assert err.value.status == 409 and err.value.type == "clusters_not_computed"
    # without the option nothing changes
    assert reader.embed(x[:2]).shape == (2, 16)


@pytest.mark.parametrize("method", ["kmeans", "vmf"])
def test_queries_get_the_cluster_of_their_family(reader, admin, server, method):
    x, kinds = _groups()
    admin.cluster(method=method, k=3)
    labels = reader.clusters(include_labels=True)["labels"]
    family_label = {kinds[i]: labels[f"s{i:02d}"] for i in (0, 8, 16)}
    rng = np.random.default_rng(7)
    queries = x[[1, 9, 17, 2]] * 1.03 + 0.001 * rng.normal(size=(4, SEQ_LEN))
    expected = [family_label[k] for k in "abca"]

    embeddings, clusters = reader.embed(queries, include_cluster=True)
    np.testing.assert_allclose(embeddings, reader.embed(queries), atol=1e-6)
    assert clusters["labels"] == expected
    assert clusters["method"] == method and clusters["k"] == 3
    if method == "kmeans":  # the cosine to the family's centroid: near copies sit on it
        assert clusters["score"] == "cosine"
        assert all(0.9 < s <= 1.0 for s in clusters["scores"])
    else:  # the posterior of the family's component: near copies are certain
        assert clusters["score"] == "posterior"
        assert all(0.9 < s <= 1.0 for s in clusters["scores"])

    # /similar: the same assignment in both spaces and from embeddings; the hits unchanged
    plain = reader.similar(queries, k=3)
    hits, by_spectra = reader.similar(queries, k=3, include_cluster=True)
    assert [[h["id"] for h in q] for q in hits] == [[h["id"] for h in q] for q in plain]
    _, by_embeddings = reader.similar(embeddings=embeddings, k=3, include_cluster=True)
    _, by_hqi = reader.similar(queries, k=3, space="spectrum", include_cluster=True)
    for answer in (by_spectra, by_embeddings, by_hqi):
        assert answer["labels"] == expected
        np.testing.assert_allclose(answer["scores"], clusters["scores"], atol=1e-4)

    # a file upload asks with the query parameter
    header = "id," + ",".join(f"{w:g}" for w in GRID)
    rows = [f"q{i}," + ",".join(f"{v:.8g}" for v in row) for i, row in enumerate(queries)]
    csv = ("\n".join([header, *rows]) + "\n").encode()
    upload = _post(
        server,
        "/embed?include_cluster=true",
        content=csv,
        headers={"Content-Type": "text/csv"},
    )
    assert upload.status_code == 200, upload.text
    assert upload.json()["ids"] == ["q0", "q1", "q2", "q3"]
    assert upload.json()["clusters"]["labels"] == expected
    found = _post(
        server, "/similar?k=2&include_cluster=1", content=csv, headers={"Content-Type": "text/csv"}
    )
    assert found.status_code == 200 and found.json()["clusters"]["labels"] == expected


def test_include_cluster_refuses_what_it_cannot_answer(reader, admin, server):
    x, _ = _groups()
    admin.cluster(method="kmeans", k=3)
    body = {"spectra": x[:1].tolist(), "include_cluster": True}
    npy = _post(server, "/embed", json=body, headers={"Accept": "application/x-npy"})
    assert npy.status_code == 422 and npy.json()["error"]["field"] == "include_cluster"
    maybe = _post(server, "/embed?include_cluster=maybe", json={"spectra": x[:1].tolist()})
    assert maybe.status_code == 422 and maybe.json()["error"]["field"] == "include_cluster"
    stringly = _post(server, "/similar", json={**body, "include_cluster": "yes"})
    assert stringly.status_code == 422
    reconstruct = _post(server, "/reconstruct", json=body)  # not an option of /reconstruct
    assert reconstruct.status_code == 422
    schema = httpx.get(server.url + "/openapi.json", timeout=30).json()
    for path in ("/embed", "/similar"):
        assert "409" in schema["paths"][path]["post"]["responses"]

    # a clustering stored from another model's embeddings is never used
    from wavemae_service.library import open_store

    stored = reader.clusters(include_labels=True)
    store = open_store(server.env["WAVEMAE_LIBRARY_URL"], latent_dim=16, seq_len=SEQ_LEN)
    try:
        store.save_analysis(
            "clusters", "older-model:1", {**stored, "model_version": "older-model:1"}
        )
    finally:
        store.close()
    with pytest.raises(WaveMAEError) as err:
        reader.embed(x[:1], include_cluster=True)
    assert err.value.status == 409 and err.value.type == "clusters_not_computed"
    assert "older-model:1" in str(err.value)
    admin.cluster(method="kmeans", k=3)
    assert reader.embed(x[:1], include_cluster=True)[1]["k"] == 3


@pytest.mark.parametrize("method", ["kmeans", "vmf"])
def test_clusters_recover_the_families_and_need_the_admin_key(reader, admin, method):
    with pytest.raises(WaveMAEError) as err:
        reader.cluster(method=method, k=3)
    assert err.value.status == 403
    job = admin.cluster(method=method, k=3)
    assert job["state"] == "done" and job["result"]["k"] == 3
    stored = reader.clusters(include_labels=True)
    assert stored["method"] == method and sorted(stored["sizes"]) == [8, 8, 8]
    assert np.allclose(np.linalg.norm(stored["centroids"], axis=1), 1.0)
    labels = stored["labels"]
    for family in range(3):
        assert len({labels[f"s{i:02d}"] for i in range(8 * family, 8 * family + 8)}) == 1


def test_auto_k_reports_its_criterion_and_bad_requests_are_refused(admin, reader):
    job = admin.cluster(method="vmf", k="auto")
    criterion = job["result"]["criterion"]
    assert criterion["name"] == "bic"
    values = criterion["values"]
    assert job["result"]["k"] == int(min(values, key=values.get))
    with pytest.raises(WaveMAEError) as err:
        admin.cluster(k=25)
    assert err.value.status == 422 and err.value.field == "k"
    with pytest.raises(WaveMAEError) as err:
        admin.cluster(filter={"kind": "nothing"})
    assert err.value.status == 422
    with pytest.raises(WaveMAEError) as err:
        reader.job("no-such-job")
    assert err.value.status == 404


def test_map_is_stored_paged_stable_and_places_new_entries(admin, reader, server):
    with pytest.raises(WaveMAEError) as err:
        reader.map("tsne")
    assert err.value.status == 404  # not fitted yet
    admin.cluster(method="kmeans", k=3)
    job = admin.fit_map("tsne")
    assert job["state"] == "done" and job["progress"] == 1.0
    first = reader.map("tsne", limit=10, fields=["kind"])
    assert first["count"] == 24 and len(first["items"]) == 10
    assert [e["id"] for e in first["items"]] == [f"s{i:02d}" for i in range(10)]
    entry = first["items"][0]
    assert np.isfinite([entry["x"], entry["y"]]).all()
    assert entry["metadata"] == {"kind": "a"} and entry["cluster"] is not None
    again = reader.map("tsne", limit=10, fields=["kind"])
    assert again["items"] == first["items"]
    tail = reader.map("tsne", offset=20, limit=10)
    assert [e["id"] for e in tail["items"]] == ["s20", "s21", "s22", "s23"]
    assert tail["items"][0]["metadata"] == {"kind": "c", "n": 20}  # all metadata by default

    x, _ = _groups()
    admin.put("s99", x[0] * 1.01, metadata={"kind": "a"})
    placed = reader.map("tsne", fields=["kind"])
    assert placed["count"] == 25 and placed["unplaced"] == 0
    by_id = {e["id"]: e for e in placed["items"]}
    assert np.isfinite([by_id["s99"]["x"], by_id["s99"]["y"]]).all()
    assert [by_id[e["id"]] for e in first["items"]] == first["items"]  # old points stay
    with pytest.raises(WaveMAEError) as err:
        reader.map("pca")
    assert err.value.status == 422 and err.value.field == "method"


def test_query_embeddings_are_placed_on_the_stored_map(admin, reader, server, start_server):
    x, kinds = _groups()
    query = reader.embed(x[16:17] * 1.02)  # a near copy of a family-"c" sample
    with httpx.Client(
        base_url=server.url, headers={"Authorization": "Bearer reader"}, timeout=120
    ) as http:

        def place(body: dict) -> httpx.Response:
            return http.post("/library/map/place", json=body)

        missing = place({"method": "umap", "embeddings": query.tolist()})
        assert (
            missing.status_code == 404 and "POST /library/map" in missing.json()["error"]["message"]
        )
        admin.fit_map("tsne")
        before = reader.map("tsne")
        answer = place({"method": "tsne", "embeddings": query.tolist()})
        assert answer.status_code == 200, answer.text
        (point,) = answer.json()["points"]
        assert np.isfinite([point["x"], point["y"]]).all()
        # it lands among its own family, and placing moves and stores nothing
        xy = {e["id"]: (e["x"], e["y"]) for e in before["items"]}
        centre = {
            kind: np.mean([xy[f"s{i:02d}"] for i, k in enumerate(kinds) if k == kind], axis=0)
            for kind in "abc"
        }
        spot = np.array([point["x"], point["y"]])
        assert min(centre, key=lambda k: np.linalg.norm(centre[k] - spot)) == "c"
        assert reader.map("tsne")["items"] == before["items"]
        short = place({"method": "tsne", "embeddings": [[0.1, 0.2, 0.3]]})
        assert short.status_code == 422 and short.json()["error"]["field"] == "embeddings"
        zero = place({"method": "tsne", "embeddings": [[0.0] * query.shape[1]]})
        assert zero.status_code == 422 and "all zeros" in zero.json()["error"]["message"]
        schema = http.get("/openapi.json").json()
        assert "/library/map/place" in schema["paths"]
        assert "MapPlaceRequest" in schema["components"]["schemas"]  # its body $ref resolves
    # another process on the same library has the stored map but not its fitted transform
    other = start_server(api_keys="reader", library_url=server.env["WAVEMAE_LIBRARY_URL"])
    refused = httpx.post(
        other.url + "/library/map/place",
        json={"method": "tsne", "embeddings": query.tolist()},
        headers={"Authorization": "Bearer reader"},
        timeout=60,
    )
    assert refused.status_code == 409 and refused.json()["error"]["type"] == "map_not_loaded"
    assert "POST /library/map again" in refused.json()["error"]["message"]

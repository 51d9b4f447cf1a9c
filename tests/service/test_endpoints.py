"""Every endpoint of a real server equals in-process ONNX Runtime on the same preprocessed input."""

from __future__ import annotations

import numpy as np
import pytest
from service_helpers import LATENT_DIM, SEQ_LEN, spectra_like

from wavemae_service.client import WaveMAEClient, WaveMAEError

TOL = 1e-5


@pytest.fixture
def client(server):
    with WaveMAEClient(server.url) as c:
        yield c


def test_health_ready_and_model(http):
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model"] == "wavemae-tiny:test-0"
    info = http.get("/model").json()
    assert info["seq_len"] == SEQ_LEN and info["latent_dim"] == LATENT_DIM
    assert info["engine"]["providers"] == ["CPUExecutionProvider"]
    assert info["batching"]["max_batch_size"] == 64
    assert info["wavelength_range"] == pytest.approx([1100.0, 1700.0])


def test_embed_json_equals_in_process(client, reference):
    x = spectra_like(5, seed=1)
    got = client.embed(x)
    np.testing.assert_allclose(got, reference.embed(x), atol=TOL)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_embed_binary_in_and_out(client, reference):
    x = spectra_like(7, seed=2).astype(np.float32)
    got = client.embed(x, binary=True)
    assert got.dtype == np.float32 and got.shape == (7, LATENT_DIM)
    np.testing.assert_allclose(got, reference.embed(x.astype(np.float64)), atol=TOL)


def test_embed_resamples_a_caller_grid(client, reference):
    wavelengths = np.linspace(1000.0, 1800.0, 150)
    x = spectra_like(3, seed=3, length=150)
    got = client.embed(x, wavelengths)
    np.testing.assert_allclose(got, reference.embed(x, wavelengths), atol=TOL)


def test_embed_csv_upload(http, reference):
    wavelengths = np.linspace(1100.0, 1700.0, SEQ_LEN)
    x = spectra_like(4, seed=4)
    header = "id,batch," + ",".join(f"{w:.6f}" for w in wavelengths)
    rows = [f"s{i},{i % 2}," + ",".join(f"{v:.8f}" for v in row) for i, row in enumerate(x)]
    csv_text = "\n".join([header, *rows])
    response = http.post("/embed", content=csv_text, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    body = response.json()
    # The same file as a multipart upload (curl -F file=@spectra.csv).
    form = http.post("/embed", files={"file": ("spectra.csv", csv_text.encode(), "text/csv")})
    assert form.status_code == 200, form.text
    assert form.json() == body
    assert body["ids"] == ["s0", "s1", "s2", "s3"]
    parsed = np.array([[float(f"{v:.8f}") for v in row] for row in x], dtype=np.float32)
    expected = reference.embed(parsed.astype(np.float64), np.round(wavelengths, 6))
    np.testing.assert_allclose(body["embeddings"], expected, atol=TOL)


def test_reconstruct_equals_in_process_with_missing(client, reference):
    x = spectra_like(3, seed=5)
    grid = reference.artifact.wavelengths
    missing = [[0, 1, 2, 3], [[1300.0, 1400.0]], []]
    recon, rmse = client.reconstruct(x, missing=missing)
    visible = np.ones((3, SEQ_LEN), dtype=bool)
    visible[0, :4] = False
    visible[1, (grid >= 1300.0) & (grid <= 1400.0)] = False
    expected = reference.reconstruct(x, visible)
    np.testing.assert_allclose(recon, expected, atol=TOL * np.abs(expected).max())
    np.testing.assert_allclose(rmse, np.sqrt(((expected - x) ** 2).mean(axis=1)), rtol=1e-4)


def test_reconstruct_on_caller_grid_marks_outside_as_missing(client, reference):
    wavelengths = np.linspace(1000.0, 1800.0, 120)
    x = spectra_like(2, seed=6, length=120)
    recon, rmse = client.reconstruct(x, wavelengths)
    assert recon.shape == (2, 120)
    outside = (wavelengths < 1100.0) | (wavelengths > 1700.0)
    assert np.isnan(recon[:, outside]).all() and np.isfinite(recon[:, ~outside]).all()
    processed, state = reference.preprocess(x, wavelengths)
    z = reference.embed_processed(processed)
    on_grid = reference.pre.inverse_transform(
        reference.sessions["decoder"].run(None, {"embedding": z})[0], state
    )
    grid = reference.artifact.wavelengths
    expected = np.stack([np.interp(wavelengths[~outside], grid, row) for row in on_grid])
    np.testing.assert_allclose(recon[:, ~outside], expected, atol=1e-4)
    assert rmse.shape == (2,) and np.all(rmse > 0)


def test_library_crud_paging_and_similar(client, reference):
    x = spectra_like(12, seed=7)
    wavelengths = np.linspace(1050.0, 1750.0, SEQ_LEN)
    entries = [
        {"id": f"lib{i:02d}", "spectrum": x[i], "metadata": {"kind": "a" if i < 6 else "b"}}
        for i in range(12)
    ]
    entries[3]["wavelengths"] = wavelengths
    assert client.put_many(entries)["ids"] == [e["id"] for e in entries]
    stored = client.get("lib03", include_embedding=True)
    assert stored["spectrum"] == x[3].tolist()  # original values, bit for bit
    assert stored["wavelengths"] == wavelengths.tolist()
    np.testing.assert_allclose(
        stored["embedding"], reference.embed(x[3:4], wavelengths)[0], atol=TOL
    )

    page = client.list(offset=2, limit=3)
    assert page["count"] >= 12 and page["model_version"] == "wavemae-tiny:test-0"
    ids = [e["id"] for e in client.list(limit=1000)["entries"]]
    assert [e["id"] for e in page["entries"]] == ids[2:5]
    assert client.list(filter={"kind": "b"}, limit=1000)["count"] == 6

    # Known answer: each stored spectrum's own entry is its nearest neighbour (score 1).
    queries = x[[0, 7]]
    results = client.similar(queries, k=3, filter={"kind": ["a", "b"]})
    assert [r[0]["id"] for r in results] == ["lib00", "lib07"]
    assert results[0][0]["score"] == pytest.approx(1.0, abs=1e-5)
    lib_emb = reference.embed(np.delete(x, 3, axis=0))
    lib_ids = [f"lib{i:02d}" for i in range(12) if i != 3]
    all_emb = np.vstack([lib_emb, reference.embed(x[3:4], wavelengths)])
    all_ids = [*lib_ids, "lib03"]
    q = reference.embed(queries)
    for row, result in zip(q @ all_emb.T, results, strict=True):
        order = np.argsort(-row)[:3]
        assert [r["id"] for r in result] == [all_ids[j] for j in order]
        np.testing.assert_allclose([r["score"] for r in result], row[order], atol=TOL)
    filtered = client.similar(x[[0]], k=100, filter={"kind": "b"})[0]
    assert sorted(r["id"] for r in filtered) == [f"lib{i:02d}" for i in range(6, 12)]
    by_embedding = client.similar(embeddings=q[:1], k=1)
    assert by_embedding[0][0]["id"] == "lib00"
    spectral = client.similar(x[[9]], k=2, space="spectrum", filter={"kind": "b"})[0]
    assert spectral[0]["id"] == "lib09" and spectral[0]["score"] == pytest.approx(100.0, abs=1e-3)

    client.delete("lib05")
    with pytest.raises(WaveMAEError) as err:
        client.get("lib05")
    assert err.value.status == 404 and err.value.type == "not_found"
    assert client.reembed()["reembedded"] == 0


def test_metrics_expose_the_required_series(http):
    http.post("/embed", json={"spectra": spectra_like(1).tolist()})
    text = http.get("/metrics").text
    for name in (
        'wavemae_requests_total{endpoint="/embed",method="POST",status="200"}',
        "wavemae_request_duration_seconds_bucket",
        "wavemae_queue_spectra",
        "wavemae_batch_size_spectra_bucket",
        "wavemae_batch_wait_seconds_bucket",
        "wavemae_inference_seconds_bucket",
        'wavemae_model_info{model="wavemae-tiny",providers="CPUExecutionProvider",version="test-0"}',
    ):
        assert name in text, name


def test_openapi_documents_every_endpoint(http):
    schema = http.get("/openapi.json").json()
    for path in ("/embed", "/reconstruct", "/similar", "/library", "/library/{entry_id}"):
        assert path in schema["paths"]
    embed_body = schema["paths"]["/embed"]["post"]["requestBody"]["content"]
    assert set(embed_body) == {
        "application/json",
        "application/x-npy",
        "text/csv",
        "multipart/form-data",
    }
    assert "EmbedRequest" in schema["components"]["schemas"]

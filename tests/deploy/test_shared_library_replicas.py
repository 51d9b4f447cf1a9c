"""Two service processes on one PostgreSQL library see each other's writes (the Kubernetes
setup: stateless replicas, one shared pgvector library)."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.postgres


def _spectra(n: int, seq_len: int, seed: int) -> list[list[float]]:
    """Smooth positive spectra, one peak each at a different place."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, seq_len)
    centres = rng.uniform(0.15, 0.85, size=(n, 1))
    return (0.5 + np.exp(-(((t - centres) / 0.08) ** 2)) + 0.1 * t).tolist()


def test_two_replicas_share_one_library(fresh_postgres_url, start_replica):
    a = start_replica(fresh_postgres_url)
    b = start_replica(fresh_postgres_url)
    seq_len = httpx.get(a.url + "/model", timeout=10).json()["seq_len"]
    spectra = _spectra(4, seq_len, seed=1)
    with (
        httpx.Client(base_url=a.url, timeout=30) as ha,
        httpx.Client(base_url=b.url, timeout=30) as hb,
    ):
        put = ha.put("/library/quartz", json={"spectrum": spectra[0], "metadata": {"kind": "q"}})
        assert put.status_code == 200, put.text
        got = hb.get("/library/quartz")
        assert got.status_code == 200, got.text
        assert got.json()["spectrum"] == spectra[0]  # original values, exactly
        assert got.json()["metadata"] == {"kind": "q"}

        batch = {
            "entries": [
                {"id": f"ref{i}", "spectrum": s, "metadata": {"kind": "r"}}
                for i, s in enumerate(spectra[1:], start=1)
            ]
        }
        assert hb.post("/library", json=batch).status_code == 200
        listing = ha.get("/library").json()
        assert listing["count"] == 4
        assert listing["model_version"] == put.json()["model"]

        # A finds an entry B wrote, by its own spectrum, with cosine ~1.
        similar = ha.post("/similar", json={"spectra": [spectra[2]], "k": 2})
        assert similar.status_code == 200, similar.text
        best = similar.json()["results"][0][0]
        assert best["id"] == "ref2"
        assert best["score"] == pytest.approx(1.0, abs=1e-4)
        filtered = hb.post(
            "/similar", json={"spectra": [spectra[2]], "k": 10, "filter": {"kind": "q"}}
        )
        assert filtered.status_code == 200, filtered.text
        assert [h["id"] for h in filtered.json()["results"][0]] == ["quartz"]

        assert hb.delete("/library/quartz").status_code in (200, 204)
        assert ha.get("/library/quartz").status_code == 404

    # A replica that dies does not take the library with it; a new one sees everything.
    a.kill9()
    c = start_replica(fresh_postgres_url)
    listing = httpx.get(c.url + "/library", timeout=30).json()
    assert listing["count"] == 3
    assert sorted(e["id"] for e in listing["entries"]) == ["ref1", "ref2", "ref3"]


def test_database_outage_answers_503_and_the_replica_recovers(start_replica):
    """The library's database restarts under a running replica: library calls answer 503 (not
    500) while it is down, and succeed again, data intact, once it is back."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver

    workdir = Path(tempfile.mkdtemp(prefix="wavemae-pg-outage-"))
    pgdata = workdir / "pgdata"
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        replica = start_replica(server.get_uri())
        with httpx.Client(base_url=replica.url, timeout=30) as http:
            seq_len = http.get("/model").json()["seq_len"]
            spectrum = _spectra(1, seq_len, seed=3)[0]
            assert http.put("/library/kept", json={"spectrum": spectrum}).status_code == 200

            server.cleanup()  # stop PostgreSQL (data kept)
            down = http.get("/library/kept")
            assert down.status_code == 503, down.text
            assert down.json()["error"]["type"] == "not_ready"
            assert "Retry-After" in down.headers
            assert http.get("/healthz").status_code == 200  # the process itself is fine

            server = pgserver.get_server(pgdata, cleanup_mode="stop")
            back = http.get("/library/kept")
            assert back.status_code == 200, back.text
            assert back.json()["spectrum"] == spectrum
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)

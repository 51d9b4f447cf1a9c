"""A stored map survives a restart of the server (its fitted transform is in the library), and
a running map fit is cancelled when the server stops: real uvicorn, SQLite and PostgreSQL.

The default suite checks the same placement from a second server process on the same library
(``test_search_and_analysis.py``); the restart test here is slow (``-m slow``)."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fit_helpers import alive
from service_helpers import SEQ_LEN, spectra_like

from wavemae_service.client import WaveMAEClient


def _families(per_family: int = 8) -> np.ndarray:
    """Three families of near-duplicate spectra, ``(3 * per_family, SEQ_LEN)``."""
    rng = np.random.default_rng(5)
    return np.array(
        [
            base * rng.uniform(0.9, 1.1) + 0.002 * rng.normal(size=SEQ_LEN)
            for base in spectra_like(3, seed=5)
            for _ in range(per_family)
        ]
    )


def _place(url: str, query: np.ndarray) -> httpx.Response:
    return httpx.post(
        url + "/library/map/place",
        json={"method": "tsne", "embeddings": query.tolist()},
        timeout=120,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def library_url(request, tmp_path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("fresh_postgres_url")
    return str(tmp_path / "library.sqlite3")


def _forget_transform(library_url: str) -> None:
    """Make the stored map look like one stored before transforms were kept with maps."""
    if library_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(library_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE wavemae_library_analyses SET payload = payload - 'transform' "
                "WHERE name = 'map:tsne'"
            )
            conn.execute("DELETE FROM wavemae_library_analysis_blobs")
        return
    with sqlite3.connect(library_url) as conn:
        conn.execute(
            "UPDATE analyses SET payload = json_remove(payload, '$.transform') "
            "WHERE name = 'map:tsne'"
        )
        conn.execute("DELETE FROM analysis_blobs")


@pytest.mark.slow  # two servers, a t-SNE fit and numba compiling twice: 30-60 s
def test_a_restarted_server_places_points_where_the_first_did(start_server, library_url):
    x = _families()
    first = start_server(library_url=library_url)
    with WaveMAEClient(first.url, timeout=120) as client:
        client.put_many([{"id": f"s{i:02d}", "spectrum": row} for i, row in enumerate(x)])
        job = client.fit_map("tsne")
        assert job["result"]["transform"]["stored"] is True
        query = client.embed(x[16:17] * 1.02)
        placed = _place(first.url, query)
        assert placed.status_code == 200, placed.text
        stored_map = client.map("tsne")
    assert first.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled

    second = start_server(library_url=library_url)  # a new process on the same library
    again = _place(second.url, query)
    assert again.status_code == 200, again.text
    assert again.json()["points"] == placed.json()["points"]  # the same fitted transform
    with WaveMAEClient(second.url, timeout=120) as client:
        assert client.map("tsne")["items"] == stored_map["items"]
        # an entry added after the restart is placed by the loaded transform; none move
        client.put("late", x[0] * 1.01)
        grown = client.map("tsne")
        assert grown["count"] == len(x) + 1 and grown["unplaced"] == 0
        by_id = {e["id"]: e for e in grown["items"]}
        assert [by_id[e["id"]] for e in stored_map["items"]] == stored_map["items"]
        assert np.isfinite([by_id["late"]["x"], by_id["late"]["y"]]).all()

    # a map stored before fitted transforms were kept with it cannot place points: 409, why
    _forget_transform(library_url)
    refused = _place(second.url, query)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["type"] == "map_not_loaded" and "stored before" in error["message"]
    assert "POST /library/map again" in error["message"]


def _map_state(url: str, method: str) -> str | None:
    return httpx.get(url + "/readyz", timeout=10).json().get("maps", {}).get(method)


def _place_umap(url: str, query: np.ndarray) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = httpx.post(
        url + "/library/map/place",
        json={"method": "umap", "embeddings": query.tolist()},
        timeout=120,
    )
    return response, time.perf_counter() - started


@pytest.mark.slow  # three servers, a UMAP fit, numba compiling UMAP's kernels in each: 1-3 min
def test_a_restarted_server_warms_its_umap_map_before_the_first_placement(start_server, tmp_path):
    library_url = str(tmp_path / "library.sqlite3")
    x = _families()
    first = start_server(library_url=library_url)
    with WaveMAEClient(first.url, timeout=300) as client:
        client.put_many([{"id": f"s{i:02d}", "spectrum": row} for i, row in enumerate(x)])
        assert client.fit_map("umap")["result"]["transform"]["stored"] is True
        query = client.embed(x[3:4] * 1.02)
    # the job ends with the transform loaded and warmed in the server that fitted it
    assert _map_state(first.url, "umap") == "ready"
    placed, _ = _place_umap(first.url, query)
    assert placed.status_code == 200, placed.text
    first.stop()

    # a request that arrives while a new server still warms the map waits, then is answered
    second = start_server(library_url=library_url)
    early, _ = _place_umap(second.url, query)
    assert early.status_code == 200, early.text
    assert early.json()["points"] == placed.json()["points"]
    second.stop()

    # without any request, a new server warms the stored map; the first placement is then
    # quick (compiling UMAP's kernels in the request took 10-18 s on this machine)
    third = start_server(library_url=library_url)
    deadline = time.monotonic() + 300
    while _map_state(third.url, "umap") != "ready" and time.monotonic() < deadline:
        time.sleep(0.25)
    assert _map_state(third.url, "umap") == "ready"
    quick, seconds = _place_umap(third.url, query)
    assert quick.status_code == 200, quick.text
    assert quick.json()["points"] == placed.json()["points"]
    assert seconds < 3.0, f"the first placement took {seconds:.1f} s"


def _fit_processes(server_pid: int) -> list[int]:
    """Pids of the spawned children of ``server_pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == server_pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes in /proc")
def test_stopping_the_server_kills_a_running_map_fit(start_server):
    server = start_server()
    with WaveMAEClient(server.url, timeout=120) as client:
        client.put_many([{"id": f"s{i:02d}", "spectrum": row} for i, row in enumerate(_families())])
        job = client.fit_map("umap", wait=False)
        deadline = time.monotonic() + 120
        while not job["stage"].startswith("UMAP:") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = client.job(job["id"])
        # the fit runs in another process, and the server answers meanwhile
        assert job["state"] == "running", job
        (fit_pid,) = _fit_processes(server.pid)
        assert client.embed(_families()[:2]).shape[0] == 2
    assert server.stop() in (0, -signal.SIGTERM)
    deadline = time.monotonic() + 10
    while alive(fit_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(fit_pid)

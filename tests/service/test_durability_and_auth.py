"""Acknowledged library writes survive kill -9; API-key scopes hold; start-up refuses bad input."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from service_helpers import spectra_like

from wavemae_service.client import WaveMAEClient, WaveMAEError


def test_acknowledged_entries_survive_kill_9(start_server, tmp_path):
    library = tmp_path / "durable.sqlite3"
    server = start_server(library_url=library)
    x = spectra_like(40, seed=21)
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i, row in enumerate(x):
                if stop.is_set():
                    return
                try:
                    r = client.put(
                        f"/library/e{i:03d}", json={"spectrum": row.tolist(), "metadata": {"i": i}}
                    )
                except httpx.TransportError:
                    return
                if r.status_code == 200:
                    acknowledged.append(f"e{i:03d}")

    thread = threading.Thread(target=writer)
    thread.start()
    while len(acknowledged) < 10 and thread.is_alive():
        time.sleep(0.001)
    server.kill9()  # mid-stream: no shutdown hook runs
    stop.set()
    thread.join(10)
    assert len(acknowledged) >= 10

    restarted = start_server(library_url=library)
    with WaveMAEClient(restarted.url) as client:
        for entry_id in acknowledged:
            entry = client.get(entry_id)
            i = int(entry_id[1:])
            assert entry["spectrum"] == x[i].tolist() and entry["metadata"] == {"i": i}
        assert client.list(limit=1000)["count"] >= len(acknowledged)
        hits = client.similar(x[[int(acknowledged[-1][1:])]], k=1)
        assert hits[0][0]["id"] == acknowledged[-1]


@pytest.fixture(scope="module")
def keyed_server(start_server):
    return start_server(api_keys="reader-key,other-reader", admin_keys="admin-key")


@pytest.mark.parametrize(
    ("key", "method", "path", "status"),
    [
        (None, "POST", "/embed", 401),
        ("wrong", "POST", "/embed", 401),
        ("reader-key", "POST", "/embed", 200),
        ("other-reader", "POST", "/similar", 200),
        ("admin-key", "POST", "/embed", 200),
        ("reader-key", "PUT", "/library/k1", 403),
        ("reader-key", "DELETE", "/library/k1", 403),
        ("reader-key", "POST", "/library/reembed", 403),
        ("admin-key", "PUT", "/library/k1", 200),
        ("reader-key", "GET", "/library", 200),
        (None, "GET", "/library", 401),
        (None, "GET", "/model", 401),
        (None, "GET", "/healthz", 200),
        (None, "GET", "/readyz", 200),
        (None, "GET", "/metrics", 200),
    ],
)
def test_api_key_scopes(keyed_server, key, method, path, status):
    row = spectra_like(1)[0].tolist()
    body = {"spectrum": row} if method == "PUT" else {"spectra": [row]}
    headers = {"X-API-Key": key} if key else {}
    response = httpx.request(
        method,
        keyed_server.url + path,
        json=body if method in ("POST", "PUT") and "reembed" not in path else None,
        headers=headers,
        timeout=10,
    )
    assert response.status_code == status, response.text
    if status in (401, 403):
        assert response.json()["error"]["type"] in ("unauthorized", "forbidden")


def test_bearer_header_works_in_the_client(keyed_server):
    with WaveMAEClient(keyed_server.url, api_key="reader-key") as client:
        assert client.embed(spectra_like(1)).shape == (1, 16)
        with pytest.raises(WaveMAEError) as err:
            client.put("nope", spectra_like(1)[0])
        assert err.value.status == 403


def test_tampered_artifact_stops_start_up_with_a_clear_message(tiny_artifact, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_artifact, broken)
    with open(broken / "decoder.onnx", "ab") as fh:
        fh.write(b"\0")
    env = {"WAVEMAE_MODEL_DIR": str(broken), "WAVEMAE_LIBRARY_URL": ":memory:", "WAVEMAE_PORT": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "wavemae_service"],
        env={**__import__("os").environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "sha256" in result.stderr and "decoder.onnx" in result.stderr


def _old_library(path, spectra, wavelengths=None):
    from wavemae_service.library import LibraryEntry, open_store

    with open_store(path, latent_dim=16, seq_len=64) as store:
        store.put(
            [
                LibraryEntry(
                    id=f"old{i}",
                    spectrum=row,
                    wavelengths=wavelengths,
                    metadata={"i": i},
                    embedding=np.eye(16, dtype=np.float32)[i],
                    processed=np.zeros(64, np.float32),
                    model_version="wavemae-tiny:older",
                )
                for i, row in enumerate(spectra)
            ],
            model_version="wavemae-tiny:older",
        )


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_library_of_another_model_version_is_reembedded_at_start(start_server, tmp_path):
    library = tmp_path / "old.sqlite3"
    x = spectra_like(3, seed=31)
    _old_library(library, x, np.linspace(1100.0, 1700.0, 64))  # the tiny model's grid
    server = start_server(library_url=library)
    with WaveMAEClient(server.url) as client:
        _wait_for(lambda: client.list()["model_version"] == "wavemae-tiny:test-0")
        assert [h[0]["id"] for h in client.similar(x, k=1)] == ["old0", "old1", "old2"]
        assert client.get("old1")["spectrum"] == x[1].tolist()


def test_a_library_the_new_model_cannot_take_stays_put_and_says_why(start_server, tmp_path):
    library = tmp_path / "narrow.sqlite3"
    wavelengths = np.linspace(1200.0, 1300.0, 64)  # the tiny model needs half of 1100-1700 nm
    x = spectra_like(2, seed=32)
    _old_library(library, x, wavelengths)
    server = start_server(library_url=library)
    with WaveMAEClient(server.url) as client:
        assert client.embed(x).shape == (2, 16)  # the model serves regardless
        with pytest.raises(WaveMAEError) as err:
            client.similar(x, k=1)
        assert err.value.status == 409 and "re-embed" in err.value.message
        with pytest.raises(WaveMAEError) as err:
            client.reembed()
        assert err.value.status == 422 and "'old0'" in err.value.message
        assert "1200-1300" in err.value.message
        assert client.get("old0")["spectrum"] == x[0].tolist()  # nothing lost
        assert client.list()["model_version"] == "wavemae-tiny:older"


def test_entries_stored_without_wavelengths_are_not_assumed_on_a_new_grid(start_server, tmp_path):
    library = tmp_path / "gridless.sqlite3"
    x = spectra_like(2, seed=33)
    _old_library(library, x)  # an older version stored them without their grid
    server = start_server(library_url=library)
    with WaveMAEClient(server.url) as client:
        with pytest.raises(WaveMAEError) as err:
            client.reembed()
        assert err.value.status == 422 and "'old0'" in err.value.message
        assert "without wavelengths" in err.value.message
        assert client.list()["model_version"] == "wavemae-tiny:older"
        client.delete("old0")
        client.delete("old1")
        assert client.reembed()["model_version"] == "wavemae-tiny:test-0"
        client.put("old0", x[0], wavelengths=np.linspace(1100.0, 1700.0, 64))


def test_sigterm_drains_in_flight_requests(start_server):
    import signal

    server = start_server(max_wait_ms=700)  # a request sits in the batch window for 0.7 s
    result: dict[str, object] = {}

    def request() -> None:
        result["response"] = httpx.post(
            server.url + "/embed", json={"spectra": spectra_like(1).tolist()}, timeout=10
        )

    thread = threading.Thread(target=request)
    thread.start()
    time.sleep(0.3)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    # During the shutdown delay: not ready for new traffic, but still answering.
    assert httpx.get(server.url + "/readyz", timeout=5).status_code == 503
    late = httpx.post(server.url + "/embed", json={"spectra": spectra_like(1).tolist()}, timeout=5)
    assert late.status_code == 200
    thread.join(10)
    assert result["response"].status_code == 200
    # uvicorn re-raises the signal after draining, so the process ends "by SIGTERM", cleanly.
    assert server.process.wait(10) in (0, -signal.SIGTERM)

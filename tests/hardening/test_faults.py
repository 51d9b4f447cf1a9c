"""Faults a deployed service meets: a crash mid-write, a bad artifact, a stuck or dead batch
loop, and SIGTERM under load. Each runs against a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from hardening_helpers import SEQ_LEN, InProcessServer

from wavemae.artifact import sha256_file
from wavemae.bench.servers import free_port

# --------------------------------------------------------------------------- kill -9


def test_kill9_during_library_writes_loses_no_acknowledged_entry(
    start_service, tmp_path, raw_spectra
):
    server = start_service(tmp_path)
    acknowledged: dict[str, int] = {}  # id -> row of raw_spectra it holds

    async def writer(worker: int) -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            for i in range(10_000):
                entry_id = f"w{worker}-{i}"
                row = (worker * 7 + i) % len(raw_spectra)
                body = {"spectrum": raw_spectra[row].tolist(), "metadata": {"row": row}}
                try:
                    response = await client.put(f"/library/{entry_id}", json=body)
                except httpx.TransportError:
                    return  # the server died under this request: not acknowledged
                assert response.status_code == 200, response.text
                acknowledged[entry_id] = row

    async def write_then_kill() -> None:
        tasks = [asyncio.create_task(writer(w)) for w in range(8)]
        while len(acknowledged) < 150:  # a stream of writes well under way
            await asyncio.sleep(0.02)
        server.stop(signal.SIGKILL)
        await asyncio.gather(*tasks)

    asyncio.run(asyncio.wait_for(write_then_kill(), 120))
    assert server.process.returncode == -signal.SIGKILL

    restarted = start_service(tmp_path)
    with httpx.Client(base_url=restarted.url, timeout=10) as client:
        count = client.get("/library", params={"limit": 0}).json()["count"]
        assert count >= len(acknowledged)
        for entry_id, row in acknowledged.items():
            response = client.get(f"/library/{entry_id}")
            assert response.status_code == 200, f"acknowledged {entry_id} lost: {response.text}"
            entry = response.json()
            assert entry["metadata"] == {"row": row}
            np.testing.assert_array_equal(
                np.asarray(entry["spectrum"], dtype=np.float32), raw_spectra[row]
            )


# --------------------------------------------------------------------------- bad artifacts


def _serve(artifact: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``wavemae serve`` on ``artifact``; it must fail, so a hang is a failure too."""
    argv = [sys.executable, "-m", "wavemae.cli", "serve", "--model-dir", str(artifact)]
    argv += ["--host", "127.0.0.1", "--port", str(free_port()), "--library", ":memory:"]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=90)


def _rewrite_manifest_entry(folder: Path, role: str) -> None:
    """Record the current sha256 and size of ``role``'s file, as a careless copy would."""
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    file = folder / manifest["files"][role]["path"]
    manifest["files"][role]["sha256"] = sha256_file(file)
    manifest["files"][role]["bytes"] = file.stat().st_size
    manifest_path.write_text(json.dumps(manifest, indent=2))


def test_corrupted_artifact_fails_startup_naming_the_file(tiny_artifact, tmp_path):
    folder = shutil.copytree(tiny_artifact, tmp_path / "corrupted")
    encoder = folder / "encoder.onnx"
    data = bytearray(encoder.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights
    encoder.write_bytes(bytes(data))

    result = _serve(folder, tmp_path)

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "encoder.onnx" in output and "sha256" in output, output[-3000:]


def test_missing_manifest_fails_startup_with_a_clear_message(tiny_artifact, tmp_path):
    folder = shutil.copytree(tiny_artifact, tmp_path / "no-manifest")
    (folder / "manifest.json").unlink()

    result = _serve(folder, tmp_path)

    assert result.returncode != 0
    assert "manifest.json" in result.stdout + result.stderr


def test_graph_that_disagrees_with_the_manifest_fails_startup(tiny_artifact, tmp_path):
    """The decoder copied over the encoder, checksums made to match: the sessions' tensors
    must still be checked against the manifest (input 'embedding' (batch, 16), not 'spectra')."""
    folder = shutil.copytree(tiny_artifact, tmp_path / "mismatched")
    shutil.copy(folder / "decoder.onnx", folder / "encoder.onnx")
    _rewrite_manifest_entry(folder, "encoder")

    result = _serve(folder, tmp_path)

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "encoder" in output and "spectra" in output and "embedding" in output, output[-3000:]


# --------------------------------------------------------------------------- batch loop health


def test_stalled_batch_turns_readyz_503_and_back(start_service, raw_spectra):
    """A batch running longer than WAVEMAE_BATCH_STALL_S makes /readyz 503 while it runs."""
    server = start_service(max_batch_size=2048, batch_stall_s=0.02, max_spectra_per_request=2048)
    big = np.tile(raw_spectra, (32, 1))  # 2048 spectra: one batch of about 0.2-1 s here
    statuses: list[int] = []
    done = threading.Event()

    def poll_ready() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not done.is_set():
                statuses.append(client.get("/readyz").status_code)
                time.sleep(0.005)

    poller = threading.Thread(target=poll_ready)
    poller.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for _ in range(2):
                response = client.post("/embed", json={"spectra": big.tolist()})
                assert response.status_code == 200
    finally:
        done.set()
        poller.join()
    assert 503 in statuses, f"/readyz never reported the stall: {set(statuses)}"
    assert httpx.get(server.url + "/readyz").status_code == 200  # healthy again after


def test_crashed_batch_loop_turns_readyz_503_and_fails_requests_fast(tiny_artifact, tmp_path):
    """If the batch loop dies (here: its metrics hook raises), /readyz must say so and requests
    must fail promptly with 503 instead of waiting forever."""
    server = InProcessServer(
        tiny_artifact, tmp_path, max_wait_ms=0, inference_timeout_s=2.0
    ).start()
    try:
        metrics = server.app.state.metrics
        original = metrics.batch_done

        def broken_hook(*args, **kwargs):
            metrics.batch_done = original
            raise RuntimeError("injected fault in the batch loop")

        metrics.batch_done = broken_hook
        spectrum = np.linspace(0.2, 1.0, SEQ_LEN).tolist()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/readyz").status_code == 200
            # The request whose batch crashes the loop gets an error, at the latest when its
            # inference timeout (2 s here) runs out; never a hang or a 200 with no data.
            crashed = client.post("/embed", json={"spectra": [spectrum]})
            assert crashed.status_code == 503, crashed.text
            deadline = time.monotonic() + 5
            while client.get("/readyz").status_code != 503 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.get("/readyz").status_code == 503
            started = time.monotonic()
            response = client.post("/embed", json={"spectra": [spectrum]})
            assert response.status_code == 503
            assert time.monotonic() - started < 2.0
            assert response.json()["error"]["type"]
    finally:
        server.stop()


# --------------------------------------------------------------------------- SIGTERM


def test_sigterm_under_load_drains_in_flight_requests(start_service, raw_spectra, reference):
    server = start_service(
        max_batch_size=1024, max_spectra_per_request=1024, max_queue_spectra=16384
    )
    batch = np.tile(raw_spectra, (16, 1))  # 1024 spectra per request
    expected = reference(batch)

    async def load() -> list[httpx.Response | Exception]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            body = {"spectra": batch.tolist()}
            tasks = [asyncio.create_task(client.post("/embed", json=body)) for _ in range(16)]
            await asyncio.sleep(0.3)  # every request sent and being worked through (~1.5 s)
            assert not all(t.done() for t in tasks), "the load finished before SIGTERM"
            server.process.send_signal(signal.SIGTERM)
            return await asyncio.gather(*tasks, return_exceptions=True)

    answers = asyncio.run(load())

    # uvicorn re-raises SIGTERM after its graceful shutdown, so -SIGTERM is a clean exit too.
    assert server.process.wait(30) in (0, -signal.SIGTERM)
    for answer in answers:
        assert isinstance(answer, httpx.Response), f"in-flight request lost: {answer!r}"
        assert answer.status_code == 200, answer.text
        got = np.asarray(answer.json()["embeddings"], dtype=np.float32)
        np.testing.assert_allclose(got, expected, atol=1e-5)
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/healthz", timeout=2)


def test_library_host_that_does_not_resolve_fails_startup_in_one_line(tiny_artifact, tmp_path):
    """compose without the postgres profile leaves WAVEMAE_LIBRARY_URL pointing at a host that
    does not exist: the service must say so at once, not serve without its library."""
    url = "postgresql://wavemae:secret@no-such-db-host.invalid:5432/wavemae"
    argv = [sys.executable, "-m", "wavemae.cli", "serve", "--model-dir", str(tiny_artifact)]
    argv += ["--host", "127.0.0.1", "--port", str(free_port()), "--library", url]
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=90)

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert "no-such-db-host.invalid" in lines[0] and "WAVEMAE_LIBRARY_URL" in lines[0]
    assert "secret" not in result.stderr  # the password stays out of logs

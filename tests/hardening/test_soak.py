"""A bounded soak: mixed traffic from many concurrent clients against a service with a small
queue. Every answer must be a documented success or a 429 with Retry-After; never a 5xx;
every success must be correct (equal to what the same server answers when idle, and for
/embed to in-process ONNX Runtime); the server's resident memory must stop growing.

The default run soaks for ``SHORT_S``; the ``slow`` test for ``LONG_S`` (run with -m slow).
"""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import numpy as np
import psutil
import pytest

SHORT_S = 12.0
LONG_S = 75.0
CLIENTS = 64
N_QUERIES = 16  # distinct spectra sent (answers known in advance)
N_FIXED = 24  # library entries /similar searches (never written during the soak)
N_SOAK_IDS = 16  # library ids overwritten during the soak
RSS_GROWTH_BOUND_MB = 40.0  # after the first quarter of the soak
NPY = "application/x-npy"
# A small queue so 64 clients overflow it: back-pressure (429) is part of what is tested.
SMALL_QUEUE = {"max_queue_spectra": 16, "max_batch_size": 8, "max_wait_ms": 2}


@dataclass
class SoakReport:
    statuses: Counter = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)

    def fail(self, what: str) -> None:
        if len(self.wrong) < 20:
            self.wrong.append(what)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def _known_answers(url: str, queries: np.ndarray, library: np.ndarray) -> dict[str, list]:
    """Answers of the idle server, one request at a time: what every loaded answer must equal."""
    with httpx.Client(base_url=url, timeout=30) as client:
        entries = [
            {"id": f"fixed-{i}", "spectrum": s.tolist(), "metadata": {"group": "fixed", "i": i}}
            for i, s in enumerate(library)
        ]
        assert client.post("/library", json={"entries": entries}).status_code == 200
        answers: dict[str, list] = {"embed": [], "reconstruct": [], "similar": []}
        for q in queries:
            body = {"spectra": [q.tolist()]}
            answers["embed"].append(client.post("/embed", json=body).json()["embeddings"][0])
            answers["reconstruct"].append(client.post("/reconstruct", json=body).json())
            similar = {**body, "k": 3, "filter": {"group": "fixed"}}
            answers["similar"].append(client.post("/similar", json=similar).json()["results"][0])
    return answers


async def _client(
    url: str, worker: int, deadline: float, queries: np.ndarray, known: dict, report: SoakReport
) -> None:
    rng = random.Random(worker)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while time.monotonic() < deadline:
            q = rng.randrange(len(queries))
            kind = rng.choices(
                ["embed", "embed_npy", "reconstruct", "similar", "put", "get"],
                weights=[35, 20, 15, 15, 10, 5],
            )[0]
            spectrum = queries[q].tolist()
            soak_id = f"soak-{rng.randrange(N_SOAK_IDS)}"
            if kind == "embed":
                r = await client.post("/embed", json={"spectra": [spectrum]})
            elif kind == "embed_npy":
                headers = {"content-type": NPY, "accept": NPY}
                r = await client.post("/embed", content=_npy(queries[q : q + 1]), headers=headers)
            elif kind == "reconstruct":
                r = await client.post("/reconstruct", json={"spectra": [spectrum]})
            elif kind == "similar":
                body = {"spectra": [spectrum], "k": 3, "filter": {"group": "fixed"}}
                r = await client.post("/similar", json=body)
            elif kind == "put":
                body = {"spectrum": spectrum, "metadata": {"group": "soak", "q": q}}
                r = await client.put(f"/library/{soak_id}", json=body)
            else:
                r = await client.get(f"/library/{soak_id}")
            report.statuses[f"{kind} {r.status_code}"] += 1
            if r.status_code == 429:
                if "retry-after" not in r.headers:
                    report.fail(f"{kind}: 429 without Retry-After")
                continue
            if kind == "get" and r.status_code == 404:
                continue  # that id was not written yet
            if r.status_code != 200:
                report.fail(f"{kind}: {r.status_code} {r.text[:200]}")
                continue
            _check(kind, r, q, known, queries, report)


def _check(kind: str, r: httpx.Response, q: int, known: dict, queries, report) -> None:
    if kind == "embed":
        got = np.asarray(r.json()["embeddings"][0])
        if not np.allclose(got, known["embed"][q], atol=1e-5):
            report.fail(f"embed {q}: max diff {np.abs(got - known['embed'][q]).max():.2g}")
    elif kind == "embed_npy":
        got = np.load(io.BytesIO(r.content), allow_pickle=False)[0]
        if not np.allclose(got, known["embed"][q], atol=1e-5):
            report.fail(f"embed npy {q}: max diff {np.abs(got - known['embed'][q]).max():.2g}")
    elif kind == "reconstruct":
        got, want = r.json(), known["reconstruct"][q]
        if not np.allclose(got["reconstructions"], want["reconstructions"], atol=1e-4):
            report.fail(f"reconstruct {q}: differs from the idle answer")
    elif kind == "similar":
        got, want = r.json()["results"][0], known["similar"][q]
        if [h["id"] for h in got] != [h["id"] for h in want] or not np.allclose(
            [h["score"] for h in got], [h["score"] for h in want], atol=1e-5
        ):
            report.fail(f"similar {q}: {[h['id'] for h in got]} != {[h['id'] for h in want]}")
    elif kind == "get":
        entry = r.json()
        row = entry["metadata"].get("q")
        if row is None or not np.allclose(entry["spectrum"], queries[row], atol=1e-6):
            report.fail(f"get {entry['id']}: spectrum does not match its metadata")


async def _sample_rss(pid: int, deadline: float, report: SoakReport) -> None:
    process = psutil.Process(pid)
    start = time.monotonic()
    while time.monotonic() < deadline:
        report.rss_mb.append((time.monotonic() - start, process.memory_info().rss / 2**20))
        await asyncio.sleep(0.5)


def soak(server, seconds: float, queries: np.ndarray, library: np.ndarray) -> SoakReport:
    known = _known_answers(server.url, queries, library)
    report = SoakReport()

    async def run() -> None:
        deadline = time.monotonic() + seconds
        clients = [_client(server.url, w, deadline, queries, known, report) for w in range(CLIENTS)]
        await asyncio.gather(_sample_rss(server.pid, deadline, report), *clients)

    asyncio.run(run())
    return report


def _assert_healthy_soak(report: SoakReport, server) -> None:
    statuses = report.statuses
    rss = [round(mb) for _, mb in report.rss_mb[:: max(1, len(report.rss_mb) // 8)]]
    print(f"soak answers: {dict(sorted(statuses.items()))}; server RSS MiB over time: {rss}")
    server_errors = {k: v for k, v in statuses.items() if k.split()[-1].startswith("5")}
    assert not server_errors, f"5xx answers: {server_errors}\n{server.log_tail()}"
    assert not report.wrong, "\n".join(report.wrong)
    ok = sum(v for k, v in statuses.items() if k.endswith(" 200"))
    assert ok >= 200, f"too few successful answers to mean anything: {dict(statuses)}"
    assert any(k.endswith(" 429") for k in statuses), f"queue never overflowed: {dict(statuses)}"
    # Memory: whatever the first quarter allocated (arenas, caches), no steady growth after.
    samples = report.rss_mb
    quarter = samples[len(samples) // 4][1]
    growth = max(mb for _, mb in samples[len(samples) // 4 :]) - quarter
    assert growth < RSS_GROWTH_BOUND_MB, f"RSS grew {growth:.1f} MiB: {samples}"
    assert server.process.poll() is None
    assert httpx.get(server.url + "/readyz", timeout=5).status_code == 200


@pytest.fixture
def soak_data(raw_spectra):
    return raw_spectra[:N_QUERIES], raw_spectra[N_QUERIES : N_QUERIES + N_FIXED]


def test_short_soak_mixed_traffic_small_queue(start_service, soak_data, reference):
    queries, library = soak_data
    server = start_service(**SMALL_QUEUE)
    report = soak(server, SHORT_S, queries, library)
    _assert_healthy_soak(report, server)
    # The idle answers themselves equal in-process ONNX Runtime.
    with httpx.Client(base_url=server.url, timeout=30) as client:
        got = client.post("/embed", json={"spectra": queries.tolist()}).json()["embeddings"]
    np.testing.assert_allclose(got, reference(queries), atol=1e-5)


@pytest.mark.slow
def test_long_soak_mixed_traffic_small_queue(start_service, soak_data):
    queries, library = soak_data
    server = start_service(**SMALL_QUEUE)
    report = soak(server, LONG_S, queries, library)
    _assert_healthy_soak(report, server)

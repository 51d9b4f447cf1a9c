"""Micro-batching: concurrent requests share batches; overload answers 429 at once; the batcher's
rules hold (split large requests, drop cancelled ones, a failing batch fails only its requests)."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import httpx
import numpy as np
import pytest
from service_helpers import SEQ_LEN, spectra_like

from wavemae_service.batching import MicroBatcher
from wavemae_service.errors import InferenceFailed, Overloaded
from wavemae_service.metrics import ServiceMetrics


def _metric(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_64_concurrent_requests_share_few_batches(server, reference):
    x = spectra_like(64, seed=11)
    expected = reference.embed(x)
    before = httpx.get(server.url + "/metrics").text
    batches_before = _metric(before, "wavemae_batch_size_spectra_count", 'batcher="embed"')
    rows_before = _metric(before, "wavemae_batch_size_spectra_sum", 'batcher="embed"')

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
            await client.get("/healthz")
            return await asyncio.gather(
                *(client.post("/embed", json={"spectra": [row.tolist()]}) for row in x)
            )

    responses = asyncio.run(fire())
    assert [r.status_code for r in responses] == [200] * 64
    got = np.array([r.json()["embeddings"][0] for r in responses])
    np.testing.assert_allclose(got, expected, atol=1e-5)

    after = httpx.get(server.url + "/metrics").text
    batches = _metric(after, "wavemae_batch_size_spectra_count", 'batcher="embed"') - batches_before
    rows = _metric(after, "wavemae_batch_size_spectra_sum", 'batcher="embed"') - rows_before
    assert rows == 64
    # On average at least two requests share a batch. The exact count depends on how fast the
    # client's 64 requests arrive (a 20 ms window each), which a busy 2-core machine stretches.
    assert batches <= 32, f"64 requests ran in {batches} batches"


def test_overload_answers_429_with_retry_after_not_timeouts(start_server):
    # A batch waits 300 ms for company and at most 4 spectra may wait: the rest are refused.
    server = start_server(max_wait_ms=300, max_queue_spectra=4, max_batch_size=64)
    row = spectra_like(1)[0].tolist()

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=40)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=10) as client:
            await client.get("/healthz")
            return await asyncio.gather(
                *(client.post("/embed", json={"spectra": [row]}) for _ in range(40))
            )

    started = time.perf_counter()
    responses = asyncio.run(fire())
    elapsed = time.perf_counter() - started
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 429}
    assert codes.count(429) >= 20 and codes.count(200) >= 4
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["type"] == "overloaded"
    assert elapsed < 5.0
    text = httpx.get(server.url + "/metrics").text
    assert _metric(text, "wavemae_rejections_total", 'batcher="embed"') == codes.count(429)


# --------------------------------------------------------------------------- the batcher itself


class RecordingBackend:
    """Doubles its input; records batch sizes; can fail on a marked value or block."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.release.wait(5)
        if np.any(x == -1.0):
            raise RuntimeError("poisoned batch")
        self.batches.append(x.shape[0])
        return x * 2.0


def run(coro):
    return asyncio.run(coro)


def test_large_requests_are_split_at_max_batch_size():
    backend = RecordingBackend()

    async def scenario():
        batcher = MicroBatcher(backend, max_batch_size=8, max_wait_ms=1)
        await batcher.start()
        x = np.arange(20 * 3, dtype=np.float32).reshape(20, 3)
        out = await batcher.submit(x)
        await batcher.stop()
        return x, out

    x, out = run(scenario())
    np.testing.assert_array_equal(out, 2 * x)
    assert max(backend.batches) <= 8 and sum(backend.batches) == 20


def test_cancelled_requests_never_reach_the_engine():
    backend = RecordingBackend()

    async def scenario():
        batcher = MicroBatcher(backend, max_batch_size=4, max_wait_ms=50)
        await batcher.start()
        doomed = asyncio.create_task(batcher.submit(np.full((3, 2), 7.0, np.float32)))
        await asyncio.sleep(0.005)
        doomed.cancel()
        kept = await batcher.submit(np.ones((1, 2), np.float32))
        await batcher.stop()
        return kept

    kept = run(scenario())
    np.testing.assert_array_equal(kept, [[2.0, 2.0]])
    assert backend.batches == [1]


def test_an_exception_fails_only_its_batch():
    backend = RecordingBackend()
    metrics = ServiceMetrics()

    async def scenario():
        batcher = MicroBatcher(backend, max_batch_size=2, max_wait_ms=20, observer=metrics)
        await batcher.start()
        results = await asyncio.gather(
            batcher.submit(np.full((1, 2), -1.0, np.float32)),  # poisons batch 1
            batcher.submit(np.ones((1, 2), np.float32)),  # shares batch 1
            batcher.submit(np.full((2, 2), 3.0, np.float32)),  # batch 2
            return_exceptions=True,
        )
        healthy = batcher.healthy
        await batcher.stop()
        return results, healthy

    results, healthy = run(scenario())
    assert isinstance(results[0], InferenceFailed) and isinstance(results[1], InferenceFailed)
    np.testing.assert_array_equal(results[2], np.full((2, 2), 6.0))
    assert healthy
    assert b'wavemae_batches_total{batcher="embed",outcome="error"} 1.0' in metrics.render()


def test_full_queue_raises_overloaded_immediately():
    backend = RecordingBackend()
    backend.release.clear()  # the engine is stuck: nothing leaves the queue

    async def scenario():
        batcher = MicroBatcher(backend, max_batch_size=1, max_wait_ms=0, max_queue_spectra=2)
        await batcher.start()
        first = asyncio.create_task(batcher.submit(np.ones((1, 2), np.float32)))
        await asyncio.sleep(0.05)  # first is running (stuck) in the engine
        waiting = [
            asyncio.create_task(batcher.submit(np.ones((1, 2), np.float32))) for _ in range(2)
        ]
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded) as err:
            await batcher.submit(np.ones((1, 2), np.float32))
        backend.release.set()
        await asyncio.gather(first, *waiting)
        await batcher.stop()
        return err.value

    error = run(scenario())
    assert error.headers() == {"Retry-After": "1"}


def test_stalled_engine_turns_unhealthy():
    backend = RecordingBackend()
    backend.release.clear()

    async def scenario():
        batcher = MicroBatcher(backend, max_wait_ms=0, stall_s=0.05)
        await batcher.start()
        task = asyncio.create_task(batcher.submit(np.ones((1, SEQ_LEN), np.float32)))
        await asyncio.sleep(0.15)
        stalled = not batcher.healthy
        backend.release.set()
        await task
        recovered = batcher.healthy
        await batcher.stop()
        return stalled, recovered

    assert run(scenario()) == (True, True)


def test_a_request_waiting_past_the_timeout_gets_not_ready():
    from wavemae_service.errors import NotReady

    backend = RecordingBackend()
    backend.release.clear()

    async def scenario():
        batcher = MicroBatcher(backend, max_wait_ms=0, timeout_s=0.1)
        await batcher.start()
        started = time.perf_counter()
        with pytest.raises(NotReady):
            await batcher.submit(np.ones((1, 2), np.float32))
        waited = time.perf_counter() - started
        backend.release.set()
        await batcher.stop()
        return waited

    assert run(scenario()) < 1.0


def test_two_workers_run_two_batches_at_once():
    barrier = threading.Barrier(2, timeout=5)

    def backend(x: np.ndarray) -> np.ndarray:
        barrier.wait()  # passes only when two batches are inside the engine together
        return x + 1.0

    async def scenario():
        batcher = MicroBatcher(backend, max_batch_size=1, max_wait_ms=0, workers=2)
        await batcher.start()
        out = await asyncio.gather(
            batcher.submit(np.zeros((1, 2), np.float32)),
            batcher.submit(np.ones((1, 2), np.float32)),
        )
        await batcher.stop()
        return out

    first, second = run(scenario())
    np.testing.assert_array_equal(first, [[1.0, 1.0]])
    np.testing.assert_array_equal(second, [[2.0, 2.0]])


def test_a_fault_outside_the_engine_stops_the_loop_and_answers_at_once():
    from wavemae_service.errors import NotReady

    class BrokenObserver(ServiceMetrics):
        def batch_done(self, *args, **kwargs):
            raise RuntimeError("injected")

    async def scenario():
        batcher = MicroBatcher(lambda x: x, max_wait_ms=0, observer=BrokenObserver())
        await batcher.start()
        with pytest.raises(NotReady):
            await batcher.submit(np.ones((1, 2), np.float32))
        await asyncio.sleep(0.01)
        healthy = batcher.healthy
        with pytest.raises(NotReady):
            await batcher.submit(np.ones((1, 2), np.float32))
        await batcher.stop()
        return healthy

    assert run(scenario()) is False


def test_an_idle_batcher_runs_at_once_and_a_busy_one_batches_what_queued():
    """No batching window and a free worker: the request runs at once (no queue wait
    recorded). While the worker is busy, later requests queue and then share one batch."""
    from wavemae_service.batching import BatchObserver

    class Waits(BatchObserver):
        def __init__(self) -> None:
            self.batches: list[tuple[int, float]] = []

        def batch_done(self, name: str, size: int, wait_s: float, run_s: float, ok: bool) -> None:
            self.batches.append((size, wait_s))

    backend, observer = RecordingBackend(), Waits()

    async def scenario():
        batcher = MicroBatcher(backend, max_batch_size=8, max_wait_ms=0, observer=observer)
        await batcher.start()
        idle = await batcher.submit(np.ones((2, 2), np.float32))
        backend.release.clear()  # the next request holds the only worker
        first = asyncio.create_task(batcher.submit(np.ones((1, 2), np.float32)))
        await asyncio.sleep(0.05)
        queued = [
            asyncio.create_task(batcher.submit(np.full((n, 2), 3.0, np.float32))) for n in (3, 2)
        ]
        await asyncio.sleep(0.05)
        backend.release.set()
        results = await asyncio.gather(first, *queued)
        await batcher.stop()
        return idle, results

    idle, results = run(scenario())
    np.testing.assert_array_equal(idle, np.full((2, 2), 2.0))
    assert [r.shape[0] for r in results] == [1, 3, 2]
    assert backend.batches == [2, 1, 5]  # the two queued requests ran together, in order
    assert observer.batches[0] == (2, 0.0) and observer.batches[1] == (1, 0.0)
    assert observer.batches[2][0] == 5 and observer.batches[2][1] >= 0.04

"""An async HTTP load generator for ``/embed``: one spectrum per request, closed loop.

``concurrency`` clients each send a request, wait for the answer and send the next, until
``max_requests`` answers arrived or ``max_seconds`` passed. Bodies are encoded before the
clock starts (JSON with orjson, or ``application/x-npy`` float32 ``(1, L)``) so the generator
spends its CPU on HTTP, not on serialisation. Only loopback targets are accepted: this tool
measures a server on this machine and must never be pointed at someone else's.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import orjson

__all__ = ["BODY_KINDS", "LoadResult", "check_loopback", "encode_bodies", "run_load"]

BODY_KINDS = ("json", "npy")
NPY = "application/x-npy"


@dataclass
class LoadResult:
    """What one load run measured.

    Attributes:
        concurrency: clients sending at once.
        body: ``"json"`` or ``"npy"``.
        requests: answers received (any status) plus transport errors.
        ok: 200 answers.
        statuses: count per HTTP status (as strings) and ``"transport"`` for failed exchanges.
        seconds: wall time from first send to last answer.
        spectra_per_s: ``ok`` spectra per second of wall time.
        p50_ms, p95_ms, p99_ms, max_ms: latency of 200 answers.
        client_cpu_s: CPU time the generator itself used (it shares the machine).
    """

    concurrency: int
    body: str
    requests: int = 0
    ok: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    spectra_per_s: float = 0.0
    p50_ms: float = float("nan")
    p95_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    client_cpu_s: float = 0.0

    @property
    def errors(self) -> int:
        """Answers that were not 200, plus transport failures."""
        return self.requests - self.ok

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors}


def check_loopback(url: str) -> None:
    """Raise ValueError unless ``url`` points at this machine (127.0.0.0/8, ::1, localhost)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"url={url!r}: the load generator only targets loopback (127.0.0.1)")


def encode_bodies(spectra: np.ndarray, body: str) -> tuple[list[bytes], dict[str, str]]:
    """One request body per row of ``spectra`` ``(N, L)``, and the headers to send with them.

    Raises:
        ValueError: for an unknown body kind or a non-2-D array.
    """
    if body not in BODY_KINDS:
        raise ValueError(f"body={body!r} must be one of {BODY_KINDS}")
    x = np.asarray(spectra, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"spectra must be (N, L), got {x.shape}")
    if body == "json":
        headers = {"content-type": "application/json", "accept": "application/json"}
        return [orjson.dumps({"spectra": [row.tolist()]}) for row in x], headers
    out = []
    for row in x:
        buf = io.BytesIO()
        np.save(buf, row[None, :], allow_pickle=False)
        out.append(buf.getvalue())
    return out, {"content-type": NPY, "accept": NPY}


async def run_load(
    url: str,
    spectra: np.ndarray,
    *,
    concurrency: int,
    body: str = "json",
    path: str = "/embed",
    max_requests: int = 2000,
    max_seconds: float = 10.0,
    warmup_requests: int = 50,
    timeout_s: float = 30.0,
) -> LoadResult:
    """Closed-loop load: ``concurrency`` clients, one spectrum per request.

    Args:
        url: base URL of the server (loopback only), e.g. ``"http://127.0.0.1:8000"``.
        spectra: ``(N, L)`` spectra sent in turn (raw values on the model grid).
        concurrency: clients sending at once (>= 1).
        body: ``"json"`` or ``"npy"``.
        path: endpoint path.
        max_requests: stop after this many answers ...
        max_seconds: ... or after this much wall time, whichever comes first.
        warmup_requests: sent (and not counted) before the clock starts.
        timeout_s: per-request timeout; a timeout counts under ``"transport"``.

    Returns:
        The :class:`LoadResult`.

    Raises:
        ValueError: for a non-loopback URL or a non-positive concurrency/limit.
    """
    import httpx

    check_loopback(url)
    if concurrency < 1 or max_requests < 1 or max_seconds <= 0:
        raise ValueError(
            f"concurrency={concurrency}, max_requests={max_requests} and "
            f"max_seconds={max_seconds} must be positive"
        )
    bodies, headers = encode_bodies(spectra, body)
    target = url.rstrip("/") + path
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    issued = 0
    deadline = 0.0
    # One client (one keep-alive connection) per simulated user: httpx's shared pool costs
    # O(connections) CPU per request, which at 32+ connections would make the load generator,
    # not the server, the bottleneck on a small machine.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(limits=limits, timeout=timeout_s) for _ in range(concurrency)]

    async def one(client: httpx.AsyncClient, i: int) -> tuple[str, float]:
        t0 = time.perf_counter()
        try:
            response = await client.post(target, content=bodies[i % len(bodies)], headers=headers)
            await response.aread()
            status = str(response.status_code)
        except httpx.HTTPError:
            status = "transport"
        return status, time.perf_counter() - t0

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < max_requests and time.perf_counter() < deadline:
            i = issued
            issued += 1
            status, latency = await one(client, i)
            statuses[status] += 1
            if status == "200":
                latencies.append(latency)

    try:
        # Warm-up: open every connection and let the server reach steady state.
        rounds = max(1, -(-warmup_requests // concurrency))
        for r in range(rounds):
            await asyncio.gather(*(one(c, r * concurrency + k) for k, c in enumerate(clients)))
        cpu0 = time.process_time()
        started = time.perf_counter()
        deadline = started + max_seconds
        await asyncio.gather(*(client_loop(c) for c in clients))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))

    result = LoadResult(concurrency=concurrency, body=body)
    result.requests = sum(statuses.values())
    result.ok = statuses.get("200", 0)
    result.statuses = dict(sorted(statuses.items()))
    result.seconds = elapsed
    result.spectra_per_s = result.ok / elapsed if elapsed > 0 else 0.0
    result.client_cpu_s = cpu
    if latencies:
        ms = np.asarray(latencies) * 1e3
        result.p50_ms, result.p95_ms, result.p99_ms = (
            float(v) for v in np.percentile(ms, [50, 95, 99])
        )
        result.max_ms = float(ms.max())
    return result

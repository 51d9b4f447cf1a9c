"""/embed latency while the service fits a library map, with the fit in a thread of the serving
process (``WAVEMAE_MAP_FIT_ISOLATION=thread``, the old way) and in its fit process (the default);
and the latency of the first placement on a stored map in a fresh server, with and without the
start-up warm-up (``WAVEMAE_MAP_WARMUP``): :func:`first_placement_latency`.

For each isolation: a fresh server (the shipped model, a fresh SQLite library) is filled with
``n`` synthetic spectra, one client sends single-spectrum /embed requests back to back while the
server is idle, then ``POST /library/map`` starts a UMAP fit and the same client keeps sending
until the job is done. Latency percentiles are client-side, per request. Both fits are the
server's first (numba compiles UMAP's kernels in either case: part of what a user sees).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from wavemae.bench.servers import service_process
from wavemae.bench.spectra import synthetic_raw_spectra

__all__ = [
    "first_placement_latency",
    "fit_latency",
    "format_first_placement",
    "format_fit_latency",
]

_IDLE_S = 20.0
_FILL_BATCH = 100


def _percentiles(ms: list[float]) -> dict[str, Any]:
    if not ms:
        return {"requests": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    a = np.asarray(ms)
    return {
        "requests": len(ms),
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
    }


def _embed_loop(http: Any, body: dict[str, Any], stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        response = http.post("/embed", json=body)
        response.raise_for_status()
        out.append(1e3 * (time.perf_counter() - started))


def _fill(http: Any, spectra: np.ndarray, n: int) -> None:
    """Store the first ``n`` of ``spectra`` as library entries ``e000000``..."""
    for start in range(0, n, _FILL_BATCH):
        entries = [
            {"id": f"e{i:06d}", "spectrum": spectra[i].tolist()}
            for i in range(start, min(start + _FILL_BATCH, n))
        ]
        for _ in range(10):  # a busy shared machine may answer 429/503: retry
            response = http.post("/library", json={"entries": entries})
            if response.status_code not in (429, 503):
                break
            time.sleep(2.0)
        response.raise_for_status()


def _one(isolation: str, n: int, method: str, folder: Path) -> dict[str, Any]:
    import httpx

    env = {
        "WAVEMAE_LIBRARY_URL": str(folder / f"{isolation}.sqlite3"),
        "WAVEMAE_MAP_FIT_ISOLATION": isolation,
        "WAVEMAE_LOG_LEVEL": "warning",
    }
    with service_process(env, log_path=folder / f"{isolation}.log") as server:
        server.start()
        with httpx.Client(base_url=server.url, timeout=120) as http:
            seq_len = http.get("/model").json()["seq_len"]
            spectra = synthetic_raw_spectra(n + 1, seq_len, seed=1)
            _fill(http, spectra, n)
            body = {"spectra": [spectra[n].tolist()]}
            idle: list[float] = []
            stop = threading.Event()
            client = threading.Thread(target=_embed_loop, args=(http, body, stop, idle))
            client.start()
            time.sleep(_IDLE_S)
            stop.set()
            client.join()
            during: list[float] = []
            stop = threading.Event()
            started = time.perf_counter()
            job = http.post("/library/map", json={"method": method}).json()
            client = threading.Thread(target=_embed_loop, args=(http, body, stop, during))
            client.start()
            while job["state"] in ("queued", "running"):
                time.sleep(0.5)
                job = http.get(f"/library/jobs/{job['id']}").json()
            stop.set()
            client.join()
            fit_s = time.perf_counter() - started
    return {
        "isolation": isolation,
        "entries": n,
        "method": method,
        "job_state": job["state"],
        "fit_s": fit_s,
        "idle": _percentiles(idle),
        "during_fit": _percentiles(during),
    }


def fit_latency(n: int = 3_000, method: str = "umap") -> list[dict[str, Any]]:
    """One row per isolation ("thread", then "process"): /embed latency idle and during a fit
    of ``n`` entries, and the fit's wall time (a few minutes each on 2 shared cores)."""
    with tempfile.TemporaryDirectory(prefix="wavemae-map-latency-") as tmp:
        return [_one(isolation, n, method, Path(tmp)) for isolation in ("thread", "process")]


def format_fit_latency(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [
        "| fit runs in | entries | fit (s) | /embed idle p50 / p99 (ms) | during the fit p50 / p99 "
        "/ max (ms) | requests during the fit |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        idle, during = r["idle"], r["during_fit"]
        lines.append(
            f"| {r['isolation']} ({r['method']}, job {r['job_state']}) | {r['entries']:,} | "
            f"{r['fit_s']:.0f} | {ms(idle['p50_ms'])} / {ms(idle['p99_ms'])} | "
            f"{ms(during['p50_ms'])} / {ms(during['p99_ms'])} / {ms(during['max_ms'])} | "
            f"{during['requests']} |"
        )
    return "\n".join(lines)


def _first_placement(
    library: Path, method: str, query: list[list[float]], warmup: bool, log_path: Path
) -> dict[str, Any]:
    """A fresh server on ``library``: the first and second placement of ``query``."""
    import httpx

    env = {
        "WAVEMAE_LIBRARY_URL": str(library),
        "WAVEMAE_MAP_WARMUP": str(warmup).lower(),
        "WAVEMAE_LOG_LEVEL": "warning",
    }
    row: dict[str, Any] = {"warmup": warmup, "method": method, "warm_s": None}
    with service_process(env, log_path=log_path) as server:
        server.start()
        with httpx.Client(base_url=server.url, timeout=600) as http:
            ready = time.perf_counter()
            if warmup:  # what a load balancer would not wait for: /readyz is 200 already
                deadline = ready + 600
                while time.perf_counter() < deadline:
                    state = http.get("/readyz").json().get("maps", {}).get(method)
                    if state not in (None, "loading"):
                        break
                    time.sleep(0.1)
                row["warm_s"] = time.perf_counter() - ready
            for name in ("first_ms", "second_ms"):
                started = time.perf_counter()
                response = http.post(
                    "/library/map/place", json={"method": method, "embeddings": query}
                )
                response.raise_for_status()
                row[name] = 1e3 * (time.perf_counter() - started)
            row["points"] = response.json()["points"]
    return row


def first_placement_latency(n: int = 200, method: str = "umap") -> list[dict[str, Any]]:
    """Fit a ``method`` map of ``n`` entries once, then in a fresh server each: the latency of
    the first and the second ``POST /library/map/place`` of one query, without the start-up
    warm-up (the first placement compiles UMAP's kernels) and with it (after /readyz says the
    map is ready; ``warm_s`` is how long that took after the server was ready). A minute or
    two on 2 shared cores."""
    import httpx

    with tempfile.TemporaryDirectory(prefix="wavemae-first-placement-") as tmp:
        folder = Path(tmp)
        library = folder / "library.sqlite3"
        env = {"WAVEMAE_LIBRARY_URL": str(library), "WAVEMAE_LOG_LEVEL": "warning"}
        with service_process(env, log_path=folder / "fit.log") as server:
            server.start()
            with httpx.Client(base_url=server.url, timeout=600) as http:
                seq_len = http.get("/model").json()["seq_len"]
                spectra = synthetic_raw_spectra(n + 1, seq_len, seed=1)
                _fill(http, spectra, n)
                job = http.post("/library/map", json={"method": method}).json()
                while job["state"] in ("queued", "running"):
                    time.sleep(0.5)
                    job = http.get(f"/library/jobs/{job['id']}").json()
                if job["state"] != "done":
                    raise RuntimeError(f"the map fit ended {job['state']}: {job['error']}")
                response = http.post("/embed", json={"spectra": [spectra[n].tolist()]})
                query = response.json()["embeddings"]
        rows = [
            _first_placement(library, method, query, warmup, folder / f"warm-{warmup}.log")
            for warmup in (False, True)
        ]
    if rows[0]["points"] != rows[1]["points"]:
        raise RuntimeError("the warmed server placed the query elsewhere")
    for row in rows:
        row.update(entries=n)
        del row["points"]
    return rows


def format_first_placement(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`first_placement_latency` as a Markdown table."""
    lines = [
        "| fresh server | entries | warm-up after ready (s) | first placement (ms) | second (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        warm = "-" if r["warm_s"] is None else f"{r['warm_s']:.1f}"
        lines.append(
            f"| {'warm-up on' if r['warmup'] else 'no warm-up (before)'} ({r['method']}) | "
            f"{r['entries']:,} | {warm} | {r['first_ms']:.0f} | {r['second_ms']:.0f} |"
        )
    return "\n".join(lines)

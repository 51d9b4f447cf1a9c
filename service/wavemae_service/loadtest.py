"""Quick load test: served spectra/s at several concurrencies next to in-process ONNX Runtime.

    python -m wavemae_service.loadtest [--model-dir DIR] [--concurrency 1 8 32] [--seconds 5]
                                       [--body json|npy] [--url http://127.0.0.1:8000] [--json out]

1. Engine: the artifact's encoder in this process (same thread settings as the server) at batch
   sizes 1..128 on preprocessed spectra; its best spectra/s is the ceiling.
2. Service: starts ``python -m wavemae_service`` on a free loopback port (or uses ``--url``),
   then for each concurrency level runs that many closed-loop clients, each sending ONE
   spectrum per request, for ``--seconds``; reports spectra/s and p50/p99 latency of 200s.
The load generator shares the machine with the server: its own CPU time is reported too.
Other ``WAVEMAE_*`` variables in the environment (batching, workers) reach the started server.
``wavemae bench`` (issue 7) is the full benchmark; this is the quick check behind the README.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

__all__ = ["engine_throughput", "main", "run_clients"]


def _raw_spectra(n: int, length: int, seed: int = 0) -> np.ndarray:
    """Smooth positive spectra ``(n, length)`` (absorbance-like), float64."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, length)
    centres = rng.uniform(0.1, 0.9, size=(n, 4, 1))
    widths = rng.uniform(0.02, 0.2, size=(n, 4, 1))
    peaks = rng.uniform(0.1, 1.0, size=(n, 4, 1)) * np.exp(-(((t - centres) / widths) ** 2))
    return 0.3 + peaks.sum(axis=1) + 0.2 * t + 0.002 * rng.normal(size=(n, length))


def engine_throughput(
    model_dir: Path, spectra: np.ndarray, *, threads: int, batch_sizes: tuple[int, ...]
) -> dict[str, Any]:
    """In-process encoder spectra/s per batch size (preprocessing excluded, as in the engine)."""
    import onnxruntime as ort

    from wavemae.artifact import load_artifact

    artifact = load_artifact(model_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(
        str(artifact.file("encoder")), sess_options=options, providers=["CPUExecutionProvider"]
    )
    x = artifact.preprocess(spectra)
    per_batch: dict[int, float] = {}
    for b in batch_sizes:
        batch = np.ascontiguousarray(np.resize(x, (b, x.shape[1])))
        session.run(None, {"spectra": batch})
        runs, started = 0, time.perf_counter()
        while time.perf_counter() - started < 0.5 or runs < 3:
            session.run(None, {"spectra": batch})
            runs += 1
        per_batch[b] = b * runs / (time.perf_counter() - started)
    best = max(per_batch, key=per_batch.get)
    return {
        "threads": threads,
        "spectra_per_s": {str(k): round(v, 1) for k, v in per_batch.items()},
        "best_batch": best,
        "best_spectra_per_s": round(per_batch[best], 1),
        "model": artifact.model_id,
    }


def _bodies(spectra: np.ndarray, body: str) -> tuple[list[bytes], dict[str, str]]:
    if body == "npy":
        out = []
        for row in spectra.astype(np.float32):
            buffer = io.BytesIO()
            np.save(buffer, row[None], allow_pickle=False)
            out.append(buffer.getvalue())
        headers = {"Content-Type": "application/x-npy", "Accept": "application/x-npy"}
        return out, headers
    return [orjson.dumps({"spectra": [row.tolist()]}) for row in spectra], {
        "Content-Type": "application/json"
    }


async def run_clients(
    url: str, bodies: list[bytes], headers: dict[str, str], concurrency: int, seconds: float
) -> dict[str, Any]:
    """``concurrency`` closed-loop clients posting one spectrum each to ``/embed``."""
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
        warm_until = time.perf_counter() + 0.5

        async def worker(offset: int, record: bool, until: float) -> None:
            i = offset
            while time.perf_counter() < until:
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/embed", content=bodies[i % len(bodies)], headers=headers
                    )
                    status = str(response.status_code)
                except httpx.TransportError:
                    status = "transport"
                if record:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == "200":
                        latencies.append(time.perf_counter() - started)
                i += concurrency

        await asyncio.gather(*(worker(k, False, warm_until) for k in range(concurrency)))
        cpu0 = time.process_time()
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(worker(k, True, until) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - cpu0
    lat = np.array(latencies) * 1000.0
    return {
        "concurrency": concurrency,
        "ok": len(latencies),
        "statuses": statuses,
        "spectra_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
        "client_cpu_fraction": round(client_cpu / elapsed, 2),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(model_dir: Path, env_extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    env = dict(os.environ)  # other WAVEMAE_* settings (workers, batching) pass through
    env.update(
        {
            "WAVEMAE_MODEL_DIR": str(model_dir),
            "WAVEMAE_PORT": str(port),
            "WAVEMAE_HOST": "127.0.0.1",
            "WAVEMAE_LIBRARY_URL": ":memory:",
            "WAVEMAE_LOG_LEVEL": "warning",
            **env_extra,
        }
    )
    process = subprocess.Popen([sys.executable, "-m", "wavemae_service"], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not become ready within 120 s")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: shipped model")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--body", choices=("json", "npy"), default="json")
    parser.add_argument("--url", default=None, help="use a running server instead of starting one")
    parser.add_argument("--threads", type=int, default=None, help="ORT intra-op threads (both)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    from wavemae.artifact import default_model_dir, load_artifact

    from .settings import Settings

    model_dir = args.model_dir or default_model_dir()
    artifact = load_artifact(model_dir)
    threads = args.threads if args.threads is not None else Settings().intra_op_threads
    spectra = _raw_spectra(256, artifact.seq_len)
    engine = engine_throughput(
        model_dir, spectra, threads=threads, batch_sizes=(1, 2, 4, 8, 16, 32, 64, 128)
    )
    print(
        f"engine ({engine['model']}, {threads} intra-op thread(s)): best "
        f"{engine['best_spectra_per_s']:.0f} spectra/s at batch {engine['best_batch']}; "
        f"per batch size {engine['spectra_per_s']}"
    )
    process = None
    url = args.url
    if url is None:
        process, url = _start_server(model_dir, {"WAVEMAE_INTRA_OP_THREADS": str(threads)})
    try:
        bodies, headers = _bodies(spectra, args.body)
        served = []
        for c in args.concurrency:
            result = asyncio.run(run_clients(url, bodies, headers, c, args.seconds))
            result["fraction_of_engine"] = round(
                result["spectra_per_s"] / engine["best_spectra_per_s"], 3
            )
            served.append(result)
            print(
                f"served ({args.body}) c={c:>3}: {result['spectra_per_s']:>8.0f} spectra/s "
                f"({result['fraction_of_engine']:.2f} of engine), p50 {result['p50_ms']} ms, "
                f"p99 {result['p99_ms']} ms, statuses {result['statuses']}, client CPU "
                f"{result['client_cpu_fraction']:.2f} core"
            )
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
    results = {"engine": engine, "served": served, "body": args.body, "cpus": os.cpu_count()}
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return results


if __name__ == "__main__":
    main()

"""The ``engine`` and ``serve`` benchmark modes and the load-point helpers, JSON-ready dicts.

``baseline`` and ``all`` (service next to its peers) are in :mod:`wavemae.bench.peers`.
``serve`` drives an HTTP server with :func:`wavemae.bench.loadgen.run_load`
and relates its spectra/s to the in-process engine measured in the same run (ONNX Runtime at
its best batch size and thread count, in the precision the server runs). Servers the bench
starts itself bind to 127.0.0.1 on a free port and are stopped before the mode returns.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from wavemae.artifact import Artifact, load_artifact, resolve_model_dir
from wavemae.bench.engine import DEFAULT_BATCH_SIZES, run_engine
from wavemae.bench.loadgen import BODY_KINDS, check_loopback, run_load
from wavemae.bench.servers import ServerProcess, free_port, service_command
from wavemae.bench.spectra import raw_request_spectra
from wavemae.bench.targets import evaluate_targets

__all__ = [
    "DEFAULT_CONCURRENCY",
    "LoadPlan",
    "artifact_or_default",
    "engine_mode",
    "engine_reference",
    "evaluate_targets",
    "machine_info",
    "measure_point",
    "profile_server",
    "serve_mode",
    "service_env",
]

DEFAULT_CONCURRENCY = (1, 8, 32, 64)


@dataclass(frozen=True)
class LoadPlan:
    """What load to send: every body kind at every concurrency, each bounded by count and time."""

    concurrencies: Sequence[int] = DEFAULT_CONCURRENCY
    bodies: Sequence[str] = BODY_KINDS
    max_requests: int = 4000
    max_seconds: float = 8.0
    warmup_requests: int = 100
    client: str = "auto"  # "wrk", "httpx", or "auto": wrk when installed

    def resolved_client(self) -> str:
        """The load generator used: ``"wrk"`` or ``"httpx"``."""
        from wavemae.bench.wrk import wrk_available

        if self.client == "auto":
            return "wrk" if wrk_available() else "httpx"
        return self.client

    def __post_init__(self) -> None:
        if self.client not in ("auto", "wrk", "httpx"):
            raise ValueError(f"client={self.client!r} must be 'auto', 'wrk' or 'httpx'")
        bad = [b for b in self.bodies if b not in BODY_KINDS]
        if bad:
            raise ValueError(f"bodies {bad} must be among {BODY_KINDS}")
        if not self.concurrencies or min(self.concurrencies) < 1:
            raise ValueError(f"concurrencies={list(self.concurrencies)} must be >= 1")


def machine_info() -> dict[str, Any]:
    """CPU model, CPU count, load averages and library versions: the context of the numbers."""
    import platform

    import numpy as np
    import onnxruntime

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "loadavg_1_5_15": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def artifact_or_default(model_dir: str | os.PathLike | None) -> Artifact:
    """The artifact of a folder or a shipped model's name (None: the shipped default)."""
    return load_artifact(resolve_model_dir(model_dir))


def service_env(
    artifact: Artifact, port: int, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment for ``wavemae serve`` on 127.0.0.1:``port`` with a throw-away library."""
    env = {
        "WAVEMAE_MODEL_DIR": str(artifact.path.resolve()),
        "WAVEMAE_HOST": "127.0.0.1",
        "WAVEMAE_PORT": str(port),
        "WAVEMAE_LIBRARY_URL": ":memory:",
        "WAVEMAE_LOG_LEVEL": "warning",
    }
    env.update(overrides or {})
    return env


def engine_mode(
    model_dir: str | os.PathLike | None = None,
    *,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    seconds: float = 0.5,
    thread_counts: Sequence[int] | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Every available backend in process (see :func:`wavemae.bench.engine.run_engine`)."""
    return run_engine(
        artifact_or_default(model_dir),
        batch_sizes=batch_sizes,
        seconds=seconds,
        thread_counts=thread_counts,
        checkpoint=checkpoint,
    )


def engine_reference(engine: Mapping[str, Any], backend: str) -> dict[str, Any]:
    for row in engine["backends"]:
        if row["name"] == backend:
            return {
                "backend": backend,
                "spectra_per_s": row["best_spectra_per_s"],
                "threads": row["best_threads"],
                "batch": row["best_batch"],
            }
    raise ValueError(f"the engine results have no {backend!r} backend to compare with")


def _cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        import psutil

        times = psutil.Process(pid).cpu_times()
        return times.user + times.system
    except Exception:  # psutil missing or the process is gone: no CPU column
        return None


async def measure_point(
    url: str,
    spectra: Any,
    plan: LoadPlan,
    body: str,
    concurrency: int,
    pid: int | None,
    reference: float,
) -> dict[str, Any]:
    """One load point (``concurrency`` clients, ``body`` requests) as a JSON-ready row, with
    its fraction of the in-process ``reference`` spectra/s and the server's CPU cores."""
    from wavemae.bench.wrk import run_load_wrk

    client = plan.resolved_client()
    cpu0 = _cpu_seconds(pid)
    if client == "wrk":
        result = await asyncio.to_thread(
            run_load_wrk,
            url,
            spectra,
            concurrency=concurrency,
            body=body,
            max_requests=plan.max_requests,
            max_seconds=plan.max_seconds,
        )
    else:
        result = await run_load(
            url,
            spectra,
            concurrency=concurrency,
            body=body,
            max_requests=plan.max_requests,
            max_seconds=plan.max_seconds,
            warmup_requests=plan.warmup_requests,
        )
    cpu1 = _cpu_seconds(pid)
    row = result.to_dict()
    row["client"] = client
    row["fraction_of_engine"] = result.spectra_per_s / reference if reference else None
    # Server CPU includes the warm-up, so it is a slight over-estimate.
    row["server_cpu_cores"] = (
        (cpu1 - cpu0) / result.seconds if cpu0 is not None and cpu1 is not None else None
    )
    return row


async def _run_series(
    url: str, spectra: Any, plan: LoadPlan, pid: int | None, reference: float
) -> list[dict[str, Any]]:
    return [
        await measure_point(url, spectra, plan, body, concurrency, pid, reference)
        for body in plan.bodies
        for concurrency in plan.concurrencies
    ]


def profile_server(
    url: str, spectra: Any, pid: int, seconds: float, out_dir: Path
) -> dict[str, Any]:
    """py-spy the server during a 32-client JSON load; summary plus the raw stacks' path."""
    from wavemae.bench.profile import start_py_spy, summarise_collapsed

    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"py-spy-{pid}.txt"
    spy = start_py_spy(pid, seconds, raw)
    from wavemae.bench.wrk import run_load_wrk, wrk_available

    if wrk_available():
        result = run_load_wrk(
            url,
            spectra,
            concurrency=32,
            body="json",
            max_requests=10**7,
            max_seconds=seconds,
            warmup_seconds=0,
        )
    else:
        result = asyncio.run(
            run_load(
                url,
                spectra,
                concurrency=32,
                body="json",
                max_requests=10**7,
                max_seconds=seconds,
                warmup_requests=0,
            )
        )
    _, err = spy.communicate(timeout=seconds + 30)
    if spy.returncode != 0 or not raw.exists():
        return {"error": err.decode(errors="replace")[-500:]}
    summary = summarise_collapsed(raw)
    summary.update(raw_stacks=str(raw), spectra_per_s_while_profiled=result.spectra_per_s)
    return summary


def _drive(
    kind: str,
    server: ServerProcess | None,
    url: str,
    artifact: Artifact,
    plan: LoadPlan,
    reference: dict[str, Any],
    profile_dir: Path | None,
    profile_seconds: float,
) -> dict[str, Any]:
    spectra, source = raw_request_spectra(artifact)
    pid = server.pid if server is not None else None
    rows = asyncio.run(_run_series(url, spectra, plan, pid, reference["spectra_per_s"]))
    out: dict[str, Any] = {
        "mode": kind,
        "url": url,
        "request_spectra": source,
        "reference": reference,
        "rows": rows,
    }
    if profile_dir is not None and pid is not None:
        out["profile"] = profile_server(url, spectra, pid, profile_seconds, profile_dir / kind)
    return out


def serve_mode(
    model_dir: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    plan: LoadPlan | None = None,
    engine: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    profile_dir: str | os.PathLike | None = None,
    profile_seconds: float = 8.0,
    engine_seconds: float = 0.5,
) -> dict[str, Any]:
    """Load the service (started here unless ``url`` is given) and relate it to the engine.

    Args:
        model_dir: artifact folder (default: the shipped model); for a given ``url`` it must be
            the model that server runs (the engine reference is measured on it).
        url: a running service on loopback; None starts ``wavemae serve`` on a free port.
        plan: the load (default :class:`LoadPlan`).
        engine: engine results of this run to use as reference; measured here if None.
        env: extra ``WAVEMAE_*`` settings for the service the bench starts.
        profile_dir: if given (and the bench started the server), py-spy the server during an
            extra 32-client JSON load and write the stacks here.
        profile_seconds: length of that profile.
        engine_seconds: time per point for the engine reference if measured here.
    """
    artifact = artifact_or_default(model_dir)
    plan = plan or LoadPlan()
    served_int8 = (env or {}).get("WAVEMAE_ENCODER_PRECISION", "fp32") == "int8"
    backend = "onnxruntime-int8" if served_int8 else "onnxruntime-fp32"
    if engine is None:
        engine = run_engine(
            artifact, backends=[backend], seconds=engine_seconds, measure_peaks=False
        )
    profile_path = Path(profile_dir) if profile_dir is not None else None
    if url is not None:
        check_loopback(url)
        with httpx.Client(timeout=10) as client:
            model = client.get(url.rstrip("/") + "/model").json()
        result = _drive(
            "serve",
            None,
            url,
            artifact,
            plan,
            engine_reference(engine, backend),
            None,
            profile_seconds,
        )
        result.update(server="wavemae service (external)", model_info=model)
        return result
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="wavemae-bench-") as cwd:
        # A separate working directory: the service must not touch files where the bench ran.
        server = ServerProcess(
            service_command(), port, env=service_env(artifact, port, env), cwd=cwd
        )
        with server:
            with httpx.Client(timeout=10) as client:
                model = client.get(server.url + "/model").json()
            result = _drive(
                "serve",
                server,
                server.url,
                artifact,
                plan,
                engine_reference(engine, backend),
                profile_path,
                profile_seconds,
            )
    result.update(server="wavemae serve", model_info=model, env=dict(env or {}))
    return result

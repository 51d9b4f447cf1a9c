"""``wavemae bench baseline`` and ``all``: the service next to the servers it must beat.

Three servers, all started by the bench on loopback free ports and all up at once:

- ``serve``: ``wavemae serve`` (the project: micro-batcher, limits, library);
- ``peer``: :mod:`wavemae.bench.peer_app`, the obvious server: a FastAPI ``def`` endpoint
  calling one ONNX Runtime session per request, no batching (JSON only);
- ``baseline``: :mod:`wavemae.bench.baseline_app`, FastAPI + PyTorch eager per request
  (skipped without torch).

At each (body, concurrency) point every server is loaded in turn before the next point, so
load that other processes put on the machine drifts over all of them alike and the ratios
within one run mean something even on a shared machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wavemae.bench.engine import DEFAULT_BATCH_SIZES, run_engine
from wavemae.bench.modes import (
    LoadPlan,
    artifact_or_default,
    engine_mode,
    engine_reference,
    measure_point,
    profile_server,
    service_env,
)
from wavemae.bench.servers import (
    ServerProcess,
    baseline_command,
    free_port,
    peer_command,
    service_command,
)
from wavemae.bench.spectra import raw_request_spectra
from wavemae.bench.targets import compare_servers, evaluate_targets

__all__ = ["SERVERS", "all_mode", "baseline_mode"]

#: Every server the comparison can run, in the order they are loaded at each point.
SERVERS = ("serve", "peer", "baseline")
_LABELS = {
    "serve": "wavemae serve",
    "peer": "FastAPI def endpoint + one ONNX Runtime session (no batching)",
    "baseline": "FastAPI + PyTorch eager per request",
}
_BODIES = {"peer": ("json",)}  # the obvious server parses JSON only


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _start(
    name: str, artifact: Any, env: Mapping[str, str] | None, torch_threads: int, cwd: str
) -> ServerProcess:
    port = free_port()
    model_dir = artifact.path.resolve()
    if name == "serve":
        argv, child_env = service_command(), service_env(artifact, port, env)
        return ServerProcess(argv, port, env=child_env, cwd=cwd)
    if name == "peer":
        return ServerProcess(peer_command(port, model_dir), port, cwd=cwd)
    return ServerProcess(baseline_command(port, model_dir, torch_threads), port, cwd=cwd)


def baseline_mode(
    model_dir: str | os.PathLike | None = None,
    *,
    plan: LoadPlan | None = None,
    engine: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    servers: Sequence[str] = SERVERS,
    torch_threads: int | None = None,
    profile_dir: str | os.PathLike | None = None,
    profile_seconds: float = 8.0,
    engine_seconds: float = 0.5,
) -> dict[str, Any]:
    """Load ``servers`` side by side; see the module docstring.

    Args:
        model_dir: artifact folder (default: the shipped model).
        plan: the load (default :class:`~wavemae.bench.modes.LoadPlan`).
        engine: engine results of this run for the in-process reference; measured if None.
        env: extra ``WAVEMAE_*`` settings for the service.
        servers: which of :data:`SERVERS` to run.
        torch_threads: the eager baseline's threads; default its best in ``engine`` (else 1),
            so the comparison flatters it if anything.
        profile_dir: if given, py-spy each server under a 32-client JSON load; stacks here.
        profile_seconds: length of each profile.
        engine_seconds: time per point for the engine reference if measured here.

    Returns:
        ``{"serve": part, "peer": part, "baseline": part, "comparison": rows, "skipped": [...]}``
        where each part is shaped like :func:`wavemae.bench.modes.serve_mode`'s result.

    Raises:
        ValueError: for an unknown server name.
    """
    unknown = [s for s in servers if s not in SERVERS]
    if unknown:
        raise ValueError(f"servers {unknown} must be among {SERVERS}")
    artifact = artifact_or_default(model_dir)
    plan = plan or LoadPlan()
    skipped: list[str] = []
    servers = [s for s in SERVERS if s in servers]
    if "baseline" in servers and not _torch_available():
        servers.remove("baseline")
        skipped.append("baseline (PyTorch eager): torch is not installed")
    served_int8 = (env or {}).get("WAVEMAE_ENCODER_PRECISION", "fp32") == "int8"
    backend = "onnxruntime-int8" if served_int8 else "onnxruntime-fp32"
    if engine is None:
        wanted = [backend] + (["pytorch-eager"] if "baseline" in servers else [])
        engine = run_engine(artifact, backends=wanted, seconds=engine_seconds, measure_peaks=False)
    if torch_threads is None:
        eager = [r for r in engine["backends"] if r["name"] == "pytorch-eager"]
        torch_threads = eager[0]["best_threads"] if eager else 1
    reference = engine_reference(engine, backend)
    spectra, source = raw_request_spectra(artifact)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    profiles: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        # Separate working directory: the service must not touch files where the bench ran.
        cwd = stack.enter_context(tempfile.TemporaryDirectory(prefix="wavemae-bench-"))
        started = {
            name: stack.enter_context(_start(name, artifact, env, torch_threads, cwd))
            for name in servers
        }
        for body in plan.bodies:
            for concurrency in plan.concurrencies:
                for name, server in started.items():
                    if body not in _BODIES.get(name, plan.bodies):
                        continue
                    row = asyncio.run(
                        measure_point(
                            server.url,
                            spectra,
                            plan,
                            body,
                            concurrency,
                            server.pid,
                            reference["spectra_per_s"],
                        )
                    )
                    rows[name].append(row)
        if profile_dir is not None:
            for name, server in started.items():
                out = Path(profile_dir) / name
                profiles[name] = profile_server(
                    server.url, spectra, server.pid, profile_seconds, out
                )
    result: dict[str, Any] = {}
    for name in servers:
        part = {
            "mode": name,
            "server": _LABELS[name],
            "url": started[name].url,
            "request_spectra": source,
            "reference": reference,
            "rows": rows[name],
        }
        if name == "baseline":
            part["torch_threads"] = torch_threads
        if name in profiles:
            part["profile"] = profiles[name]
        result[name] = part
    if "serve" in result:
        result["serve"]["env"] = dict(env or {})
    result["comparison"] = compare_servers(result)
    result["skipped"] = skipped
    return result


def all_mode(
    model_dir: str | os.PathLike | None = None,
    *,
    plan: LoadPlan | None = None,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    engine_seconds: float = 0.5,
    thread_counts: Sequence[int] | None = None,
    checkpoint: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    servers: Sequence[str] = SERVERS,
    profile_dir: str | os.PathLike | None = None,
    profile_seconds: float = 8.0,
) -> dict[str, Any]:
    """Engine, then the service next to its peers, with the ratios and the targets."""
    engine = engine_mode(
        model_dir,
        batch_sizes=batch_sizes,
        seconds=engine_seconds,
        thread_counts=thread_counts,
        checkpoint=checkpoint,
    )
    results: dict[str, Any] = {"engine": engine}
    results.update(
        baseline_mode(
            model_dir,
            plan=plan,
            engine=engine,
            env=env,
            servers=servers,
            profile_dir=profile_dir,
            profile_seconds=profile_seconds,
        )
    )
    results["targets"] = evaluate_targets(results)
    return results

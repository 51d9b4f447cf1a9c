"""The same closed-loop load as :func:`wavemae.bench.loadgen.run_load`, driven by ``wrk``.

wrk (a C load generator, ``apt-get install wrk``) costs a few microseconds of CPU per request
where the Python client costs about half a millisecond; on a small machine shared by client
and server that difference is the server's CPU. One wrk thread holds ``concurrency``
keep-alive connections; a Lua script sends the pre-encoded bodies in turn, counts answers by
status and stops at ``max_requests``; wrk's own ``-d`` bounds the time.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from wavemae.bench.loadgen import LoadResult, check_loopback, encode_bodies

__all__ = ["run_load_wrk", "wrk_available"]

_MARK = "WAVEMAE-WRK-JSON "

_SCRIPT = """
local paths = {%(paths)s}
local headers = {%(headers)s}
local max_requests = %(max_requests)d
bodies = {}
statuses = {}
answered = 0
local sent = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for i, p in ipairs(paths) do
    local f = assert(io.open(p, "rb"))
    bodies[i] = f:read("*all")
    f:close()
  end
end

function request()
  sent = sent + 1
  return wrk.format("POST", "%(path)s", headers, bodies[(sent %% #bodies) + 1])
end

function response(status, hdrs, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  answered = answered + 1
  if answered >= max_requests then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do
      table.insert(counts, string.format('"%%s": %%d', k, v))
    end
  end
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"duration_us": %%d, "requests": %%d, "statuses": {%%s}, ' ..
    '"errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}, ' ..
    '"p50_us": %%d, "p95_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.duration, summary.requests, table.concat(counts, ", "),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def wrk_available() -> bool:
    """Whether the ``wrk`` command is installed."""
    return shutil.which("wrk") is not None


def _lua_string(text: str) -> str:
    if any(c in text for c in '"\\\n'):
        raise ValueError(f"{text!r} cannot be embedded in the wrk script")
    return f'"{text}"'


def _wrk(argv: list[str]) -> tuple[dict, float]:
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    for line in done.stdout.splitlines():
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK) :]), cpu
    raise RuntimeError(f"wrk failed (exit {done.returncode}): {done.stderr[-1000:]}")


def run_load_wrk(
    url: str,
    spectra: np.ndarray,
    *,
    concurrency: int,
    body: str = "json",
    path: str = "/embed",
    max_requests: int = 2000,
    max_seconds: float = 10.0,
    warmup_seconds: float = 1.0,
    timeout_s: float = 30.0,
) -> LoadResult:
    """Like :func:`wavemae.bench.loadgen.run_load`, with wrk sending the requests.

    Latency percentiles are wrk's, over every answer (wrk does not split them by status).

    Raises:
        ValueError: for a non-loopback URL or a non-positive concurrency/limit.
        FileNotFoundError: if wrk is not installed.
        RuntimeError: if wrk fails.
    """
    check_loopback(url)
    if concurrency < 1 or max_requests < 1 or max_seconds <= 0:
        raise ValueError(
            f"concurrency={concurrency}, max_requests={max_requests} and "
            f"max_seconds={max_seconds} must be positive"
        )
    exe = shutil.which("wrk")
    if exe is None:
        raise FileNotFoundError("wrk is not installed (apt-get install wrk)")
    bodies, headers = encode_bodies(spectra, body)
    with tempfile.TemporaryDirectory(prefix="wavemae-wrk-") as tmp:
        folder = Path(tmp)
        paths = []
        for i, payload in enumerate(bodies):
            file = folder / f"body-{i}.bin"
            file.write_bytes(payload)
            paths.append(_lua_string(str(file)))
        script = folder / "load.lua"
        script.write_text(
            _SCRIPT
            % {
                "paths": ", ".join(paths),
                "headers": ", ".join(
                    f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()
                ),
                "max_requests": max_requests,
                "path": path,
                "mark": _MARK,
            }
        )
        target = url.rstrip("/")
        common = [exe, "-t", "1", "-c", str(concurrency), "--timeout", f"{timeout_s:g}s"]
        common += ["-s", str(script)]
        if warmup_seconds > 0:
            _wrk([*common, "-d", f"{max(1, round(warmup_seconds))}s", target])
        stats, cpu = _wrk([*common, "-d", f"{max(1, round(max_seconds))}s", target])
    result = LoadResult(concurrency=concurrency, body=body)
    statuses = {str(k): int(v) for k, v in stats["statuses"].items()}
    transport = sum(stats["errors"][k] for k in ("connect", "read", "write", "timeout"))
    if transport:
        statuses["transport"] = transport
    result.statuses = dict(sorted(statuses.items()))
    result.requests = sum(statuses.values())
    result.ok = statuses.get("200", 0)
    result.seconds = stats["duration_us"] / 1e6
    result.spectra_per_s = result.ok / result.seconds if result.seconds > 0 else 0.0
    result.p50_ms, result.p95_ms, result.p99_ms, result.max_ms = (
        stats[k] / 1e3 for k in ("p50_us", "p95_us", "p99_us", "max_us")
    )
    result.client_cpu_s = cpu
    return result

"""Sample a running server with py-spy while load runs, and summarise where its CPU went.

py-spy attaches to the process from outside (``--nonblocking``: the server is not paused), so
the profile shows the service as it runs under the benchmark's load. The summary groups the
samples by the innermost frame ("self" time) and by a few layers a request passes through.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["LAYERS", "start_py_spy", "summarise_collapsed"]

#: Layer -> substrings of a frame; a sample counts for a layer when any frame matches.
LAYERS: dict[str, tuple[str, ...]] = {
    "onnxruntime inference": ("onnxruntime_inference_collection",),
    "json (orjson/json)": ("orjson", "json/"),
    "pydantic validation": ("pydantic",),
    "npy encode/decode": ("numpy/lib/_format_impl", "numpy/lib/format", "npyio"),
    "preprocessing": ("wavemae/preprocessing", "wavemae/artifact"),
    "uvicorn/httptools": ("uvicorn/",),
    "starlette/fastapi": ("starlette/", "fastapi/"),
    "micro-batcher": ("wavemae_service/batching",),
    "prometheus metrics": ("prometheus_client",),
    "asyncio event loop": ("asyncio/",),
}


def start_py_spy(pid: int, seconds: float, out: Path, rate: int = 100) -> subprocess.Popen[bytes]:
    """Start ``py-spy record`` on ``pid`` for ``seconds`` writing collapsed stacks to ``out``.

    Raises:
        FileNotFoundError: if py-spy is not installed (``pip install py-spy``).
    """
    exe = shutil.which("py-spy")
    if exe is None:
        raise FileNotFoundError("py-spy is not installed: pip install py-spy")
    argv = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    argv += ["--rate", str(rate), "--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _short(frame: str) -> str:
    # "run (onnxruntime/capi/onnxruntime_inference_collection.py:287)" -> keep as is, trimmed
    return frame if len(frame) <= 110 else frame[:107] + "..."


def summarise_collapsed(path: Path, top: int = 15) -> dict[str, Any]:
    """Summarise py-spy's collapsed output (``frame;frame;... count`` per line).

    Returns:
        ``samples`` (total), ``layers`` (fraction of samples with a frame in each layer of
        :data:`LAYERS`, overlapping), ``top_self`` (innermost frames by fraction).
    """
    self_counts: Counter[str] = Counter()
    layer_counts: Counter[str] = Counter()
    total = 0
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        self_counts[_short(frames[-1])] += n
        for layer, needles in LAYERS.items():
            if any(needle in frame for frame in frames for needle in needles):
                layer_counts[layer] += n
    if total == 0:
        return {"samples": 0, "layers": {}, "top_self": []}
    return {
        "samples": total,
        "layers": {k: layer_counts[k] / total for k in LAYERS if layer_counts[k]},
        "top_self": [[frame, n / total] for frame, n in self_counts.most_common(top)],
    }

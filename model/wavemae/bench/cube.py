"""``wavemae bench cube``: the server's memory while it embeds a hyperspectral cube.

Writes a ``(rows, cols, bands)`` float32 cube of realistic spectra, starts the service, posts
the cube to ``/embed/cube`` (streamed from the file) and samples the server's resident memory
(``/proc/PID/status``: VmRSS every 20 ms and the kernel's peak, VmHWM) from ready to answer.
The point: the growth stays near the answer's size plus a chunk, far below one copy of the
cube (the cube in float64, what preprocessing a whole cube at once would hold several times).
Linux only (``/proc``).
"""

from __future__ import annotations

import io
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from wavemae.artifact import load_artifact
from wavemae.bench.servers import service_process
from wavemae.bench.spectra import raw_request_spectra

__all__ = ["cube_mode", "format_cube"]

_MIB = 1024 * 1024


def _status_kib(pid: int, key: str) -> int:
    """A ``VmRSS``/``VmHWM``/``RssAnon`` line of ``/proc/PID/status`` in KiB (0 when
    unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _write_cube(
    path: Path, shape: tuple[int, int, int], model_dir: str | Path | None
) -> list[float]:
    """A cube of tablet spectra (the model's range, ``bands`` points) written row by row;
    returns its wavelengths."""
    from wavemae.artifact import resolve_model_dir
    from wavemae.preprocessing import resample_to_grid

    artifact = load_artifact(resolve_model_dir(model_dir))
    rows, cols, bands = shape
    pixels, _ = raw_request_spectra(artifact, n=1024)
    grid = artifact.wavelengths
    wavelengths = np.linspace(float(grid.min()), float(grid.max()), bands)
    pixels = resample_to_grid(pixels.astype(np.float64), grid, wavelengths).astype(np.float32)
    cube = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    rng = np.random.default_rng(0)
    for r in range(rows):
        cube[r] = pixels[rng.integers(0, len(pixels), cols)]
    cube.flush()
    del cube
    return [float(w) for w in wavelengths]


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def cube_mode(
    model_dir: str | Path | None = None,
    *,
    shape: tuple[int, int, int] = (200, 200, 256),
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Embed one cube of ``shape`` through a started service; its memory, time and sizes.

    Args:
        model_dir: artifact folder or shipped model name to serve (default: the shipped
            default model).
        shape: ``(rows, cols, bands)`` of the synthetic cube.
        env: extra ``WAVEMAE_*`` settings for the service.

    Returns:
        A JSON-ready dict: sizes (cube, answer, one chunk) and the server's RSS before, at its
        peak during the request, and the growth, in MiB; seconds and pixels/s.
    """
    rows, cols, bands = shape
    with tempfile.TemporaryDirectory(prefix="wavemae-bench-cube-") as folder:
        cube_path = Path(folder) / "cube.npy"
        wavelengths = _write_cube(cube_path, shape, model_dir)
        settings = {
            "WAVEMAE_LIBRARY_URL": ":memory:",
            "WAVEMAE_LOG_LEVEL": "warning",
            "WAVEMAE_MAX_CUBE_PIXELS": str(max(rows * cols, 1)),
            **({"WAVEMAE_MODEL_DIR": str(model_dir)} if model_dir else {}),
            **(env or {}),
        }
        with service_process(settings, cwd=folder) as server, httpx.Client(timeout=None) as http:
            model = http.get(server.url + "/model").json()
            latent_dim = int(model.get("latent_dim", 0))
            chunk_pixels = int(settings.get("WAVEMAE_CUBE_CHUNK_PIXELS", 512))
            pid = server.pid
            started_rss = _status_kib(pid, "VmRSS")
            # A small cube first: the first batches' one-off costs (ONNX Runtime's arenas for
            # the batch shapes, thread pools) are not what a cube's size costs.
            warm = np.load(cube_path, mmap_mode="r")[:8, :8]
            http.post(
                server.url + "/embed/cube",
                content=_npy_bytes(np.ascontiguousarray(warm)),
                headers={"Content-Type": "application/x-npy"},
                params={"wavelengths": ",".join(f"{w:.4f}" for w in wavelengths)},
            ).raise_for_status()
            before = _status_kib(pid, "VmRSS")
            anon_before = _status_kib(pid, "RssAnon")
            peak_before = _status_kib(pid, "VmHWM")
            samples: list[int] = []
            anon_samples: list[int] = []
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    samples.append(_status_kib(pid, "VmRSS"))
                    anon_samples.append(_status_kib(pid, "RssAnon"))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            with open(cube_path, "rb") as handle:
                response = http.post(
                    server.url + "/embed/cube",
                    content=handle,
                    headers={"Content-Type": "application/x-npy"},
                    params={"wavelengths": ",".join(f"{w:.4f}" for w in wavelengths)},
                )
            seconds = time.perf_counter() - started
            done.set()
            sampler.join()
            peak_after = _status_kib(pid, "VmHWM")
        if response.status_code != 200:
            raise RuntimeError(f"/embed/cube answered {response.status_code}: {response.text}")
        answer_bytes = len(response.content)
    # VmHWM is the lifetime peak (start-up may have set it): it speaks for this request only
    # when the request raised it; otherwise the sampled maximum does.
    peak = peak_after if peak_after > peak_before else max([*samples, before])
    anon_peak = max([*anon_samples, anon_before])
    return {
        "shape": list(shape),
        "latent_dim": latent_dim,
        "cube_float32_mib": rows * cols * bands * 4 / _MIB,
        "cube_float64_mib": rows * cols * bands * 8 / _MIB,
        "answer_mib": answer_bytes / _MIB,
        "chunk_float64_mib": min(chunk_pixels, rows * cols) * bands * 8 / _MIB,
        "rss_started_mib": started_rss / 1024,
        "rss_before_mib": before / 1024,
        "rss_peak_mib": peak / 1024,
        "rss_growth_mib": (peak - before) / 1024,
        "anon_before_mib": anon_before / 1024,
        "anon_peak_mib": anon_peak / 1024,
        "anon_growth_mib": (anon_peak - anon_before) / 1024,
        "seconds": seconds,
        "pixels_per_s": rows * cols / seconds,
    }


def format_cube(result: dict[str, Any]) -> str:
    """The measurement as a few printed lines."""
    r = result
    rows, cols, bands = r["shape"]
    return "\n".join(
        [
            f"cube {rows}x{cols}x{bands} float32: {r['cube_float32_mib']:.1f} MiB "
            f"({r['cube_float64_mib']:.1f} MiB as float64)",
            f"answer ({rows}, {cols}, {r['latent_dim']}) float32: {r['answer_mib']:.1f} MiB; "
            f"one chunk as float64: {r['chunk_float64_mib']:.1f} MiB",
            f"server RSS: {r['rss_started_mib']:.1f} MiB when ready, {r['rss_before_mib']:.1f} "
            f"MiB after an 8x8 warm-up cube, {r['rss_peak_mib']:.1f} MiB at peak during this "
            f"cube: growth {r['rss_growth_mib']:.1f} MiB",
            f"  of which anonymous memory (RssAnon, sampled): {r['anon_before_mib']:.1f} -> "
            f"{r['anon_peak_mib']:.1f} MiB, growth {r['anon_growth_mib']:.1f} MiB; the rest is "
            "file pages of the memory-mapped cube and answer (page cache, reclaimable)",
            f"{r['seconds']:.1f} s, {r['pixels_per_s']:.0f} pixels/s",
        ]
    )

"""``wavemae bench engine``: in-process encoder throughput of every available backend.

For each backend (see :mod:`wavemae.bench.backends`) and batch size, spectra/s is measured
as ``batch * calls / elapsed`` over a fixed time budget after a warm-up. The model's FLOPs per
spectrum (from the manifest's config) turn the best throughput into GFLOP/s, shown as a
fraction of this machine's measured matrix-multiply throughput in the same precision.
Lower precisions are checked for retrieval parity against ONNX Runtime fp32 on held-out
spectra: top-1 neighbour agreement and recall@5 (cosine, leave-one-out).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from wavemae.artifact import Artifact
from wavemae.bench.backends import EncoderBackend, available_backends, cpu_has_bf16
from wavemae.bench.flops import encoder_flops_per_spectrum, measure_matmul_gflops
from wavemae.bench.measure import measure_throughput, neighbour_agreement
from wavemae.bench.spectra import heldout_spectra

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "PARITY_THRESHOLD",
    "run_engine",
]

DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
PARITY_THRESHOLD = 0.99  # top-1 neighbour agreement a faster precision must keep


def _embed_all(backend: EncoderBackend, x: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([backend.run(x[i : i + batch]) for i in range(0, x.shape[0], batch)])


def run_engine(
    artifact: Artifact,
    *,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    seconds: float = 0.5,
    thread_counts: Sequence[int] | None = None,
    checkpoint: str | os.PathLike | None = None,
    backends: Sequence[str] | None = None,
    measure_peaks: bool = True,
) -> dict[str, Any]:
    """Measure every available backend at every batch size; see the module docstring.

    Args:
        artifact: the loaded model artifact.
        batch_sizes: batch sizes to time.
        seconds: time budget per (backend, threads, batch size).
        thread_counts: intra-op thread counts to try for every backend (default: 1 and all
            CPUs). Each backend's best is over threads and batch sizes: on a shared machine,
            two OpenMP threads can be 100x slower than one when another process holds a core.
        checkpoint: optional training checkpoint for the eager backend's weights.
        backends: only these backend names (default: all available); the reference
            ``onnxruntime-fp32`` is always measured.
        measure_peaks: also measure matmul throughput (about 2 s); without it the
            fraction-of-peak columns are empty.

    Returns:
        A JSON-ready dict: model, FLOPs per spectrum, matmul GFLOP/s, and per backend the
        spectra/s by thread count and batch size, its best, GFLOP/s, fraction of peak, parity.
    """
    cpus = os.cpu_count() or 1
    thread_counts = sorted(set(thread_counts or (1, cpus)))
    flops = encoder_flops_per_spectrum(artifact.manifest.model_config)
    skipped: list[str] = []
    peaks: dict[str, float] = {}
    dtypes = ["float32", "bfloat16"] if cpu_has_bf16() else ["float32"]

    def measure_peaks_now() -> None:
        # The best over thread counts and over two moments (before and after the backends):
        # on a shared machine one thread can beat two, and a busy second can halve a peak.
        for dtype in dtypes if measure_peaks else []:
            key = "fp32" if dtype == "float32" else "bf16"
            try:
                best = max(measure_matmul_gflops(dtype, threads=t) for t in thread_counts)
            except ValueError as exc:
                skipped.append(f"{dtype} matmul peak: {exc}")
                continue
            peaks[key] = max(peaks.get(key, 0.0), best)

    measure_peaks_now()
    pool, pool_source = heldout_spectra(artifact)
    rows: dict[str, dict[str, Any]] = {}
    for threads in thread_counts:
        found, not_found = available_backends(artifact, threads=threads, checkpoint=checkpoint)
        skipped.extend(n for n in not_found if n not in skipped)
        if backends:
            unknown = set(backends) - {b.name for b in found}
            if unknown:
                raise ValueError(
                    f"backends {sorted(unknown)} are not available here; "
                    f"available: {[b.name for b in found]}"
                )
            found = [b for b in found if b.name in backends or b.name == "onnxruntime-fp32"]
        for backend in found:
            row = rows.setdefault(
                backend.name,
                {
                    "name": backend.name,
                    "precision": backend.precision,
                    "note": backend.note,
                    "by_threads": {},
                    "embeddings": _embed_all(backend, pool),
                },
            )
            row["by_threads"][str(threads)] = {
                str(batch): measure_throughput(backend.run, pool, batch, seconds=seconds)
                for batch in batch_sizes
            }
    measure_peaks_now()
    if "onnxruntime-fp32" not in rows:
        raise ValueError("the onnxruntime-fp32 reference backend must be measured")
    reference = rows["onnxruntime-fp32"]["embeddings"]
    for row in rows.values():
        threads, batch, best = max(
            (
                (t, b, m["spectra_per_s"])
                for t, by in row["by_threads"].items()
                for b, m in by.items()
            ),
            key=lambda item: item[2],
        )
        gflops = best * flops / 1e9
        peak = peaks.get("bf16" if row["precision"] == "bf16" else "fp32")
        parity = neighbour_agreement(reference, row.pop("embeddings"))
        row.update(
            best_threads=int(threads),
            best_batch=int(batch),
            best_spectra_per_s=best,
            gflops=gflops,
            fraction_of_matmul_peak=gflops / peak if peak else None,
            parity=parity,
            parity_holds=parity["top1_agreement"] >= PARITY_THRESHOLD,
        )
    fp32_best = rows["onnxruntime-fp32"]["best_spectra_per_s"]
    for row in rows.values():
        row["speedup_vs_onnxruntime_fp32"] = row["best_spectra_per_s"] / fp32_best
    return {
        "mode": "engine",
        "model": artifact.model_id,
        "model_config": artifact.manifest.model_config,
        "flops_per_spectrum": flops,
        "matmul_gflops": peaks,
        "cpus": cpus,
        "thread_counts": thread_counts,
        "batch_sizes": list(batch_sizes),
        "heldout": pool_source,
        "parity_threshold": PARITY_THRESHOLD,
        "backends": list(rows.values()),
        "skipped": skipped,
    }

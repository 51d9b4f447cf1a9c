"""Optional int8 encoder: ONNX Runtime dynamic quantisation, kept only when it earns its place.

:func:`quantize_encoder_int8` writes ``encoder.int8.onnx`` next to ``encoder.onnx`` and keeps it
only if, on the held-out spectra it is given, it is measurably faster than the fp32 encoder and
retrieval is intact: the nearest neighbour (cosine, excluding the query itself) of each spectrum
is the same under both encoders (top-1 agreement) and the fp32 top-5 neighbours are found in the
int8 top-5 (recall@5). Cosine between the two embeddings of one spectrum is reported but never
decides: a random-weight encoder gives 0.9999 there while its neighbours change.

:func:`measure_throughput` is the timing helper used here and by :mod:`wavemae.export_bench`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wavemae.artifact import ENCODER_INT8_ONNX, ENCODER_ONNX, SPECTRA

__all__ = [
    "MIN_RECALL_AT_5",
    "MIN_SPEEDUP",
    "MIN_TOP1_AGREEMENT",
    "measure_throughput",
    "quantize_encoder_int8",
    "retrieval_agreement",
]

MIN_TOP1_AGREEMENT = 0.95
MIN_RECALL_AT_5 = 0.95
MIN_SPEEDUP = 1.10  # at batch 32, best of interleaved repeats: noise on a shared CPU is ~5%


def measure_throughput(
    run: Callable[[np.ndarray], Any],
    spectra: np.ndarray,
    batch_sizes: Sequence[int] = (1, 8, 32),
    *,
    min_seconds: float = 0.5,
    repeats: int = 3,
) -> dict[int, float]:
    """Spectra per second of ``run`` on batches of ``spectra`` (rows reused cyclically).

    Each batch size is timed ``repeats`` times for at least ``min_seconds`` after a warm-up;
    the best repeat is reported (the least disturbed by other processes on the machine).
    """
    x = np.ascontiguousarray(spectra, dtype=np.float32)
    result: dict[int, float] = {}
    for b in batch_sizes:
        idx = np.arange(b) % x.shape[0]
        batch = np.ascontiguousarray(x[idx])
        run(batch)  # warm-up: allocations, kernel selection
        best = 0.0
        for _ in range(repeats):
            n, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < min_seconds or n == 0:
                run(batch)
                n += b
            best = max(best, n / elapsed)
        result[b] = best
    return result


def retrieval_agreement(z_ref: np.ndarray, z_test: np.ndarray, k: int = 5) -> dict[str, float]:
    """How well ``z_test`` (N, Z) preserves the cosine neighbours of ``z_ref`` (N, Z).

    Returns:
        ``top1_agreement`` (fraction of queries whose nearest other spectrum is the same),
        ``recall_at_{k}`` (mean fraction of the reference top-k found in the test top-k),
        ``min_cosine`` (worst cosine between a spectrum's two embeddings).
    """
    if z_ref.shape != z_test.shape or z_ref.shape[0] <= k:
        raise ValueError(f"need equal shapes with more than k={k} rows, got {z_ref.shape}, "
                         f"{z_test.shape}")

    def neighbours(z: np.ndarray) -> np.ndarray:
        u = z / np.linalg.norm(z, axis=1, keepdims=True)
        sim = u @ u.T
        np.fill_diagonal(sim, -np.inf)  # a query is not its own neighbour
        return np.argsort(-sim, axis=1, kind="stable")[:, :k]

    ref, test = neighbours(z_ref.astype(np.float64)), neighbours(z_test.astype(np.float64))
    recall = np.mean([len(set(r) & set(t)) / k for r, t in zip(ref, test, strict=True)])
    cos = np.sum(z_ref * z_test, axis=1) / (
        np.linalg.norm(z_ref, axis=1) * np.linalg.norm(z_test, axis=1)
    )
    return {
        "top1_agreement": float(np.mean(ref[:, 0] == test[:, 0])),
        f"recall_at_{k}": float(recall),
        "min_cosine": float(np.min(cos)),
    }


def quantize_encoder_int8(folder: Path, spectra: np.ndarray) -> dict[str, Any]:
    """Try a dynamically quantised encoder in ``folder``; keep its file only if it is worth it.

    Args:
        folder: staging folder holding ``encoder.onnx``.
        spectra: ``(N, seq_len)`` held-out model-input spectra (N > 5).

    Returns:
        The manifest's ``quantization`` record: method, ``kept``, the reason, the retrieval
        numbers, and fp32/int8 spectra/s at batch 1, 8 and 32.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from wavemae.export_verify import make_session

    folder = Path(folder)
    fp32_path, int8_path = folder / ENCODER_ONNX, folder / ENCODER_INT8_ONNX
    with tempfile.TemporaryDirectory() as tmp:
        # Shape inference + graph optimisation first, as ONNX Runtime recommends.
        prepared = Path(tmp) / "encoder.prepared.onnx"
        quant_pre_process(fp32_path, prepared, skip_symbolic_shape=True)
        quantize_dynamic(prepared, int8_path, weight_type=QuantType.QInt8)
    fp32, int8 = make_session(fp32_path), make_session(int8_path)

    def embed(session: Any, x: np.ndarray) -> np.ndarray:
        return np.concatenate([session.run(None, {SPECTRA: x[i : i + 64]})[0]
                               for i in range(0, len(x), 64)])

    x = np.ascontiguousarray(spectra, dtype=np.float32)
    agreement = retrieval_agreement(embed(fp32, x), embed(int8, x), k=5)
    speed = {"fp32": {}, "int8": {}}
    # Interleave the two so drifting load from other processes hits both alike.
    for b in (1, 8, 32):
        for _ in range(2):
            for label, session in (("fp32", fp32), ("int8", int8)):
                sps = measure_throughput(lambda xb, s=session: s.run(None, {SPECTRA: xb}), x,
                                         (b,), min_seconds=0.3, repeats=1)[b]
                speed[label][str(b)] = max(speed[label].get(str(b), 0.0), sps)
    speedup = speed["int8"]["32"] / speed["fp32"]["32"]
    reasons = []
    if agreement["top1_agreement"] < MIN_TOP1_AGREEMENT:
        reasons.append(f"top-1 agreement {agreement['top1_agreement']:.3f} < {MIN_TOP1_AGREEMENT}")
    if agreement["recall_at_5"] < MIN_RECALL_AT_5:
        reasons.append(f"recall@5 {agreement['recall_at_5']:.3f} < {MIN_RECALL_AT_5}")
    if speedup < MIN_SPEEDUP:
        reasons.append(f"speed-up at batch 32 is {speedup:.2f}x < {MIN_SPEEDUP}x")
    kept = not reasons
    if not kept:
        int8_path.unlink()
    return {
        "method": "onnxruntime.quantization.quantize_dynamic, QInt8 weights",
        "kept": kept,
        "reason": "faster with retrieval intact" if kept else "; ".join(reasons),
        "n_spectra": int(x.shape[0]),
        **agreement,
        "speedup_batch_32": speedup,
        "spectra_per_s": speed,
        "thresholds": {"top1_agreement": MIN_TOP1_AGREEMENT, "recall_at_5": MIN_RECALL_AT_5,
                       "speedup": MIN_SPEEDUP},
    }

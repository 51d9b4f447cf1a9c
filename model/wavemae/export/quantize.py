"""Optional int8 encoder: ONNX Runtime dynamic quantisation, kept only when it earns its place.

:func:`quantize_encoder_int8` writes ``encoder.int8.onnx`` next to ``encoder.onnx`` and keeps it
only if, on the held-out spectra it is given, it is measurably faster than the fp32 encoder and
retrieval is intact: the nearest neighbour (cosine, excluding the query itself) of each spectrum
is the same under both encoders (top-1 agreement) and the fp32 top-5 neighbours are found in the
int8 top-5 (recall@5). Cosine between the two embeddings of one spectrum is reported but never
decides: a random-weight encoder gives 0.9999 there while its neighbours change.

Timing and neighbour agreement come from :mod:`wavemae.bench.measure`, shared with
``wavemae bench``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from wavemae.artifact import ENCODER_INT8_ONNX, ENCODER_ONNX, SPECTRA
from wavemae.bench.backends import ort_session
from wavemae.bench.measure import measure_throughput, neighbour_agreement

__all__ = [
    "MIN_RECALL_AT_5",
    "MIN_SPEEDUP",
    "MIN_TOP1_AGREEMENT",
    "quantize_encoder_int8",
]

MIN_TOP1_AGREEMENT = 0.95
MIN_RECALL_AT_5 = 0.95
MIN_SPEEDUP = 1.10  # at batch 32, best of interleaved repeats: noise on a shared CPU is ~5%


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

    folder = Path(folder)
    fp32_path, int8_path = folder / ENCODER_ONNX, folder / ENCODER_INT8_ONNX
    with tempfile.TemporaryDirectory() as tmp:
        # Shape inference + graph optimisation first, as ONNX Runtime recommends.
        prepared = Path(tmp) / "encoder.prepared.onnx"
        quant_pre_process(fp32_path, prepared, skip_symbolic_shape=True)
        quantize_dynamic(prepared, int8_path, weight_type=QuantType.QInt8)
    fp32, int8 = ort_session(fp32_path), ort_session(int8_path)

    def embed(session: Any, x: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [session.run(None, {SPECTRA: x[i : i + 64]})[0] for i in range(0, len(x), 64)]
        )

    x = np.ascontiguousarray(spectra, dtype=np.float32)
    agreement = neighbour_agreement(embed(fp32, x), embed(int8, x), k=5)
    agreement.pop("max_abs_diff")
    speed = {"fp32": {}, "int8": {}}
    # Interleave the two so drifting load from other processes hits both alike.
    for b in (1, 8, 32):
        for _ in range(2):
            for label, session in (("fp32", fp32), ("int8", int8)):
                sps = measure_throughput(
                    lambda xb, s=session: s.run(None, {SPECTRA: xb}), x, b, seconds=0.3
                )["spectra_per_s"]
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
        "thresholds": {
            "top1_agreement": MIN_TOP1_AGREEMENT,
            "recall_at_5": MIN_RECALL_AT_5,
            "speedup": MIN_SPEEDUP,
        },
    }

"""Issue 10 item 5: int8 and bf16 retrieval parity and CPU speed against ONNX Runtime fp32.

For each artifact: held-out tablet spectra (``wavemae.bench.spectra.heldout_spectra``), the
fp32 encoder.onnx, an int8 copy made exactly as ``wavemae export --quantize int8`` makes it
(``quant_pre_process`` + ``quantize_dynamic`` QInt8), and the PyTorch eager encoder under bf16
autocast. Top-1 neighbour agreement / recall@5 against ORT fp32 (``neighbour_agreement``),
and spectra/s at batch 1 and 32 on one thread, interleaved, best of 3 (``measure_throughput``).

    cd deploy/precision-parity && OMP_NUM_THREADS=1 nice -n 10 python measure.py > result.json

(optionally with model names, e.g. ``"tablet (shipped)"``, to measure only those).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.shape_inference import quant_pre_process

from wavemae.artifact import load_artifact, shipped_model_dir
from wavemae.bench.backends import cpu_has_bf16, eager_encoder_from_artifact, ort_session
from wavemae.bench.measure import measure_throughput, neighbour_agreement
from wavemae.bench.spectra import heldout_spectra

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = {
    "tablet (shipped)": shipped_model_dir("tablet"),
    "tablet InfoNCE": ROOT / "deploy/tablet-objectives-run/artifact",
    "general (shipped default)": shipped_model_dir("default"),
}


def embed_all(run, x: np.ndarray) -> np.ndarray:
    return np.concatenate([run(x[i : i + 64]) for i in range(0, len(x), 64)])


def measure(folder: Path) -> dict:
    artifact = load_artifact(folder)
    x, source = heldout_spectra(artifact)
    with tempfile.TemporaryDirectory() as tmp:
        prepared, int8_path = Path(tmp) / "prepared.onnx", Path(tmp) / "encoder.int8.onnx"
        quant_pre_process(folder / "encoder.onnx", prepared, skip_symbolic_shape=True)
        quantize_dynamic(prepared, int8_path, weight_type=QuantType.QInt8)
        sessions = {
            p: ort_session(f, threads=1)
            for p, f in (("fp32", folder / "encoder.onnx"), ("int8", int8_path))
        }
    runs = {p: (lambda xb, s=s: s.run(None, {"spectra": xb})[0]) for p, s in sessions.items()}
    torch.set_num_threads(1)
    eager = eager_encoder_from_artifact(artifact)

    def bf16(xb: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return eager.forward_all_visible(torch.from_numpy(xb)).float().numpy()

    runs["bf16 (torch autocast)"] = bf16
    emb = {p: embed_all(r, x) for p, r in runs.items()}
    speed: dict[str, dict[str, float]] = {p: {} for p in runs}
    for b in (1, 32):
        for _ in range(3):  # interleaved so drifting load hits every precision alike
            for p, r in runs.items():
                sps = measure_throughput(r, x, b, seconds=0.5)["spectra_per_s"]
                speed[p][str(b)] = max(speed[p].get(str(b), 0.0), sps)
    out = {"heldout": source, "precisions": {}}
    for p in runs:
        parity = neighbour_agreement(emb["fp32"], emb[p])
        out["precisions"][p] = {
            "top1_agreement": parity["top1_agreement"],
            "recall_at_5": parity["recall_at_5"],
            "min_cosine": parity["min_cosine"],
            "spectra_per_s": speed[p],
            "speed_vs_fp32": {b: speed[p][b] / speed["fp32"][b] for b in speed[p]},
        }
    return out


if __name__ == "__main__":
    result = {"cpu_has_native_bf16": cpu_has_bf16(), "threads": 1, "models": {}}
    chosen = sys.argv[1:] or list(ARTIFACTS)  # model names, default all
    for name in chosen:
        folder = ARTIFACTS[name]
        result["models"][name] = measure(Path(folder))
        print(name, "done", file=sys.stderr)
    print(json.dumps(result, indent=1))

"""Encoder throughput of an artifact: PyTorch eager, TorchScript, ONNX Runtime fp32 (and int8).

Run ``python -m wavemae.export_bench [ARTIFACT_DIR] [--batch-sizes 1 8 32] [--seconds 1.0]
[--int8]``
(default: the shipped model). The eager model is rebuilt from the manifest's ``model_config``
with the encoder weights read back from ``encoder.pt``, so no checkpoint is needed. Every
backend runs the same preprocessed spectra; the best of three timed repeats is reported
(spectra/s), and the parity of each backend against eager is printed alongside. Numbers on a
CPU shared with other processes are noisy: compare backends within one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["encoder_throughput", "main"]


def _eager_encoder(art: Any) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    from wavemae.models import WaveMAE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(art.file("encoder_torchscript")))
    model = WaveMAE.from_config(art.manifest.model_config).eval()
    # encoder.pt is EncoderGraph: its state_dict keys are exactly "encoder.*".
    missing, unexpected = model.load_state_dict(scripted.state_dict(), strict=False)
    if unexpected or any(k.startswith("encoder.") for k in missing):
        raise ValueError(f"encoder.pt weights do not fit model_config: {unexpected or missing}")

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.encoder.forward_all_visible(torch.from_numpy(x)).numpy()

    return run


def _torchscript_encoder(art: Any) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(art.file("encoder_torchscript")))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return scripted(torch.from_numpy(x)).numpy()

    return run


def _onnx_encoder(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    from wavemae.export_verify import make_session

    session = make_session(path, threads=threads)
    return lambda x: session.run(None, {"spectra": x})[0]


def encoder_throughput(
    folder: str | os.PathLike,
    *,
    batch_sizes: Sequence[int] = (1, 8, 32),
    seconds: float = 1.0,
    threads: int = 0,
    int8: bool = False,
) -> dict[str, Any]:
    """Measure every encoder backend of the artifact at ``folder``.

    ``int8=True`` also times a dynamically quantised copy of the encoder made on the fly
    (when the artifact does not ship one), for comparison only.

    Returns:
        ``{"model", "threads", "rows": {backend: {"spectra_per_s": {batch: float},
        "max_abs_vs_eager": float}}}``.
    """
    import torch

    from wavemae.artifact import load_artifact
    from wavemae.export import synthetic_spectra
    from wavemae.quantize import measure_throughput

    if threads:
        torch.set_num_threads(threads)
    art = load_artifact(folder)
    x = art.preprocess(synthetic_spectra(64, art.wavelengths, seed=0))
    backends = {"pytorch eager": _eager_encoder(art), "torchscript": _torchscript_encoder(art),
                "onnxruntime fp32": _onnx_encoder(art.file("encoder"), threads)}
    if art.has("encoder_int8"):
        backends["onnxruntime int8"] = _onnx_encoder(art.file("encoder_int8"), threads)
    elif int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process

        tmp = Path(tempfile.mkdtemp(prefix="wavemae-int8-"))
        quant_pre_process(art.file("encoder"), tmp / "prepared.onnx", skip_symbolic_shape=True)
        quantize_dynamic(tmp / "prepared.onnx", tmp / "int8.onnx", weight_type=QuantType.QInt8)
        backends["ort int8 (not shipped)"] = _onnx_encoder(tmp / "int8.onnx", threads)
        shutil.rmtree(tmp)  # the session holds the model in memory
    reference = backends["pytorch eager"](x)
    rows = {}
    for label, run in backends.items():
        rows[label] = {
            "spectra_per_s": measure_throughput(run, x, batch_sizes, min_seconds=seconds / 3),
            "max_abs_vs_eager": float(np.max(np.abs(run(x) - reference))),
        }
    return {"model": art.model_id, "seq_len": art.seq_len, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "rows": rows}


def main(argv: Sequence[str] | None = None) -> None:
    from wavemae.artifact import default_model_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", nargs="?", default=str(default_model_dir()))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per batch size")
    parser.add_argument("--threads", type=int, default=0, help="0 = library default")
    parser.add_argument("--int8", action="store_true",
                        help="also time an int8 copy of the encoder when none is shipped")
    args = parser.parse_args(argv)
    result = encoder_throughput(args.artifact, batch_sizes=args.batch_sizes,
                                seconds=args.seconds, threads=args.threads, int8=args.int8)
    print(f"{result['model']}  seq_len={result['seq_len']}  torch threads={result['threads']}"
          f"  cpus={result['cpus']}")
    header = "".join(f"{'batch ' + str(b):>12}" for b in args.batch_sizes)
    print(f"{'encoder':<24}{header}{'max|d| vs eager':>18}   (spectra/s)")
    for label, row in result["rows"].items():
        cells = "".join(f"{row['spectra_per_s'][b]:>12.0f}" for b in args.batch_sizes)
        print(f"{label:<24}{cells}{row['max_abs_vs_eager']:>18.2e}")


if __name__ == "__main__":
    main()

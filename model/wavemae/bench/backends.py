"""Encoder backends measured by ``wavemae bench engine``, each behind one call signature.

Every backend turns a preprocessed batch ``(B, seq_len)`` float32 into embeddings
``(B, latent_dim)`` float32 (L2-normalised). ONNX Runtime backends need only ``onnxruntime``;
the PyTorch ones (eager, TorchScript, bf16 under autocast) are built only when torch imports,
so the benchmark runs in the torch-free service image too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wavemae.artifact import Artifact

__all__ = [
    "EncoderBackend",
    "available_backends",
    "cpu_has_bf16",
    "eager_encoder_from_artifact",
    "ort_session",
]


@dataclass
class EncoderBackend:
    """One way to run the encoder.

    Attributes:
        name: short label used in tables and JSON (``"onnxruntime-fp32"`` ...).
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"``.
        run: ``(B, L) float32 -> (B, Z) float32``.
        note: how it was built (threads, file), for the report.
    """

    name: str
    precision: str
    run: Callable[[np.ndarray], np.ndarray]
    note: str = ""


def cpu_has_bf16() -> bool:
    """Whether this CPU advertises native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def ort_session(
    path: str | os.PathLike, *, threads: int | None = None, spinning: bool = True
) -> Any:
    """An ONNX Runtime CPU session for ``path``.

    Args:
        path: an ``.onnx`` file.
        threads: intra-op threads (default: all CPUs).
        spinning: let idle intra-op threads spin (ONNX Runtime's default); spinning threads
            burn CPU that an HTTP server on the same cores would need.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _ort_backend(name: str, precision: str, path: Path, threads: int | None) -> EncoderBackend:
    session = ort_session(path, threads=threads)
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run([output_name], {input_name: x})[0]

    n = threads or os.cpu_count()
    return EncoderBackend(name, precision, run, note=f"{path.name}, {n} intra-op threads")


def eager_encoder_from_artifact(artifact: Artifact, checkpoint: str | os.PathLike | None = None):
    """Rebuild the PyTorch eager encoder (``WaveEncoder``, eval mode) of an artifact.

    Weights come from ``checkpoint`` when given (EMA weights if it has them), else from the
    artifact's TorchScript ``encoder.pt``: its parameters are the encoder's, under whatever
    prefix the exporter's wrapper module added. The architecture comes from the manifest's
    ``model_config``.

    Raises:
        ValueError: when the manifest has no ``model_config`` or the weights do not fit it.
    """
    import torch

    from wavemae.models.wave_mae import WaveMAE

    if checkpoint is not None:
        from wavemae.checkpoint import load_checkpoint

        loaded = load_checkpoint(checkpoint)
        model = getattr(loaded, "model", None)
        if model is None:
            raise ValueError(f"checkpoint {checkpoint} did not yield a model")
        return model.encoder.eval()
    config = dict(artifact.manifest.model_config)
    if not config:
        raise ValueError(f"manifest of {artifact.model_id} has no model_config to rebuild eager")
    encoder = WaveMAE.from_config(config).encoder.eval()
    scripted = torch.jit.load(str(artifact.file("encoder_torchscript")), map_location="cpu")
    source = scripted.state_dict()
    target_keys = set(encoder.state_dict())
    state = {}
    for key, value in source.items():
        # Strip the wrapper's prefix ("encoder.", "model.encoder." ...) down to a known key.
        parts = key.split(".")
        for i in range(len(parts)):
            candidate = ".".join(parts[i:])
            if candidate in target_keys:
                state[candidate] = value
                break
    missing = target_keys - set(state)
    if missing:
        raise ValueError(
            f"encoder.pt of {artifact.model_id} lacks {len(missing)} encoder weights "
            f"(e.g. {sorted(missing)[:3]}); pass the training checkpoint instead"
        )
    encoder.load_state_dict(state)
    return encoder


def _torch_backends(
    artifact: Artifact, threads: int | None, checkpoint: str | os.PathLike | None
) -> tuple[list[EncoderBackend], list[str]]:
    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)
    n = torch.get_num_threads()
    bf16 = cpu_has_bf16()
    backends: list[EncoderBackend] = []
    skipped: list[str] = []

    def wrap(fn: Callable[[Any], Any], autocast: bool) -> Callable[[np.ndarray], np.ndarray]:
        def run(x: np.ndarray) -> np.ndarray:
            with (
                torch.inference_mode(),
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast),
            ):
                z = fn(torch.from_numpy(x))
            return z.float().numpy()

        return run

    try:
        eager = eager_encoder_from_artifact(artifact, checkpoint)
    except (ValueError, KeyError, RuntimeError) as exc:
        skipped.append(f"pytorch-eager: {exc}")
    else:
        run = eager.forward_all_visible
        backends.append(EncoderBackend("pytorch-eager", "fp32", wrap(run, False), f"{n} threads"))
        if bf16:
            backends.append(
                EncoderBackend(
                    "pytorch-eager-bf16",
                    "bf16",
                    wrap(run, True),
                    f"eager under autocast(bfloat16), {n} threads",
                )
            )
    if artifact.has("encoder_torchscript"):
        scripted = torch.jit.load(str(artifact.file("encoder_torchscript")), map_location="cpu")
        scripted.eval()
        backends.append(
            EncoderBackend("torchscript", "fp32", wrap(scripted, False), f"encoder.pt, {n} threads")
        )
        if bf16:
            backends.append(
                EncoderBackend(
                    "torchscript-bf16",
                    "bf16",
                    wrap(scripted, True),
                    f"encoder.pt under autocast(bfloat16), {n} threads",
                )
            )
    else:
        skipped.append("torchscript: the artifact has no encoder.pt")
    if not bf16:
        skipped.append("bf16: this CPU has neither AVX512-BF16 nor AMX")
    return backends, skipped


def available_backends(
    artifact: Artifact,
    *,
    threads: int | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> tuple[list[EncoderBackend], list[str]]:
    """Every backend that can run here, and a note for each one that cannot.

    Returns:
        ``(backends, skipped)``: ONNX Runtime fp32 first (the reference), then int8 if the
        artifact has it, then the PyTorch backends if torch imports.
    """
    backends = [_ort_backend("onnxruntime-fp32", "fp32", artifact.file("encoder"), threads)]
    skipped: list[str] = []
    if artifact.has("encoder_int8"):
        backends.append(
            _ort_backend("onnxruntime-int8", "int8", artifact.file("encoder_int8"), threads)
        )
    else:
        skipped.append("onnxruntime-int8: the artifact has no encoder.int8.onnx")
    try:
        import torch  # noqa: F401
    except ImportError:
        skipped.append("pytorch-eager, torchscript, bf16: torch is not installed")
        return backends, skipped
    torch_backends, torch_skipped = _torch_backends(artifact, threads, checkpoint)
    return backends + torch_backends, skipped + torch_skipped

"""Inference backends: ONNX Runtime sessions over one artifact folder.

The batcher only needs ``run(batch) -> array`` and ``health()`` (:class:`Backend`), so a fake can
stand in for unit tests; the service uses :class:`OnnxModel`, which also serves the masked encoder
and the decoder for ``/reconstruct``. Sessions are created once at start-up, never per request.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from wavemae.artifact import Artifact

__all__ = ["Backend", "ModelLoadError", "OnnxModel", "choose_providers"]

log = logging.getLogger("wavemae_service.runtime")

_ORT_TYPES = {"tensor(float)": "float32", "tensor(bool)": "bool", "tensor(int64)": "int64"}


class Backend(Protocol):
    """What the micro-batcher calls: embed a ``(B, seq_len)`` float32 batch."""

    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def health(self) -> dict[str, Any]: ...


class ModelLoadError(RuntimeError):
    """The artifact's graphs cannot be served (missing provider, tensors unlike the manifest)."""


def choose_providers(device: str) -> list[str]:
    """ONNX Runtime providers for ``device`` ('auto', 'cpu', 'cuda').

    Raises:
        ModelLoadError: 'cuda' was asked for but this onnxruntime has no CUDA provider.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ModelLoadError(
                "WAVEMAE_DEVICE=cuda but onnxruntime offers only "
                f"{available}; install onnxruntime-gpu or use WAVEMAE_DEVICE=cpu"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "auto" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


@dataclass
class _Stats:
    batches: int = 0
    failures: int = 0
    last_error: str | None = None


class OnnxModel:
    """The artifact's encoder, masked encoder and decoder as ONNX Runtime sessions.

    Args:
        artifact: a loaded (and verified) :class:`~wavemae.artifact.Artifact`.
        device: 'auto' | 'cpu' | 'cuda' (see :func:`choose_providers`).
        encoder_precision: 'fp32' or 'int8' (the artifact's ``encoder_int8`` graph).
        intra_op_threads, inter_op_threads: ONNX Runtime thread pools (0 = its default).
        allow_spinning: let idle ONNX Runtime threads busy-wait.

    Raises:
        ModelLoadError: a graph is missing, or its inputs/outputs differ from the manifest.
    """

    def __init__(
        self,
        artifact: Artifact,
        *,
        device: str = "auto",
        encoder_precision: str = "fp32",
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        allow_spinning: bool = False,
    ) -> None:
        import onnxruntime as ort

        self.artifact = artifact
        self.seq_len = artifact.seq_len
        self.latent_dim = artifact.latent_dim
        self.encoder_role = "encoder_int8" if encoder_precision == "int8" else "encoder"
        if not artifact.has(self.encoder_role):
            raise ModelLoadError(
                f"WAVEMAE_ENCODER_PRECISION={encoder_precision} but artifact "
                f"{artifact.model_id} has no {self.encoder_role!r} graph"
            )
        self.requested_device = device
        providers = choose_providers(device)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        spin = "1" if allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        self.threads = {"intra_op": intra_op_threads, "inter_op": inter_op_threads}
        self._sessions: dict[str, Any] = {}
        for role in (self.encoder_role, "encoder_masked", "decoder"):
            if not artifact.has(role):
                raise ModelLoadError(f"artifact {artifact.model_id} has no {role!r} graph")
            try:
                session = ort.InferenceSession(
                    str(artifact.file(role)), sess_options=options, providers=providers
                )
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ModelLoadError(f"ONNX Runtime cannot load the {role!r} graph: {exc}") from exc
            self._check_against_manifest(role, session)
            self._sessions[role] = session
        self.providers = self._sessions[self.encoder_role].get_providers()
        log.info(
            "model %s: providers %s (requested device=%s), encoder %s, threads %s",
            artifact.model_id,
            self.providers,
            device,
            self.encoder_role,
            self.threads,
        )
        self._stats = _Stats()
        self._lock = threading.Lock()

    # -- checks ----------------------------------------------------------------------------

    def _check_against_manifest(self, role: str, session: Any) -> None:
        """Names, element types and fixed dims of the graph must equal the manifest's."""
        for kind, actual, expected in (
            ("input", session.get_inputs(), self.artifact.inputs(role)),
            ("output", session.get_outputs(), self.artifact.outputs(role)),
        ):
            got = {a.name: a for a in actual}
            if sorted(got) != sorted(e.name for e in expected):
                raise ModelLoadError(
                    f"{role} graph {kind}s are {sorted(got)}, the manifest says "
                    f"{sorted(e.name for e in expected)}"
                )
            for spec in expected:
                arg = got[spec.name]
                dtype = _ORT_TYPES.get(arg.type, arg.type)
                if dtype != spec.dtype:
                    raise ModelLoadError(
                        f"{role} {kind} {spec.name!r} has type {dtype}, manifest says {spec.dtype}"
                    )
                shape = list(arg.shape)
                if len(shape) != len(spec.shape) or any(
                    isinstance(want, int) and have != want
                    for have, want in zip(shape, spec.shape, strict=True)
                ):
                    raise ModelLoadError(
                        f"{role} {kind} {spec.name!r} has shape {shape}, manifest says "
                        f"{list(spec.shape)}"
                    )

    # -- inference -------------------------------------------------------------------------

    def _run(self, role: str, feeds: dict[str, np.ndarray], output: str) -> np.ndarray:
        try:
            (result,) = self._sessions[role].run([output], feeds)
        except Exception as exc:
            with self._lock:
                self._stats.failures += 1
                self._stats.last_error = f"{role}: {type(exc).__name__}"
            raise
        with self._lock:
            self._stats.batches += 1
        return result

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Embed ``(B, seq_len)`` float32 preprocessed spectra -> ``(B, latent_dim)`` float32."""
        return self.embed(batch)

    def embed(self, spectra: np.ndarray) -> np.ndarray:
        """``(B, seq_len)`` f32 -> ``(B, latent_dim)`` f32 L2-normalised embeddings."""
        x = np.ascontiguousarray(spectra, dtype=np.float32)
        return self._run(self.encoder_role, {"spectra": x}, "embedding")

    def embed_masked(self, spectra: np.ndarray, visible: np.ndarray) -> np.ndarray:
        """Embed with hidden positions: ``visible`` ``(B, seq_len)`` bool, True = seen."""
        feeds = {
            "spectra": np.ascontiguousarray(spectra, dtype=np.float32),
            "visible": np.ascontiguousarray(visible, dtype=bool),
        }
        return self._run("encoder_masked", feeds, "embedding")

    def decode(self, embeddings: np.ndarray) -> np.ndarray:
        """``(B, latent_dim)`` f32 -> ``(B, seq_len)`` f32 reconstructions (model space)."""
        z = np.ascontiguousarray(embeddings, dtype=np.float32)
        return self._run("decoder", {"embedding": z}, "reconstruction")

    def reconstruct(self, spectra: np.ndarray, visible: np.ndarray) -> np.ndarray:
        """Masked encoder then decoder: ``(B, seq_len)`` reconstructions in model space."""
        if bool(np.all(visible)):
            return self.decode(self.embed(spectra))
        return self.decode(self.embed_masked(spectra, visible))

    def warm_up(self, batch_sizes: tuple[int, ...] = (1, 8)) -> float:
        """Run every graph once per batch size; returns seconds taken."""
        start = time.perf_counter()
        for b in batch_sizes:
            x = np.zeros((b, self.seq_len), dtype=np.float32)
            visible = np.ones((b, self.seq_len), dtype=bool)
            visible[:, : self.seq_len // 2] = False
            self.embed(x)
            self.decode(self.embed_masked(x, visible))
        return time.perf_counter() - start

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {
                "providers": list(self.providers),
                "batches": self._stats.batches,
                "failures": self._stats.failures,
                "last_error": self._stats.last_error,
            }

    def describe(self) -> dict[str, Any]:
        """What GET /model reports about the engine."""
        return {
            "engine": "onnxruntime",
            "providers": list(self.providers),
            "requested_device": self.requested_device,
            "encoder_graph": self.encoder_role,
            "threads": dict(self.threads),
        }

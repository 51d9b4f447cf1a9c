"""The three exported graphs and how they are written (ONNX via the dynamo exporter, TorchScript).

Why the dynamo exporter: the legacy TorchScript-based ``torch.onnx.export(dynamo=False)``
silently bakes the traced batch size into this model's graph (embeddings off by ~0.2 at any
other batch size), while ``dynamo=True`` with a dynamic ``batch`` dimension matches eager to
~1e-7 at every batch size. TorchScript files are made with ``torch.jit.script`` (not trace) for
the same reason. Opset 18: at opset 23 the exporter maps SDPA to the ONNX ``Attention`` op,
whose ONNX Runtime 1.32 CPU kernel rejects the masked encoder's broadcast ``(B, 1, 1, S)`` mask
(and the all-visible encoder was no faster there).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from wavemae.artifact import EMBEDDING, FILE_NAMES, RECONSTRUCTION, SPECTRA, VISIBLE
from wavemae.models.wave_mae import WaveMAE

__all__ = ["DEFAULT_OPSET", "DecoderGraph", "EncoderGraph", "MaskedEncoderGraph", "write_graphs"]

DEFAULT_OPSET = 18


class EncoderGraph(nn.Module):
    """``spectra`` (B, L) float32 -> ``embedding`` (B, Z): every position visible."""

    def __init__(self, model: WaveMAE) -> None:
        super().__init__()
        self.encoder = model.encoder

    def forward(self, spectra: Tensor) -> Tensor:
        return self.encoder.forward_all_visible(spectra)


class MaskedEncoderGraph(nn.Module):
    """``spectra`` (B, L), ``visible`` (B, L) bool -> ``embedding`` (B, Z); hidden ignored."""

    def __init__(self, model: WaveMAE) -> None:
        super().__init__()
        self.encoder = model.encoder

    def forward(self, spectra: Tensor, visible: Tensor) -> Tensor:
        return self.encoder.forward_dense_masked(spectra, visible)


class DecoderGraph(nn.Module):
    """``embedding`` (B, Z) -> ``reconstruction`` (B, L)."""

    def __init__(self, model: WaveMAE) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(self, embedding: Tensor) -> Tensor:
        return self.decoder(embedding)


# --------------------------------------------------------------------------- writing graphs


def _export_onnx(
    module: nn.Module,
    example: tuple[Tensor, ...],
    names: list[str],
    output: str,
    path: Path,
    opset: int,
) -> None:
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    dynamic = {name: {0: batch} for name in names}
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)  # "torchvision is not installed" chatter
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                example,
                dynamo=True,
                input_names=names,
                output_names=[output],
                dynamic_shapes=dynamic,
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
    finally:
        onnx_logger.setLevel(level)
    # One self-contained file (weights inline), so one sha256 covers the whole graph.
    program.save(str(path), external_data=False)


def _export_torchscript(module: nn.Module, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated but still the portable format
        scripted = torch.jit.script(module)
        torch.jit.save(scripted, str(path))


def write_graphs(model: WaveMAE, folder: Path, opset: int) -> None:
    seq_len, latent_dim = model.seq_len, model.latent_dim
    # Batch 3 for the example: batch 1 would let the exporter specialise the batch axis.
    x = torch.randn(3, seq_len)
    visible = torch.ones(3, seq_len, dtype=torch.bool)
    z = torch.nn.functional.normalize(torch.randn(3, latent_dim), dim=-1)
    encoder, masked, decoder = EncoderGraph(model), MaskedEncoderGraph(model), DecoderGraph(model)
    _export_onnx(encoder, (x,), [SPECTRA], EMBEDDING, folder / FILE_NAMES["encoder"], opset)
    _export_onnx(
        masked,
        (x, visible),
        [SPECTRA, VISIBLE],
        EMBEDDING,
        folder / FILE_NAMES["encoder_masked"],
        opset,
    )
    _export_onnx(decoder, (z,), [EMBEDDING], RECONSTRUCTION, folder / FILE_NAMES["decoder"], opset)
    _export_torchscript(encoder, folder / FILE_NAMES["encoder_torchscript"])
    _export_torchscript(decoder, folder / FILE_NAMES["decoder_torchscript"])

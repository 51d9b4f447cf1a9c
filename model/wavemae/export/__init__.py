"""Export a trained WaveMAE to a verified artifact folder (needs the ``train`` extra: torch).

- :mod:`wavemae.export.exporter`: :func:`export_model` and :func:`export_checkpoint` (what
  ``wavemae export`` calls): stage, verify, write the manifest, move into place.
- :mod:`wavemae.export.graphs`: the encoder, masked-encoder and decoder graphs and how they are
  written (ONNX and TorchScript).
- :mod:`wavemae.export.verify`: every graph against PyTorch eager before the manifest exists.
- :mod:`wavemae.export.quantize`: the optional int8 encoder, kept only when it earns its place.
"""

from wavemae.export.exporter import MIN_VERIFY_SPECTRA, export_checkpoint, export_model
from wavemae.export.graphs import DEFAULT_OPSET, DecoderGraph, EncoderGraph, MaskedEncoderGraph
from wavemae.export.verify import ExportVerificationError, verify_exported

__all__ = [
    "DEFAULT_OPSET",
    "MIN_VERIFY_SPECTRA",
    "DecoderGraph",
    "EncoderGraph",
    "ExportVerificationError",
    "MaskedEncoderGraph",
    "export_checkpoint",
    "export_model",
    "verify_exported",
]

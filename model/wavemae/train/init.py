"""Starting weights for fine-tuning: ``wavemae train --init default|tablet|PATH``.

``PATH`` is a training checkpoint (``checkpoint.pt``, its EMA weights) or an exported artifact
folder (its TorchScript ``encoder.pt`` and ``decoder.pt`` hold the same parameters as the
model). ``default`` (the general model) and ``tablet`` are the artifacts shipped with the
package (:data:`wavemae.artifact.SHIPPED_MODELS`).

A fine-tuned model keeps the architecture of its start (``model`` config) and its per-spectrum
normalisation, and gets a fixed grid over the user's data: a domain model on the user's grid.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wavemae.artifact import SHIPPED_MODELS, shipped_model_dir

__all__ = ["InitWeights", "load_init"]


@dataclass
class InitWeights:
    """What a fine-tuning run starts from.

    Attributes:
        model_config: the :class:`WaveMAEConfig` fields of the starting model.
        state: its ``state_dict`` (encoder and decoder).
        preprocessing: its ``Preprocessor.to_dict()`` (None when unknown).
        describe: what was loaded, for the provenance (path and weights' checksum).
    """

    model_config: dict[str, Any]
    state: dict[str, torch.Tensor]
    preprocessing: dict[str, Any] | None
    describe: dict[str, Any]


def _checksum(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_init(spec: str) -> InitWeights:
    """Starting weights from a shipped model's name, a checkpoint file or an artifact folder.

    Raises:
        ValueError: the path does not exist, or is neither a checkpoint nor an artifact
            folder with ``manifest.json``, ``encoder.pt`` and ``decoder.pt``.
    """
    path = shipped_model_dir(spec) if spec in SHIPPED_MODELS else Path(spec)
    if path.is_file():
        from wavemae.checkpoint import load_checkpoint

        ck = load_checkpoint(path, weights="ema")
        state = ck.model.state_dict()
        return InitWeights(
            model_config=ck.config.to_dict(),
            state=state,
            preprocessing=ck.preprocessing,
            describe={
                "init": str(spec),
                "path": str(path.resolve()),
                "kind": "checkpoint",
                "weights_sha256": _checksum(state),
            },
        )
    if not path.is_dir():
        raise ValueError(f"--init {spec}: no checkpoint file or artifact folder at {path}")
    missing = [n for n in ("manifest.json", "encoder.pt", "decoder.pt") if not (path / n).is_file()]
    if missing:
        raise ValueError(f"--init {spec}: {path} is not an artifact folder (missing {missing})")
    manifest = json.loads((path / "manifest.json").read_text())
    state: dict[str, torch.Tensor] = {}
    for name in ("encoder.pt", "decoder.pt"):
        state.update(torch.jit.load(str(path / name), map_location="cpu").state_dict())
    return InitWeights(
        model_config=dict(manifest["model_config"]),
        state=state,
        preprocessing=manifest.get("preprocessing"),
        describe={
            "init": str(spec),
            "path": str(path.resolve()),
            "kind": "artifact",
            "artifact": f"{manifest.get('name')}:{manifest.get('version')}",
            "weights_sha256": _checksum(state),
        },
    )

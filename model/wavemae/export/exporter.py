"""Export a trained WaveMAE to an artifact folder (ONNX + TorchScript + ``manifest.json``).

The folder layout, tensor names and manifest schema are defined in :mod:`wavemae.artifact`;
this module only produces them. Nothing is written in place: the files go to a temporary
sibling folder (graphs: :mod:`wavemae.export.graphs`), every graph is checked against PyTorch
eager on real spectra (:func:`wavemae.export.verify.verify_exported`), and only then is the
manifest written and the folder moved to ``out_dir``. A failed check raises
:class:`ExportVerificationError` with the numbers.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wavemae import __version__
from wavemae.artifact import (
    FILE_NAMES,
    MANIFEST,
    SCHEMA_VERSION,
    FileEntry,
    Manifest,
    canonical_unit,
    load_artifact,
    sha256_file,
    tensor_specs_for,
)
from wavemae.export.graphs import DEFAULT_OPSET, write_graphs
from wavemae.export.verify import verify_exported
from wavemae.models.wave_mae import WaveMAE

__all__ = ["MIN_VERIFY_SPECTRA", "export_checkpoint", "export_model"]

MIN_VERIFY_SPECTRA = 64


def _library_versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    versions = {
        "wavemae": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    try:
        import onnxscript

        versions["onnxscript"] = onnxscript.__version__
    except ImportError:  # pragma: no cover - onnxscript is part of the train extra
        pass
    return versions


# --------------------------------------------------------------------------- public API


def export_model(
    model: WaveMAE,
    out_dir: str | os.PathLike,
    *,
    preprocessor: Any,
    wavelengths: Any,
    unit: str,
    name: str,
    version: str,
    provenance: dict[str, Any] | None = None,
    verify_spectra: np.ndarray,
    quantize: str | None = None,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    min_verify_spectra: int = MIN_VERIFY_SPECTRA,
    retrieval_spectra: np.ndarray | None = None,
) -> Path:
    """Export ``model`` (eval mode, its current weights) to the artifact folder ``out_dir``.

    Args:
        model: a :class:`WaveMAE`; pass the EMA weights (``load_checkpoint`` does).
        out_dir: the artifact folder to create; must not exist or be empty unless ``overwrite``.
        preprocessor: the fitted ``wavemae.preprocessing.Preprocessor`` (or its ``to_dict()``)
            that turns raw spectra into model input, or None for raw input on the model grid.
        wavelengths: ``(seq_len,)`` model grid in ``unit``.
        unit: ``"nm"`` or ``"cm-1"`` (``"cm^-1"`` accepted).
        name, version: the model's name and version (``model_id`` = ``"name:version"``).
        provenance: training command, data checksum, held-out metrics ... (plain JSON values).
        verify_spectra: ``(N, seq_len)`` model-input spectra (already preprocessed), real ones,
            ``N >= min_verify_spectra``; the parity checks run on them.
        quantize: None or ``"int8"`` (ONNX Runtime dynamic quantisation of the encoder, kept
            only if faster with retrieval intact; see :mod:`wavemae.export.quantize`).
        opset: ONNX opset.
        overwrite: replace an existing non-empty ``out_dir``.
        min_verify_spectra: minimum ``N`` (64 for real exports).
        retrieval_spectra: ``(M, seq_len)`` held-out model-input spectra for the int8
            retrieval check (default: ``verify_spectra``); more is better there.

    Returns:
        ``out_dir`` as a Path, holding the verified files and ``manifest.json``.

    Raises:
        ValueError: for inconsistent arguments (grid length, unit, too few spectra ...).
        FileExistsError: if ``out_dir`` is a non-empty folder and ``overwrite`` is False.
        ExportVerificationError: if a parity, checker or batch-size check fails, with numbers.
    """
    if not isinstance(model, WaveMAE):
        raise TypeError(f"model must be a WaveMAE, got {type(model).__name__}")
    seq_len, latent_dim = model.seq_len, model.latent_dim
    grid = np.asarray(wavelengths, dtype=np.float64).ravel()
    if grid.shape != (seq_len,):
        raise ValueError(f"wavelengths has {grid.size} values but seq_len={seq_len}")
    unit = canonical_unit(unit)
    spectra = np.asarray(verify_spectra, dtype=np.float32)
    if spectra.ndim != 2 or spectra.shape[1] != seq_len:
        raise ValueError(f"verify_spectra must be (N, seq_len={seq_len}), got {spectra.shape}")
    if spectra.shape[0] < min_verify_spectra:
        raise ValueError(
            f"verify_spectra has {spectra.shape[0]} spectra; at least {min_verify_spectra} needed"
        )
    if not np.all(np.isfinite(spectra)):
        raise ValueError("verify_spectra contains NaN or infinite values")
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize={quantize!r} must be None or 'int8'")
    if not name or not version:
        raise ValueError(f"name={name!r} and version={version!r} must be non-empty")
    pre_dict = preprocessor.to_dict() if hasattr(preprocessor, "to_dict") else preprocessor
    if pre_dict is not None and not isinstance(pre_dict, dict):
        raise ValueError(f"preprocessor must have to_dict() or be a dict, got {type(pre_dict)}")

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass overwrite=True to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the artifact is meant to be shared
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            write_graphs(model, staging, opset)
            verification = verify_exported(model, staging, spectra)
        quantization = None
        if quantize == "int8":
            from wavemae.export.quantize import quantize_encoder_int8

            held_out = spectra if retrieval_spectra is None else retrieval_spectra
            quantization = quantize_encoder_int8(staging, held_out)
        roles = [r for r in FILE_NAMES if (staging / FILE_NAMES[r]).is_file()]
        files = {
            role: FileEntry(
                FILE_NAMES[role],
                sha256_file(staging / FILE_NAMES[role]),
                (staging / FILE_NAMES[role]).stat().st_size,
            )
            for role in roles
        }
        specs = tensor_specs_for(seq_len, latent_dim)
        manifest = Manifest(
            schema_version=SCHEMA_VERSION,
            name=name,
            version=version,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            seq_len=seq_len,
            latent_dim=latent_dim,
            wavelengths=tuple(float(w) for w in grid),
            wavelength_unit=unit,
            preprocessing=pre_dict,
            files=files,
            tensors={role: specs[role] for role in roles},
            opset=opset,
            model_config=model.config.to_dict(),
            libraries=_library_versions(),
            provenance=dict(provenance or {}),
            verification=verification,
            quantization=quantization,
        )
        (staging / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        load_artifact(staging, verify=True)  # the exact check the service will run
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        model.train(was_training)
    return out


def export_checkpoint(
    checkpoint_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    data: Any = None,
    name: str | None = None,
    version: str | None = None,
    quantize: str | None = None,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    command: str | None = None,
    n_verify: int = 128,
    data_label: str | None = None,
) -> Path:
    """Export a training checkpoint (its EMA weights) with :func:`export_model`.

    Args:
        checkpoint_path: a file written by :func:`wavemae.checkpoint.save_checkpoint`.
        out_dir: the artifact folder to create.
        data: a ``wavemae.data.Spectra`` of held-out raw spectra for verification (and for the
            int8 retrieval check); default: the held-out split of the data the checkpoint
            was trained on (:func:`wavemae.train.data_source.recorded_heldout`).
        name: model name; default the checkpoint's ``provenance["name"]`` or ``"wavemae"``.
        version: default ``"<step>-<first 8 hex of the checkpoint's sha256>"``.
        quantize, opset, overwrite: as for :func:`export_model`.
        command: the export command line, recorded in the manifest's provenance.
        n_verify: held-out spectra (evenly spread) for the parity checks; at least 64.
        data_label: how ``data`` was named (e.g. ``"tablet:test"``), for the provenance.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        ValueError: if the checkpoint lacks a wavelength grid, or ``data`` cannot be brought
            onto it.
    """
    from wavemae.checkpoint import load_checkpoint

    path = Path(checkpoint_path)
    ckpt = load_checkpoint(path, weights="ema")
    if ckpt.wavelengths is None or ckpt.unit is None:
        raise ValueError(f"{path} records no wavelength grid/unit; it cannot be served")
    sha = sha256_file(path)
    if data is None:
        from wavemae.train.data_source import recorded_heldout

        data, data_label = recorded_heldout(ckpt.provenance, path)
    spectra = _model_input(ckpt.preprocessing, data, np.asarray(ckpt.wavelengths), ckpt.unit)
    # Parity on an evenly spread subset keeps a CPU export within minutes; int8 retrieval
    # is judged on all of them.
    pick = np.unique(np.linspace(0, len(spectra) - 1, min(n_verify, len(spectra))).astype(int))
    if len(pick) < MIN_VERIFY_SPECTRA:  # a small own data set: its rows, repeated, fill a batch
        pick = np.resize(pick, MIN_VERIFY_SPECTRA)
    provenance = dict(ckpt.provenance)
    provenance.update(
        checkpoint={"file": path.name, "sha256": sha, "step": ckpt.step, "weights": "ema"},
        train_config=ckpt.train_config,
        export_command=command or " ".join(sys.argv),
        verification_data={
            "source": data_label or "caller's Spectra",
            "n_spectra": len(spectra),
            "n_parity": len(pick),
            "sha256": data.checksum() if hasattr(data, "checksum") else None,
        },
    )
    return export_model(
        ckpt.model,
        out_dir,
        preprocessor=ckpt.preprocessing,
        wavelengths=ckpt.wavelengths,
        unit=ckpt.unit,
        name=name or str(ckpt.provenance.get("name") or "wavemae"),
        version=version or f"{ckpt.step}-{sha[:8]}",
        provenance=provenance,
        verify_spectra=spectra[pick],
        retrieval_spectra=spectra,
        quantize=quantize,
        opset=opset,
        overwrite=overwrite,
    )


def _model_input(preprocessing: dict | None, data: Any, grid: np.ndarray, unit: str) -> np.ndarray:
    """Raw ``data`` (a Spectra) -> ``(N, seq_len)`` float32 model input."""
    values = np.asarray(data.values, dtype=np.float64)
    data_unit = canonical_unit(getattr(data, "unit", unit))
    if data_unit != canonical_unit(unit):
        raise ValueError(f"verification data are in {data_unit!r} but the model grid in {unit!r}")
    wavelengths = np.asarray(data.wavelengths, dtype=np.float64)
    if preprocessing is not None:
        from wavemae.preprocessing import Preprocessor

        out = Preprocessor.from_dict(preprocessing).transform(values, wavelengths)
    elif wavelengths.shape == grid.shape and np.allclose(wavelengths, grid):
        out = values
    else:
        from wavemae.preprocessing import resample_to_grid

        out = resample_to_grid(values, wavelengths, grid)
    return np.asarray(out, dtype=np.float32)

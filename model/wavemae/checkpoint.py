"""Training checkpoints that load with ``torch.load(path, weights_only=True)``.

A checkpoint is one ``torch.save``-d dict holding only plain Python values (dict, list, str,
int, float, bool, None) and tensors — never pickled objects or numpy arrays — so that loading it
executes no code. Layout (``"format": "wavemae-checkpoint/1"``)::

    format           "wavemae-checkpoint/1"
    model_config     WaveMAEConfig as a dict (rebuild with WaveMAE.from_config)
    model_state      raw weights (state_dict)
    ema_state        exponential-moving-average weights (state_dict) or None
    optimizer_state  optimizer.state_dict() or None (resume only)
    scheduler_state  scheduler.state_dict() or None (resume only)
    step             optimisation steps taken
    preprocessing    Preprocessor.to_dict() or None (the model's input pipeline)
    wavelengths      the model grid, list of floats of length seq_len, or None
    unit             "nm" or "cm^-1" (unit of ``wavelengths``) or None
    train_config     TrainConfig as a dict
    provenance       command, seed, data_sha256, metrics, versions ...
    rng_state        torch/numpy/python RNG states (resume only)

The exporter and the evaluator use :func:`load_checkpoint`; :func:`capture_rng_state` and
:func:`restore_rng_state` let training resume bit for bit.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from wavemae.models.wave_mae import WaveMAE, WaveMAEConfig

__all__ = [
    "CHECKPOINT_FORMAT",
    "LoadedCheckpoint",
    "capture_rng_state",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
    "slim_checkpoint",
    "to_plain",
    "update_provenance",
]

CHECKPOINT_FORMAT = "wavemae-checkpoint/1"


def to_plain(value: Any, *, where: str = "value") -> Any:
    """Convert ``value`` into something ``torch.load(weights_only=True)`` accepts.

    numpy scalars become Python numbers, numpy arrays become (nested) lists, tuples become
    lists, dict keys must be str or int (optimizer states use int keys); tensors pass
    through (detached, on CPU).

    Raises:
        TypeError: for anything else (a class instance, a function ...), naming where it was.
    """
    # Subclasses (torch.__version__ is a str subclass, IntEnum ...) would be pickled as
    # their class, which weights_only loading refuses: store the plain base type.
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(
                    f"{where}: dict key {key!r} is {type(key).__name__}, not str or int"
                )
            out[key] = to_plain(item, where=f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [to_plain(item, where=f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(
        f"{where} is a {type(value).__name__}; checkpoints hold only plain values and tensors"
    )


def _state_to_cpu(state: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v)
        for k, v in state.items()
    }


def _unwrap(model: nn.Module) -> WaveMAE:
    # DistributedDataParallel / torch.compile wrap the model; checkpoints hold the bare one.
    inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
    if inner is not None and inner is not model:
        return _unwrap(inner)
    if not isinstance(model, WaveMAE):
        raise TypeError(f"model must be a WaveMAE, got {type(model).__name__}")
    return model


# --------------------------------------------------------------------------- RNG state


def capture_rng_state(extra_generators: dict[str, torch.Generator] | None = None) -> dict:
    """RNG states of torch (CPU, and CUDA if in use), numpy and ``random`` as plain values.

    ``extra_generators`` (name -> ``torch.Generator``) are captured too, e.g. a mask generator.
    """
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_state[0]),
            "internal": list(py_state[1]),
            "gauss_next": py_state[2],
        },
        "generators": {k: g.get_state() for k, g in (extra_generators or {}).items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(
    state: dict, extra_generators: dict[str, torch.Generator] | None = None
) -> None:
    """Restore what :func:`capture_rng_state` captured (into ``extra_generators`` too).

    Raises:
        KeyError: if a generator in ``extra_generators`` has no saved state.
    """
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["name"],
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    pyst = state["python"]
    random.setstate((pyst["version"], tuple(pyst["internal"]), pyst["gauss_next"]))
    for name, gen in (extra_generators or {}).items():
        gen.set_state(state["generators"][name])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- save / load


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    ema_state: dict[str, torch.Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    step: int = 0,
    preprocessing: dict | None = None,
    wavelengths: list[float] | np.ndarray | None = None,
    unit: str | None = None,
    train_config: dict | None = None,
    provenance: dict | None = None,
    rng_state: dict | None = None,
) -> Path:
    """Write a checkpoint atomically (temp file + rename) and return its path.

    Args:
        path: destination file (parent folders are created).
        model: the trained :class:`WaveMAE` (DDP-wrapped is fine); its weights are the "raw" ones.
        ema_state: EMA weights with the keys of ``model.state_dict()``; what export should use.
        optimizer, scheduler: saved for resume when given (anything with ``state_dict()``).
        step: optimisation steps taken.
        preprocessing: the fitted ``Preprocessor.to_dict()``.
        wavelengths: the model grid (length ``seq_len``), in ``unit``.
        unit: ``"nm"`` or ``"cm^-1"``.
        train_config: the training configuration as a dict.
        provenance: command, seed, data checksum, metrics ... (plain values).
        rng_state: from :func:`capture_rng_state`, for exact resume.

    Raises:
        ValueError: if ``wavelengths`` does not have ``seq_len`` entries, or ``ema_state`` keys
            differ from the model's.
        TypeError: if a dict holds something that is not a plain value or tensor.
    """
    bare = _unwrap(model)
    config = bare.config
    if wavelengths is not None:
        wavelengths = [float(w) for w in np.asarray(wavelengths, dtype=np.float64).ravel()]
        if len(wavelengths) != config.seq_len:
            raise ValueError(
                f"wavelengths has {len(wavelengths)} entries but seq_len={config.seq_len}"
            )
        if not all(math.isfinite(w) for w in wavelengths):
            raise ValueError("wavelengths contains non-finite values")
    model_state = _state_to_cpu(bare.state_dict())
    if ema_state is not None:
        ema_state = _state_to_cpu(ema_state)
        if set(ema_state) != set(model_state):
            missing = sorted(set(model_state) - set(ema_state))[:5]
            extra = sorted(set(ema_state) - set(model_state))[:5]
            raise ValueError(
                f"ema_state keys differ from the model's: missing {missing}, unexpected {extra}"
            )
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_config": config.to_dict(),
        "model_state": model_state,
        "ema_state": ema_state,
        "optimizer_state": to_plain(optimizer.state_dict(), where="optimizer_state")
        if optimizer is not None
        else None,
        "scheduler_state": to_plain(scheduler.state_dict(), where="scheduler_state")
        if scheduler is not None
        else None,
        "step": int(step),
        "preprocessing": to_plain(preprocessing, where="preprocessing"),
        "wavelengths": wavelengths,
        "unit": unit,
        "train_config": to_plain(train_config or {}, where="train_config"),
        "provenance": to_plain(provenance or {}, where="provenance"),
        "rng_state": to_plain(rng_state, where="rng_state"),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` returns.

    Attributes:
        model: :class:`WaveMAE` in eval mode holding the chosen weights ("ema" or "raw").
        config: its :class:`WaveMAEConfig`.
        preprocessing: the ``Preprocessor.to_dict()`` the model was trained with, or None.
        wavelengths: the model grid (``seq_len`` floats in ``unit``), or None.
        unit: ``"nm"`` / ``"cm^-1"`` or None.
        train_config: training configuration dict.
        provenance: command, seed, data_sha256, metrics ...
        step: optimisation steps taken.
        weights: which weights ``model`` holds.
        raw: the whole loaded dict (for resume).
    """

    model: WaveMAE
    config: WaveMAEConfig
    preprocessing: dict | None
    wavelengths: list[float] | None
    unit: str | None
    train_config: dict
    provenance: dict
    step: int
    weights: str
    raw: dict = field(repr=False)


def load_checkpoint(
    path: str | os.PathLike,
    *,
    weights: Literal["ema", "raw"] = "ema",
    map_location: str | torch.device = "cpu",
) -> LoadedCheckpoint:
    """Load a checkpoint with ``weights_only=True`` and rebuild the model.

    Args:
        path: a file written by :func:`save_checkpoint`.
        weights: ``"ema"`` (default; what evaluation and export use) or ``"raw"``.
        map_location: where tensors are loaded.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for a file that is not a WaveMAE checkpoint, an unknown ``weights`` value,
            or ``weights="ema"`` on a checkpoint saved without EMA weights.
    """
    path = Path(path)
    if weights not in ("ema", "raw"):
        raise ValueError(f"weights={weights!r} must be 'ema' or 'raw'")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, non-torch files
        raise ValueError(f"{path} is not a loadable WaveMAE checkpoint: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"{path}: format {found!r} is not {CHECKPOINT_FORMAT!r}")
    config = WaveMAEConfig(**raw["model_config"])
    model = WaveMAE.from_config(config)
    state = raw["ema_state"] if weights == "ema" else raw["model_state"]
    if state is None:
        other = "raw" if weights == "ema" else "ema"
        raise ValueError(f"{path} holds no {weights} weights; load it with weights='{other}'")
    model.load_state_dict(state)
    model.eval()
    return LoadedCheckpoint(
        model=model,
        config=config,
        preprocessing=raw.get("preprocessing"),
        wavelengths=raw.get("wavelengths"),
        unit=raw.get("unit"),
        train_config=raw.get("train_config") or {},
        provenance=raw.get("provenance") or {},
        step=int(raw.get("step", 0)),
        weights=weights,
        raw=raw,
    )


def update_provenance(path: str | os.PathLike, **fields: Any) -> None:
    """Merge ``fields`` (plain values) into a saved checkpoint's ``provenance``, atomically."""
    path = Path(path)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    raw["provenance"] = {**(raw.get("provenance") or {}), **to_plain(fields, where="provenance")}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(raw, tmp)
    os.replace(tmp, path)


def slim_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a checkpoint keeping only what export needs: the EMA weights and the metadata.

    Drops the raw weights, optimizer, scheduler and RNG states (about a quarter of the size),
    so the copy cannot resume training and ``load_checkpoint(dst, weights="raw")`` raises.

    Raises:
        ValueError: if ``src`` has no EMA weights.
    """
    raw = torch.load(Path(src), map_location="cpu", weights_only=True)
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{src} is not a {CHECKPOINT_FORMAT} checkpoint")
    if raw.get("ema_state") is None:
        raise ValueError(f"{src} holds no EMA weights to keep")
    slim = {
        **raw,
        "model_state": None,
        "optimizer_state": None,
        "scheduler_state": None,
        "rng_state": None,
    }
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    torch.save(slim, tmp)
    os.replace(tmp, dst)
    return dst

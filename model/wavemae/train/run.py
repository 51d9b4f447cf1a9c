"""A whole training run and checkpoint evaluation, as ``wavemae train`` / ``evaluate`` run them.

:func:`run_training`: split the source, fit a :class:`~wavemae.preprocessing.Preprocessor` on
the training spectra (resampling onto the model grid, normalisation, per-band
standardisation), train, evaluate the EMA weights against the baselines, and fill the run
folder::

    command.txt      the command line that produced the run
    config.json      TrainConfig (model included), seed, data source
    metrics.jsonl    one JSON line per log/eval point
    checkpoint.pt    resumable checkpoint (EMA + raw weights, preprocessing, provenance)
    eval.json        reconstruction and composition reports (what was printed)
    eval.md          the same as a readable table
    metrics.json     summary: train time, final loss, held-out errors, data checksum
    loss_curve.png   training loss and held-out masked MSE against step

:func:`evaluate_checkpoint`: the same evaluation for a saved checkpoint on any source whose
spectra cover the model grid.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wavemae.checkpoint import load_checkpoint, update_provenance
from wavemae.data import Spectra
from wavemae.models.wave_mae import WaveMAE
from wavemae.preprocessing import Preprocessor, resample_to_grid
from wavemae.train.config import TrainConfig
from wavemae.train.data_source import (
    DataSource,
    composition_task,
    load_source,
    split_source,
)
from wavemae.train.evaluate import composition_report, reconstruction_report, standard_features
from wavemae.train.general import partner_index
from wavemae.train.init import InitWeights
from wavemae.train.loop import train_model
from wavemae.train.report import format_report, plot_loss_curve

__all__ = ["evaluate_checkpoint", "evaluate_model", "model_grid", "run_training"]


def model_grid(spectra: Spectra, config: TrainConfig) -> np.ndarray:
    """The model's wavelength grid: ``seq_len`` evenly spaced points over the chosen range.

    Raises:
        ValueError: if ``config.wavelength_range`` is not an increasing pair inside the data.
    """
    seq_len = config.model["seq_len"]
    lo, hi = (
        (float(spectra.wavelengths[0]), float(spectra.wavelengths[-1]))
        if config.wavelength_range is None
        else (float(config.wavelength_range[0]), float(config.wavelength_range[1]))
    )
    if not lo < hi:
        raise ValueError(f"wavelength_range=[{lo}, {hi}] must be increasing")
    return np.linspace(lo, hi, seq_len)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def evaluate_model(
    model: WaveMAE,
    preprocessor: Preprocessor,
    train: Spectra,
    heldout: Spectra,
    task: Any | None,
    *,
    repeats: int = 4,
    raw_model: WaveMAE | None = None,
) -> dict[str, Any]:
    """Reconstruction report on ``heldout`` (baselines fitted on ``train``) and composition.

    Args:
        model: the weights under evaluation (normally EMA).
        preprocessor: the fitted pipeline the model was trained with.
        train, heldout: spectra (any grid covering the model's).
        task: a :class:`~wavemae.train.data_source.CompositionTask` or None.
        repeats: masks per held-out spectrum.
        raw_model: optionally the raw (non-EMA) weights, whose masked MSE is added.
    """
    train_x = preprocessor.transform(train.values, train.wavelengths, unit=train.unit)
    held_x = preprocessor.transform(heldout.values, heldout.wavelengths, unit=heldout.unit)
    report: dict[str, Any] = {
        "space": "model input space (after the run's preprocessing)",
        "reconstruction": reconstruction_report(model, train_x, held_x, repeats=repeats),
    }
    if raw_model is not None:
        raw = reconstruction_report(raw_model, train_x, held_x, repeats=repeats)
        report["reconstruction"]["mse"]["model_raw_weights"] = raw["mse"]["model"]
    if task is not None:
        grid = preprocessor.wavelengths

        def on_grid(s: Spectra) -> np.ndarray:
            return resample_to_grid(s.values, s.wavelengths, grid, unit=s.unit)

        def pre(s: Spectra) -> np.ndarray:
            return preprocessor.transform(s.values, s.wavelengths, unit=s.unit)

        q = task.query
        features = standard_features(
            model,
            on_grid(task.reference),
            pre(task.reference),
            None if q is None else on_grid(q),
            None if q is None else pre(q),
        )
        labels = (task.reference_labels, task.query_labels)
        comp = composition_report(features, labels, kind=task.kind, target_names=task.target_names)
        report["composition"] = {"task": task.name, **comp}
    return report


def run_training(
    config: TrainConfig,
    source: DataSource,
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    device: str = "cpu",
    resume: str | os.PathLike | None = None,
    command: str = "",
    progress: bool = True,
    init: InitWeights | None = None,
) -> dict[str, Any] | None:
    """Train on ``source`` and evaluate; returns the evaluation report (None on ranks > 0).

    ``init``: fine-tune from these weights (:func:`wavemae.train.init.load_init`); their
    architecture must be ``config.model``.
    """
    if init is not None and {**config.model} != {**init.model_config}:
        raise ValueError(
            f"the model config {config.model} differs from the --init model's "
            f"{init.model_config}; a fine-tuned model keeps its start's architecture"
        )
    out = Path(out_dir)
    train_sp, held_sp = split_source(source)
    grid = model_grid(train_sp, config)
    general = source.corpus == "general"
    if general and config.model["seq_len"] != source.seq_len:
        raise ValueError(
            f"corpus general was built on {source.seq_len} points but model.seq_len is "
            f"{config.model['seq_len']}"
        )
    preprocessor = Preprocessor(
        wavelengths=grid,
        unit=train_sp.unit,
        normalization=config.normalization,
        standardize=config.standardize,
        axis="relative" if general else "fixed",
    ).fit(train_sp.values, train_sp.wavelengths, unit=train_sp.unit)
    train_x = preprocessor.transform(train_sp.values, train_sp.wavelengths, unit=train_sp.unit)
    held_x = preprocessor.transform(held_sp.values, held_sp.wavelengths, unit=held_sp.unit)
    provenance = {
        "command": command,
        "seed": seed,
        "data": source.to_dict(),
        "data_sha256": train_sp.checksum(),
        "heldout_sha256": held_sp.checksum(),
        "n_train": len(train_sp),
        "n_heldout": len(held_sp),
        "git_commit": _git_commit(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "device": device,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    } | ({"init": init.describe} if init is not None else {})
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "command.txt").write_text(command + "\n")
        (out / "config.json").write_text(
            json.dumps(
                {"train_config": config.to_dict(), "seed": seed, "data": source.to_dict()},
                indent=2,
            )
        )
    result = train_model(
        config,
        train_x,
        seed=seed,
        out_dir=out,
        device=device,
        resume=resume,
        heldout_x=held_x,
        progress=progress,
        band_scale=(
            (preprocessor.band_mean, preprocessor.band_std) if preprocessor.standardize else None
        ),
        partners=partner_index(train_sp.metadata, seed) if general else None,
        init_state=None if init is None else init.state,
        checkpoint_extras={
            "preprocessing": preprocessor.to_dict(),
            "wavelengths": grid.tolist(),
            "unit": train_sp.unit,
            "provenance": provenance,
        },
    )
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        if torch.distributed.get_rank() != 0:
            return None
    result.model.cpu()
    report = evaluate_model(
        result.ema.module.cpu(),
        preprocessor,
        train_sp,
        held_sp,
        composition_task(source),
        repeats=config.eval_masks,
        raw_model=result.model,
    )
    losses = [h["loss"] for h in result.history if "loss" in h]
    summary = {
        "steps": result.step,
        "train_seconds": round(result.train_seconds, 1),
        "final_train_loss": losses[-1] if losses else None,
        "heldout_masked_mse": report["reconstruction"]["mse"],
        "composition": report.get("composition"),
        "data_sha256": provenance["data_sha256"],
        "seed": seed,
        "command": command,
    }
    (out / "eval.json").write_text(json.dumps(report, indent=2))
    (out / "eval.md").write_text(format_report(report, title=f"WaveMAE run {out.name}"))
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    plot_loss_curve(out / "metrics.jsonl", out / "loss_curve.png", report)
    if result.checkpoint is not None:
        update_provenance(result.checkpoint, metrics=summary)
    return report


def evaluate_checkpoint(
    path: str | os.PathLike,
    source: DataSource | None = None,
    *,
    weights: str = "ema",
    repeats: int = 4,
) -> dict[str, Any]:
    """Evaluate a checkpoint on ``source`` (default: the source it was trained on).

    Baselines are fitted on the checkpoint's own training spectra (its recorded source). On
    the training source the held-out split is scored; on any other source all its spectra.

    Raises:
        ValueError: if the checkpoint records no data source and none is given, or carries no
            preprocessing.
    """
    ck = load_checkpoint(path, weights=weights)
    if ck.preprocessing is None:
        raise ValueError(f"{path} carries no preprocessing; it cannot be evaluated on spectra")
    preprocessor = Preprocessor.from_dict(ck.preprocessing)
    trained_on = ck.provenance.get("data")
    train_source = DataSource.from_dict(trained_on) if trained_on else None
    source = source or train_source
    if source is None:
        raise ValueError(f"{path} records no training data source; pass --corpus or --data")
    if train_source is None:
        train_sp, held_sp = split_source(source)
    else:
        train_sp, own_held = split_source(train_source)
        held_sp = own_held if source == train_source else load_source(source)
    report = evaluate_model(
        ck.model, preprocessor, train_sp, held_sp, composition_task(source), repeats=repeats
    )
    report["checkpoint"] = str(path)
    report["weights"] = weights
    report["evaluated_on"] = source.to_dict()
    return report

"""The WaveMAE training loop: masked objective, AdamW, warm-up + cosine-with-floor, EMA,
autocast, exact resume and DistributedDataParallel.

What a step minimises lives in :mod:`wavemae.train.step_loss`; the precision, threads and
process group the run uses in :mod:`wavemae.train.hardware`. This module is the loop's
bookkeeping: data order, schedule, optimiser, EMA, logging, evaluation and checkpoints.

Determinism: everything random in step ``s`` (the batch order, the masks, the augmentation,
dropout) is derived from ``(seed, s, rank)``, so a run resumed from a checkpoint at step ``s``
continues exactly as the uninterrupted run would, bit for bit, on the same hardware.

Data order: epoch ``e`` visits the training spectra in ``permutation(seed, e)``; step ``s``
takes the ``global_batch`` indices at position ``s mod steps_per_epoch`` and rank ``r`` of
``W`` takes every ``W``-th of them (what ``DistributedSampler`` does).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from wavemae.checkpoint import capture_rng_state, restore_rng_state, save_checkpoint
from wavemae.models.wave_mae import WaveMAE
from wavemae.train.config import TrainConfig
from wavemae.train.ema import EMA
from wavemae.train.hardware import amp_dtype, cpu_threads, maybe_init_distributed, rank_and_world
from wavemae.train.objectives import ViewAugment
from wavemae.train.step_loss import masked_loss, step_loss

__all__ = [
    "TrainResult",
    "amp_dtype",
    "batch_indices",
    "cpu_threads",
    "lr_factor",
    "masked_loss",
    "train_model",
]


# --------------------------------------------------------------------------- pieces


def lr_factor(step: int, config: TrainConfig) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then cosine down to the floor.

    The floor ``min_lr_ratio`` keeps the model learning to the last step (a schedule that
    reaches 0 stops training while the loss may still be falling).
    """
    if config.warmup_steps > 0 and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.min_lr_ratio
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def batch_indices(
    step: int, n_train: int, global_batch: int, seed: int, rank: int = 0, world: int = 1
) -> np.ndarray:
    """Training-row indices for ``step`` on ``rank`` (see the module docstring)."""
    batch = min(global_batch, n_train)
    per_epoch = n_train // batch
    epoch, slot = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n_train)
    chosen = order[slot * batch : (slot + 1) * batch]
    return chosen[rank::world]


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.default_rng([seed, step, rank, 7]).integers(0, 2**62))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # No decay on biases, norms, positional embeddings and the CLS token (1-D or embeddings).
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim < 2 or name.endswith((".pe", "cls_token")):
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


# --------------------------------------------------------------------------- loop


@dataclass
class TrainResult:
    """What :func:`train_model` hands back (on every rank; files are written by rank 0)."""

    model: WaveMAE
    ema: EMA
    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    checkpoint: Path | None = None


def train_model(
    config: TrainConfig,
    train_x: np.ndarray,
    *,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    resume: str | os.PathLike | None = None,
    stop_at: int | None = None,
    heldout_x: np.ndarray | None = None,
    checkpoint_extras: dict[str, Any] | None = None,
    progress: bool = True,
    on_eval: Callable[[int, WaveMAE], dict[str, float]] | None = None,
    band_scale: tuple[np.ndarray, np.ndarray] | None = None,
    partners: np.ndarray | None = None,
    init_state: dict[str, Tensor] | None = None,
) -> TrainResult:
    """Train a WaveMAE on preprocessed spectra.

    Args:
        config: the run's :class:`TrainConfig`; ``config.model["seq_len"]`` must equal ``L``.
        train_x: preprocessed training spectra ``(N, L)`` float32.
        seed: decides initialisation, data order, masks, augmentation and dropout.
        out_dir: run folder for ``metrics.jsonl`` and ``checkpoint.pt`` (rank 0 writes);
            None writes nothing.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ... (under torchrun, the local rank's GPU).
        resume: a checkpoint written by this function to continue from.
        stop_at: stop after this many steps (the schedule still spans ``config.steps``): for
            interrupting a run deliberately.
        heldout_x: preprocessed held-out spectra ``(M, L)``; masked MSE of the EMA and raw
            weights on fixed masks is logged every ``eval_every`` steps.
        checkpoint_extras: passed to :func:`save_checkpoint` (``preprocessing``,
            ``wavelengths``, ``unit``, ``provenance``).
        progress: show a tqdm progress bar (rank 0).
        on_eval: extra metrics callback ``(step, ema_model) -> dict`` at evaluation points.
        band_scale: ``(band_mean, band_std)`` of the per-band standardisation, so the views'
            augmentations act on the spectra's own units (None: on the model input, which
            is normalised again per spectrum when ``config.normalization`` is snv or l2).
        partners: ``(N,)`` row index of another measurement of each training spectrum (the
            same sample on another instrument): the second view of the embedding term is
            built from it instead of from the spectrum itself. None: both views from the
            spectrum.

    Raises:
        ValueError: if the data do not match ``seq_len`` or contain non-finite values.
    """
    device = torch.device(device)
    maybe_init_distributed(device)
    rank, world = rank_and_world()
    if device.type == "cuda" and device.index is None and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(config.num_threads))
    seq_len = config.model["seq_len"]
    if train_x.ndim != 2 or train_x.shape[1] != seq_len:
        raise ValueError(f"train_x has shape {train_x.shape}, expected (N, seq_len={seq_len})")
    if not np.isfinite(train_x).all():
        raise ValueError("train_x contains non-finite values")
    if config.batch_size < world:
        raise ValueError(f"batch_size={config.batch_size} is smaller than world size {world}")

    torch.manual_seed(seed)
    model = WaveMAE.from_config(config.model)
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(device)
    ema = EMA(model, config.ema_decay)
    optimizer = torch.optim.AdamW(
        _param_groups(model, config.weight_decay),
        lr=config.lr,
        betas=(config.beta1, config.beta2),
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    start = 0
    if resume is not None:
        ck = torch.load(resume, map_location=device, weights_only=True)
        model.load_state_dict(ck["model_state"])
        ema.load_state_dict(ck["ema_state"])
        optimizer.load_state_dict(ck["optimizer_state"])
        scheduler.load_state_dict(ck["scheduler_state"])
        restore_rng_state(ck["rng_state"])
        start = int(ck["step"])
    ddp_model: nn.Module = model
    if world > 1 or (dist.is_available() and dist.is_initialized()):
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    data = torch.as_tensor(train_x, dtype=torch.float32)
    held = None if heldout_x is None else np.asarray(heldout_x, dtype=np.float32)
    dtype = amp_dtype(config.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    out = Path(out_dir) if out_dir is not None and rank == 0 else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    metrics_file = open(out / "metrics.jsonl", "a") if out is not None else None  # noqa: SIM115
    end = config.steps if stop_at is None else min(stop_at, config.steps)
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=start, desc="train", unit="step", mininterval=1)
    history: list[dict[str, Any]] = []
    ck_path: Path | None = None

    def log(record: dict[str, Any]) -> None:
        history.append(record)
        if metrics_file is not None:
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()

    def checkpoint(step: int) -> Path | None:
        if out is None:
            return None
        return save_checkpoint(
            out / "checkpoint.pt",
            model=model,
            ema_state=ema.state_dict(),
            optimizer=optimizer,
            scheduler=scheduler,
            step=step,
            train_config=config.to_dict() | {"seed": seed},
            rng_state=capture_rng_state(),
            **(checkpoint_extras or {}),
        )

    views = ViewAugment(
        config.view_offset,
        config.view_slope,
        config.view_scale,
        config.view_noise,
        config.view_shift,
        *(
            ()
            if band_scale is None
            else (torch.as_tensor(a, dtype=torch.float32) for a in band_scale)
        ),
        renormalize=config.normalization if band_scale is None else "none",
    )
    if partners is not None and np.asarray(partners).shape != (len(train_x),):
        raise ValueError(f"partners has shape {np.shape(partners)}, expected ({len(train_x)},)")
    partner = None if partners is None else torch.as_tensor(np.asarray(partners), dtype=torch.long)
    model.train()
    t0 = time.perf_counter()
    window_t, window_n, window_loss = t0, 0, []
    done = start
    for step in range(start, end):
        idx = batch_indices(step, len(data), config.batch_size, seed, rank, world)
        gen = torch.Generator().manual_seed(_step_seed(seed, step, rank))
        loss = step_loss(
            ddp_model,
            model,
            data[idx],
            None if partner is None else data[partner[idx]],
            config,
            views,
            gen,
            device,
            dtype,
            _step_seed(seed, step, rank) + 1,
        )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = (
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            if config.grad_clip > 0
            else torch.tensor(float("nan"))
        )
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        ema.update(model, step + 1)
        done = step + 1
        if config.time_limit_s > 0 and done < end and _out_of_time(t0, config.time_limit_s):
            end = done  # stop here: log, evaluate and checkpoint as at a planned end
        window_n += len(idx) * world
        window_loss.append(loss.item())
        if bar is not None:
            bar.update(1)
        if done % config.log_every == 0 or done == end:
            now = time.perf_counter()
            rate = window_n / max(now - window_t, 1e-9)
            rec = {
                "step": done,
                "loss": float(np.mean(window_loss)),
                "lr": optimizer.param_groups[0]["lr"],
                "grad_norm": float(grad_norm),
                "samples_per_s": rate,
                "elapsed_s": now - t0,
            }
            log(rec)
            if bar is not None:
                bar.set_postfix(loss=f"{rec['loss']:.4g}", spl_s=f"{rate:.0f}", refresh=False)
            window_t, window_n, window_loss = now, 0, []
        eval_now = config.eval_every > 0 and done % config.eval_every == 0
        if (eval_now or done == end) and held is not None and rank == 0:
            log(
                {
                    "step": done,
                    **_heldout_mse(model, ema.module, held, seed),
                    "elapsed_s": time.perf_counter() - t0,
                    **(on_eval(done, ema.module) if on_eval else {}),
                }
            )
        ck_now = config.checkpoint_every > 0 and done % config.checkpoint_every == 0
        if (ck_now or done == end) and rank == 0:
            ck_path = checkpoint(done)
        if done == end:
            break
    if bar is not None:
        bar.close()
    if metrics_file is not None:
        metrics_file.close()
    model.eval()
    return TrainResult(
        model=model,
        ema=ema,
        step=done,
        history=history,
        train_seconds=time.perf_counter() - t0,
        checkpoint=ck_path,
    )


def _out_of_time(t0: float, limit_s: float) -> bool:
    # Every rank must stop at the same step: rank 0's clock decides.
    flag = torch.tensor([float(time.perf_counter() - t0 > limit_s)])
    if dist.is_available() and dist.is_initialized():
        dist.broadcast(flag, src=0)
    return bool(flag.item())


@torch.no_grad()
def _heldout_mse(
    model: WaveMAE, ema_model: WaveMAE, held: np.ndarray, seed: int
) -> dict[str, float]:
    from wavemae.train.baselines import block_visible_masks, masked_mse
    from wavemae.train.evaluate import model_fill

    cfg = model.config
    visible = block_visible_masks(
        held.shape[0], cfg.seq_len, cfg.n_blocks, cfg.n_mask, seed=seed + 99
    )
    return {
        "heldout_mse_ema": masked_mse(model_fill(ema_model, held, visible), held, visible),
        "heldout_mse_raw": masked_mse(model_fill(model, held, visible), held, visible),
    }

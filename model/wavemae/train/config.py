"""Training configuration: the :class:`TrainConfig` dataclass and the named ``PRESETS``.

A config is plain data: checkpoints store ``TrainConfig.to_dict()`` and a run is rebuilt
with ``TrainConfig.from_dict(d)``. The model's own hyperparameters live in ``model``
(the fields of :class:`wavemae.models.WaveMAEConfig`) so one dict describes the whole run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["PRESETS", "TrainConfig", "preset"]

_LOSSES = ("mse", "sse", "huber")
_AMP = ("auto", "off", "bf16", "fp16")
_EMBED_LOSSES = ("none", "infonce", "vicreg")


@dataclass
class TrainConfig:
    """Everything that decides a training run (besides the data and the seed's outcome).

    Attributes:
        model: :class:`WaveMAEConfig` fields; ``seq_len`` is the model grid's length.
        steps: optimisation steps.
        batch_size: spectra per step, summed over all DDP ranks.
        lr: peak learning rate (AdamW).
        min_lr_ratio: cosine floor as a fraction of ``lr``; the schedule never decays to 0.
        warmup_steps: linear warm-up from 0 to ``lr``.
        weight_decay: AdamW decoupled weight decay (not applied to biases, norms, embeddings).
        beta1, beta2: AdamW betas.
        grad_clip: max global gradient norm (0 disables clipping).
        loss: ``"mse"`` (mean over masked positions), ``"sse"`` (sum over masked positions per
            spectrum, the spec's example) or ``"huber"`` (mean Huber over masked positions).
        huber_delta: Huber transition point, in preprocessed units.
        visible_loss_weight: weight of the same loss over the VISIBLE positions, added to the
            masked objective (0 = the spec's masked-only objective). Everything passes through
            the latent, so reconstructing seen positions is not trivial here, unlike in an
            image MAE whose decoder sees the visible tokens.
        ema_decay: EMA decay; warmed up as ``min(ema_decay, (1 + s) / (10 + s))``.
        amp: ``"auto"`` (bf16 on CUDA with bf16 support, fp16 on other CUDA, bf16 on CPUs
            with AVX512-BF16/AMX, else fp32), ``"off"``, ``"bf16"`` or ``"fp16"``.
        normalization: per-spectrum normalisation before band standardisation
            (``"none"``, ``"snv"``, ``"minmax"``, ``"l2"``), see :mod:`wavemae.preprocessing`.
        standardize: per-band standardisation fitted on the training spectra.
        wavelength_range: ``[start, stop]`` of the model grid in the data's unit, or None for
            the data's own range.
        aug_offset, aug_scale, aug_noise: augmentation in preprocessed units: a random additive
            offset (std), a random multiplicative scale ``1 + N(0, aug_scale)`` and white noise
            (std) applied to each training spectrum; 0 disables.
        mask_min: variable mask sizes: hide between ``mask_min`` and ``model["n_mask"]``
            blocks, drawn per step (0 = always ``n_mask``, the spec's objective).
        embed_loss: ``"none"``, ``"infonce"`` or ``"vicreg"``: an embedding term between two
            differently masked and augmented views of each spectrum (see
            :mod:`wavemae.train.objectives`); ``embed_weight`` scales it against the masked
            loss (averaged over both views), ``embed_temperature`` is InfoNCE's temperature.
        view_offset, view_slope, view_scale, view_noise, view_shift: instrument-like
            augmentations of each view (offset, baseline tilt and noise in units of the
            spectrum's own std; scatter as ``1 + N(0, view_scale)``; wavelength shift in grid
            points); used only with an ``embed_loss``.
        eval_every: steps between held-out evaluations (0: only at the end).
        log_every: steps between JSONL metric lines.
        checkpoint_every: steps between resumable checkpoints (0: only at the end).
        eval_masks: random masks per held-out spectrum in evaluations.
        num_threads: torch intra-op threads on CPU; 0 = auto: the cores the load average
            leaves idle, at least 1 (oversubscribed OpenMP threads spin-wait on each other:
            measured here 1.5 s/step with 1 thread vs 7.3 s/step with 2 under load ~8).
        time_limit_s: stop (evaluate, checkpoint) at the first step past this many seconds of
            training; 0 = no limit. The schedule still spans ``steps``, so a stopped run ends
            above the learning-rate floor; it can be resumed.
    """

    model: dict[str, Any] = field(default_factory=dict)
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    loss: str = "mse"
    huber_delta: float = 1.0
    visible_loss_weight: float = 0.0
    ema_decay: float = 0.999
    amp: str = "auto"
    normalization: str = "none"
    standardize: bool = True
    wavelength_range: list[float] | None = None
    aug_offset: float = 0.0
    aug_scale: float = 0.0
    aug_noise: float = 0.0
    mask_min: int = 0
    embed_loss: str = "none"
    embed_weight: float = 0.5
    embed_temperature: float = 0.1
    view_offset: float = 0.0
    view_slope: float = 0.0
    view_scale: float = 0.0
    view_noise: float = 0.0
    view_shift: float = 0.0
    eval_every: int = 500
    log_every: int = 10
    checkpoint_every: int = 500
    eval_masks: int = 4
    num_threads: int = 0
    time_limit_s: float = 0.0

    def __post_init__(self) -> None:
        if self.loss not in _LOSSES:
            raise ValueError(f"loss={self.loss!r} must be one of {_LOSSES}")
        if self.amp not in _AMP:
            raise ValueError(f"amp={self.amp!r} must be one of {_AMP}")
        if self.steps <= 0 or self.batch_size <= 0:
            raise ValueError(
                f"steps={self.steps} and batch_size={self.batch_size} must be positive"
            )
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio={self.min_lr_ratio} must lie in [0, 1]")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay={self.ema_decay} must lie in [0, 1)")
        if self.embed_loss not in _EMBED_LOSSES:
            raise ValueError(f"embed_loss={self.embed_loss!r} must be one of {_EMBED_LOSSES}")
        if self.mask_min < 0:
            raise ValueError(f"mask_min={self.mask_min} must be >= 0")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be >= 0")
        if "seq_len" not in self.model:
            self.model = {**self.model, "seq_len": 256}

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (stored in checkpoints and run folders)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        return cls(**d)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes``; ``model=`` entries are merged into the model dict."""
        if "model" in changes:
            changes["model"] = {**self.model, **changes["model"]}
        return dataclasses.replace(self, **changes)


_SMALL_MODEL = {
    "seq_len": 256,
    "d_model": 128,
    "nhead": 4,
    "num_layers": 4,
    "dim_feedforward": 512,
    "dropout": 0.0,
    "use_learnable_pos": True,
    "latent_dim": 64,
    "dec_hidden": 256,
    "dec_dropout": 0.0,
    "n_blocks": 32,
    "n_mask": 24,
}

# ``base`` is the spec's WaveMAE defaults; ``small`` trains in minutes on a 2-core CPU.
PRESETS: dict[str, TrainConfig] = {
    # Tuned on the tablet calibration spectra (a split of them, test untouched): lr 2e-3 beat
    # 1e-3 and 4e-3; EMA 0.995 suits runs of ~1000-5000 steps; the time limit keeps the run
    # under 15 minutes on a busy 2-core CPU (it stops early, evaluated and resumable).
    "small": TrainConfig(
        model=dict(_SMALL_MODEL),
        steps=1500,
        batch_size=64,
        lr=2e-3,
        warmup_steps=100,
        ema_decay=0.995,
        eval_every=250,
        checkpoint_every=250,
        time_limit_s=780.0,
    ),
    "base": TrainConfig(
        model={
            "seq_len": 256,
            "d_model": 384,
            "nhead": 6,
            "num_layers": 6,
            "dim_feedforward": 1536,
            "dropout": 0.1,
            "use_learnable_pos": True,
            "latent_dim": 64,
            "dec_hidden": 256,
            "dec_dropout": 0.1,
            "n_blocks": 32,
            "n_mask": 24,
        },
        steps=20000,
        batch_size=128,
        lr=5e-4,
        warmup_steps=1000,
        eval_every=2000,
        checkpoint_every=2000,
    ),
}


def preset(name: str) -> TrainConfig:
    """A fresh copy of ``PRESETS[name]``.

    Raises:
        ValueError: for an unknown preset, listing the known ones.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return TrainConfig.from_dict(PRESETS[name].to_dict())

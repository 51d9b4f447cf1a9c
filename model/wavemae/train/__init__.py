"""Training and evaluation of WaveMAE (imports torch).

- :mod:`wavemae.train.config` — :class:`TrainConfig`, ``PRESETS``.
- :mod:`wavemae.train.loop` — :func:`train_model` (AdamW, EMA, resume, DDP).
- :mod:`wavemae.train.step_loss` — what one step minimises (masked objective, two views).
- :mod:`wavemae.train.hardware` — autocast dtype, CPU threads, the torchrun process group.
- :mod:`wavemae.train.baselines` — numpy baselines: mean, interpolation, PCA fill-in.
- :mod:`wavemae.train.evaluate` — reconstruction and composition reports.
- :mod:`wavemae.train.run` — a whole run from a corpus or file: preprocessing, training,
  evaluation and the run folder (what ``wavemae train`` calls).
"""

from wavemae.train.config import PRESETS, TrainConfig, preset
from wavemae.train.loop import TrainResult, train_model

__all__ = ["PRESETS", "TrainConfig", "TrainResult", "preset", "train_model"]

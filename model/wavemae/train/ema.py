"""Exponential moving average of model weights, the weights evaluation and export use."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """A frozen copy of a model whose floating-point weights track ``decay``-averaged ones.

    ``update`` after every optimiser step blends the live weights in with weight
    ``1 - d`` where ``d = min(decay, (1 + step) / (10 + step))``: early on the average follows
    the (rapidly changing) weights closely, later it smooths over ~``1 / (1 - decay)`` steps.
    Buffers are copied, not averaged.

    Args:
        model: the live model (unwrapped, not DDP); copied at construction.
        decay: long-run decay in ``[0, 1)``.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay={decay} must lie in [0, 1)")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """The blend weight of the old average after optimiser step ``step`` (1-based)."""
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Blend ``model``'s current weights into the average (call after ``optimizer.step``)."""
        d = self.decay_at(step)
        ema_params = [p for p in self.module.parameters() if p.dtype.is_floating_point]
        live_params = [p.detach() for p in model.parameters() if p.dtype.is_floating_point]
        torch._foreach_lerp_(ema_params, live_params, 1.0 - d)
        for ema_buf, buf in zip(self.module.buffers(), model.buffers(), strict=True):
            ema_buf.copy_(buf)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """EMA weights with the keys of ``model.state_dict()``."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore weights saved by :meth:`state_dict`."""
        self.module.load_state_dict(state)

"""What one training step minimises: the masked objective over one view of the batch (the
spec's), or over two augmented, differently masked views plus the embedding term between
them (see :mod:`wavemae.train.objectives`).

:func:`step_loss` draws all its randomness from the generator and seed the loop derives from
``(seed, step, rank)``, which is what makes a resumed run continue bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wavemae.models.wave_mae import WaveMAE
from wavemae.train.config import TrainConfig
from wavemae.train.objectives import ViewAugment, draw_n_mask, embedding_loss

__all__ = ["masked_loss", "step_loss"]


def masked_loss(recon: Tensor, x: Tensor, visible: Tensor, kind: str, delta: float) -> Tensor:
    """The masked objective over hidden positions only.

    ``"mse"``: mean squared error per hidden position; ``"sse"``: squared error summed over
    hidden positions, averaged over spectra (the spec's example); ``"huber"``: mean Huber loss.
    """
    hidden = ~visible
    diff = recon.float()[hidden] - x.float()[hidden]
    if kind == "mse":
        return diff.pow(2).mean()
    if kind == "sse":
        return diff.pow(2).sum() / x.shape[0]
    if kind == "huber":
        return F.huber_loss(diff, torch.zeros_like(diff), delta=delta)
    raise ValueError(f"loss={kind!r} must be 'mse', 'sse' or 'huber'")


def _augment(x: Tensor, config: TrainConfig, gen: torch.Generator) -> Tensor:
    # x: (B, L); offset/scale per spectrum, noise per value; all from gen (CPU).
    b, length = x.shape
    if config.aug_scale > 0:
        x = x * (1.0 + config.aug_scale * torch.randn(b, 1, generator=gen))
    if config.aug_offset > 0:
        x = x + config.aug_offset * torch.randn(b, 1, generator=gen)
    if config.aug_noise > 0:
        x = x + config.aug_noise * torch.randn(b, length, generator=gen)
    return x


def step_loss(
    ddp_model: nn.Module,
    model: WaveMAE,
    x: Tensor,
    x_other: Tensor | None,
    config: TrainConfig,
    views: ViewAugment,
    gen: torch.Generator,
    device: torch.device,
    dtype: torch.dtype | None,
    dropout_seed: int,
) -> Tensor:
    """The step's loss: the masked objective over one view (the spec's), or over two views
    stacked in one forward pass (same hidden count, different blocks) plus the embedding term.

    Args:
        ddp_model: the module to run forward (``model`` itself, or its DDP wrapper).
        model: the bare WaveMAE (mask sizes and ``make_visible``).
        x: the batch ``(B, L)`` on the CPU, preprocessed.
        x_other: ``(B, L)`` the same samples measured otherwise (another instrument), the
            second view's source; None: both views from ``x``.
        config: the run's config (loss kind, augmentation, views, embedding term).
        views: the two-view augmentation.
        gen: CPU generator for augmentation, views and masks.
        device: where the forward pass runs.
        dtype: autocast dtype (None: fp32).
        dropout_seed: seeds torch's global RNG for dropout.

    Returns:
        The scalar loss tensor (on ``device``), ready for ``backward``.

    Raises:
        ValueError: if ``config.loss`` is not mse, sse or huber.
    """
    base = _augment(x, config, gen)
    two = config.embed_loss != "none"
    other = base if x_other is None else _augment(x_other, config, gen)
    xb = torch.cat([views(base, gen), views(other, gen)]) if two else base
    n_mask = draw_n_mask(model.n_mask, config.mask_min, gen)
    visible = model.make_visible(len(xb), n_mask=n_mask, generator=gen).to(device)
    xb = xb.to(device)
    torch.manual_seed(dropout_seed)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        recon, z, _ = ddp_model(xb, visible)
    loss = masked_loss(recon, xb, visible, config.loss, config.huber_delta)
    if config.visible_loss_weight > 0:
        seen = masked_loss(recon, xb, ~visible, config.loss, config.huber_delta)
        loss = loss + config.visible_loss_weight * seen
    if two:
        z1, z2 = z.chunk(2)
        emb = embedding_loss(config.embed_loss, z1, z2, config.embed_temperature)
        loss = loss + config.embed_weight * emb
    return loss

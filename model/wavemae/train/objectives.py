"""Training objectives beyond the masked reconstruction: two augmented, differently masked
views of each spectrum and an embedding term between them, plus variable mask sizes.

Everything here is an option of :class:`~wavemae.train.config.TrainConfig` and is off by
default (the spec's masked objective alone):

- ``mask_min``: hide between ``mask_min`` and ``n_mask`` blocks, drawn per step (per batch,
  so every row keeps the same visible count and the encoder's packed path), instead of always
  ``n_mask``: small gaps are then trained as often as large ones.
- ``embed_loss``: ``"infonce"`` (symmetric InfoNCE between the two views' unit embeddings,
  temperature ``embed_temperature``, the other spectra of the batch are the negatives) or
  ``"vicreg"`` (invariance MSE + variance hinge + covariance penalty between the views).
  ``embed_weight`` scales it against the masked loss.
- ``view_offset``, ``view_slope``, ``view_scale``, ``view_noise``, ``view_shift``: what differs
  between two instruments measuring the same sample, applied independently to each view:
  an additive offset and a linear baseline tilt (std, in units of the spectrum's own standard
  deviation across bands), a multiplicative scatter ``1 + N(0, view_scale)``, white noise
  (std, same unit) and a wavelength shift of ``N(0, view_shift)`` grid points (linear
  interpolation, so fractions of a band). When the loop knows the per-band standardisation
  (``band_mean``/``band_std``) the views are built in the spectrum's own units and then
  standardised again, so an offset is an offset of the measured spectrum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "EMBED_LOSSES",
    "ViewAugment",
    "draw_n_mask",
    "embedding_loss",
    "renormalize",
    "shift_rows",
]

EMBED_LOSSES = ("none", "infonce", "vicreg")


def draw_n_mask(n_mask: int, mask_min: int, gen: torch.Generator) -> int:
    """Blocks to hide this step: ``n_mask``, or uniform in ``[mask_min, n_mask]``."""
    if mask_min <= 0 or mask_min >= n_mask:
        return n_mask
    return int(torch.randint(mask_min, n_mask + 1, (1,), generator=gen).item())


def shift_rows(x: Tensor, shift: Tensor) -> Tensor:
    """Each row of ``x`` (B, L) moved by ``shift`` (B,) grid points, linear interpolation,
    edges held constant."""
    _, length = x.shape
    pos = torch.arange(length, dtype=x.dtype).unsqueeze(0) - shift.unsqueeze(1)
    pos = pos.clamp(0, length - 1)
    lo = pos.floor().long().clamp(max=length - 2)
    frac = pos - lo
    left = torch.gather(x, 1, lo)
    right = torch.gather(x, 1, lo + 1)
    return left + frac * (right - left)


@dataclass
class ViewAugment:
    """Instrument-like augmentation of a batch (see the module docstring for the fields)."""

    offset: float = 0.0
    slope: float = 0.0
    scale: float = 0.0
    noise: float = 0.0
    shift: float = 0.0
    band_mean: Tensor | None = None  # (L,) per-band standardisation, to work in raw units
    band_std: Tensor | None = None
    renormalize: str = "none"  # "snv" / "l2": apply the run's per-spectrum normalisation again

    @property
    def active(self) -> bool:
        return any(v > 0 for v in (self.offset, self.slope, self.scale, self.noise, self.shift))

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        if not self.active:
            return x
        raw = x if self.band_std is None else x * self.band_std + self.band_mean
        b, length = raw.shape
        sd = raw.std(dim=1, keepdim=True).clamp_min(1e-8)
        if self.shift > 0:
            raw = shift_rows(raw, self.shift * torch.randn(b, generator=gen))
        if self.scale > 0:
            raw = raw * (1.0 + self.scale * torch.randn(b, 1, generator=gen))
        if self.offset > 0:
            raw = raw + self.offset * sd * torch.randn(b, 1, generator=gen)
        if self.slope > 0:
            ramp = torch.linspace(-1.0, 1.0, length).unsqueeze(0)
            raw = raw + self.slope * sd * torch.randn(b, 1, generator=gen) * ramp
        if self.noise > 0:
            raw = raw + self.noise * sd * torch.randn(b, length, generator=gen)
        if self.band_std is not None:
            return (raw - self.band_mean) / self.band_std
        return renormalize(raw, self.renormalize)


def renormalize(x: Tensor, normalization: str) -> Tensor:
    """Rows of ``x`` (B, L) normalised again after augmentation, so a view is what the
    model sees at inference (a per-spectrum normalised spectrum): ``"snv"`` centres and scales
    each row to unit std, ``"l2"`` to unit norm, anything else leaves ``x`` as it is."""
    if normalization == "snv":
        return (x - x.mean(dim=1, keepdim=True)) / x.std(dim=1, keepdim=True).clamp_min(1e-8)
    if normalization == "l2":
        return x / x.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return x


def _infonce(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    logits = z1 @ z2.T / temperature
    target = torch.arange(z1.shape[0], device=z1.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def _vicreg(z1: Tensor, z2: Tensor) -> Tensor:
    # Bardes et al. 2022's three terms, rescaled for unit-norm embeddings so each is O(1).
    invariance = F.mse_loss(z1, z2) * z1.shape[1]  # unit vectors: per-vector squared distance

    def var_cov(z: Tensor) -> tuple[Tensor, Tensor]:
        z = z - z.mean(dim=0)
        std = torch.sqrt(z.var(dim=0) + 1e-4)
        # target std of a unit vector spread over d dims is ~1/sqrt(d)
        var = F.relu(1.0 / z.shape[1] ** 0.5 - std).mean() * z.shape[1] ** 0.5
        cov = (z.T @ z) / max(1, z.shape[0] - 1)
        off = cov - torch.diag(torch.diag(cov))
        # unit vectors: covariance entries are O(1/d); scaled so full correlation is O(1)
        return var, off.pow(2).sum() * z.shape[1] / 25.0

    v1, c1 = var_cov(z1)
    v2, c2 = var_cov(z2)
    return invariance + (v1 + v2) + (c1 + c2)


def embedding_loss(kind: str, z1: Tensor, z2: Tensor, temperature: float = 0.1) -> Tensor:
    """The embedding term between two views' embeddings ``(B, Z)`` (unit norm)."""
    z1, z2 = z1.float(), z2.float()
    if kind == "infonce":
        return _infonce(z1, z2, temperature)
    if kind == "vicreg":
        return _vicreg(z1, z2)
    raise ValueError(f"embed_loss={kind!r} must be one of {EMBED_LOSSES[1:]}")

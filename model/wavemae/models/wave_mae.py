"""WaveMAE: a masked autoencoder for one-dimensional spectra.

Spectra ``(B, L)`` are split into ``n_blocks`` contiguous blocks along the spectral axis and
``n_mask`` of them are hidden per row. The encoder sees only the visible positions plus a
prepended CLS token; the CLS output is projected to ``latent_dim`` and L2-normalised. A small
MLP decodes the latent back to the whole spectrum. No loss lives here (see :mod:`wavemae.train`).

Shapes used in comments: ``B`` batch, ``L`` seq_len, ``D`` d_model, ``V`` visible count,
``Z`` latent_dim. Masks: ``masked`` is True where hidden, ``visible`` is True where seen.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LearnablePositionalEncoding",
    "SinusoidalPositionalEncoding",
    "TransformerBlock",
    "WaveDecoderMLP",
    "WaveEncoder",
    "WaveMAE",
    "WaveMAEConfig",
    "make_block_mask",
]


# --------------------------------------------------------------------------- masking


def _check_blocks(seq_len: int, n_blocks: int, n_mask: int) -> None:
    if n_blocks <= 0:
        raise ValueError(f"n_blocks={n_blocks} must be positive")
    if seq_len % n_blocks != 0:
        raise ValueError(f"seq_len={seq_len} is not divisible by n_blocks={n_blocks}")
    if not 0 <= n_mask < n_blocks:
        raise ValueError(
            f"n_mask={n_mask} must lie in [0, n_blocks={n_blocks}): "
            "at least one block stays visible"
        )


def make_block_mask(
    batch_size: int,
    seq_len: int,
    n_blocks: int,
    n_mask: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Random block mask, chosen independently for each row.

    Args:
        batch_size: rows ``B``.
        seq_len: positions ``L``; must be divisible by ``n_blocks``.
        n_blocks: equal contiguous blocks along the sequence.
        n_mask: blocks hidden per row, in ``[0, n_blocks)``.
        generator: optional CPU ``torch.Generator`` for reproducible masks.
        device: where the returned mask lives.

    Returns:
        ``(B, L)`` bool, True = masked; each row has exactly ``n_mask`` whole blocks masked.

    Raises:
        ValueError: for a non-positive batch size or incompatible block arguments.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size={batch_size} must be positive")
    _check_blocks(seq_len, n_blocks, n_mask)
    block = seq_len // n_blocks
    # Random permutation of block indices per row; the first n_mask are hidden.
    scores = torch.rand(batch_size, n_blocks, generator=generator)  # (B, n_blocks), CPU
    ranks = scores.argsort(dim=1).argsort(dim=1)  # (B, n_blocks) rank of each block
    block_masked = ranks < n_mask  # (B, n_blocks)
    masked = block_masked.repeat_interleave(block, dim=1)  # (B, L)
    return masked.to(device) if device is not None else masked


# --------------------------------------------------------------------------- encodings


class LearnablePositionalEncoding(nn.Module):
    """Learnable positional embedding ``(1, L, D)``, initialised with a small normal."""

    def __init__(self, seq_len: int, d_model: int) -> None:
        super().__init__()
        self.pe = nn.Parameter(torch.zeros(1, seq_len, d_model))
        nn.init.trunc_normal_(self.pe, std=0.02)

    def forward(self) -> Tensor:
        return self.pe  # (1, L, D)


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sine/cosine positional encoding ``(1, L, D)`` (Vaswani et al., 2017)."""

    def __init__(self, seq_len: int, d_model: int) -> None:
        super().__init__()
        position = torch.arange(seq_len, dtype=torch.float32).unsqueeze(1)  # (L, 1)
        div = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
        )
        pe = torch.zeros(seq_len, d_model)
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div[: d_model // 2])
        self.register_buffer("pe", pe.unsqueeze(0), persistent=False)

    def forward(self) -> Tensor:
        return self.pe  # (1, L, D)


# --------------------------------------------------------------------------- encoder


class TransformerBlock(nn.Module):
    """Pre-norm Transformer encoder layer: self-attention and a GELU feed-forward network.

    Written out (rather than ``nn.TransformerEncoderLayer``) so the same code runs in eager
    mode, under autocast, and in exported ONNX/TorchScript graphs without the fused fast path.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.nhead = nhead
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, dim_feedforward)
        self.ff2 = nn.Linear(dim_feedforward, d_model)
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        # x: (B, S, D); attn_mask: (B, 1, 1, S) bool, True = may be attended to, or None
        b, s, d = x.shape
        h = self.nhead
        qkv = self.qkv(self.norm1(x)).reshape(b, s, 3, h, d // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, H, S, D/H)
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_dropout if self.training else 0.0
        )  # (B, H, S, D/H)
        a = a.transpose(1, 2).reshape(b, s, d)
        x = x + self.dropout(self.proj(a))
        x = x + self.dropout(self.ff2(self.dropout(F.gelu(self.ff1(self.norm2(x))))))
        return x


class WaveEncoder(nn.Module):
    """Encodes the visible positions of spectra into L2-normalised latents.

    Each scalar is projected to ``d_model``, the positional encoding is added, only the
    visible tokens are kept (plus a prepended CLS token), and a Transformer encoder runs over
    them. The CLS output is projected to ``latent_dim`` and L2-normalised.
    """

    def __init__(
        self,
        seq_len: int,
        d_model: int = 384,
        nhead: int = 6,
        num_layers: int = 6,
        dim_feedforward: int = 1536,
        dropout: float = 0.1,
        latent_dim: int = 64,
        use_learnable_pos: bool = True,
    ) -> None:
        super().__init__()
        if d_model % nhead != 0:
            raise ValueError(f"d_model={d_model} is not divisible by nhead={nhead}")
        self.seq_len = seq_len
        self.d_model = d_model
        self.input_proj = nn.Linear(1, d_model)
        self.pos = (
            LearnablePositionalEncoding(seq_len, d_model)
            if use_learnable_pos
            else SinusoidalPositionalEncoding(seq_len, d_model)
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, nhead, dim_feedforward, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, latent_dim)

    def embed_tokens(self, x: Tensor) -> Tensor:
        # x: (B, L) -> tokens (B, L, D)
        return self.input_proj(x.unsqueeze(-1)) + self.pos()

    def _run(self, tokens: Tensor, attn_mask: Tensor | None) -> Tensor:
        # tokens: (B, S, D) without CLS -> z: (B, Z), unit norm, float32
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        h = torch.cat([cls, tokens], dim=1)  # (B, 1 + S, D)
        if attn_mask is not None:
            keep_cls = torch.ones_like(attn_mask[:, :1])
            attn_mask = torch.cat([keep_cls, attn_mask], dim=1)[:, None, None, :]  # (B,1,1,1+S)
        for block in self.blocks:
            h = block(h, attn_mask)
        z = self.head(self.norm(h[:, 0]))  # (B, Z)
        # Normalise in float32 so unit norm holds under bf16/fp16 autocast too.
        return F.normalize(z.float(), dim=-1)

    def forward(self, x: Tensor, visible: Tensor) -> Tensor:
        """Encode ``x`` (B, L) seeing only ``visible`` (B, L) bool positions -> ``z`` (B, Z).

        Rows with equal visible counts take a gather fast path; unequal counts are padded to
        the longest row and the padding is excluded with a key-padding mask. Either way the
        answer equals encoding each row alone, and values at hidden positions have no effect.
        """
        # Zero hidden values so non-finite ones (a dead band) cannot reach padded tokens.
        tokens = self.embed_tokens(x.masked_fill(~visible, 0.0))  # (B, L, D)
        counts = visible.sum(dim=1)  # (B,)
        n_max = int(counts.max())
        # Stable sort puts each row's visible positions first, in spectral order.
        order = torch.argsort((~visible).to(torch.int8), dim=1, stable=True)[:, :n_max]  # (B, V)
        packed = tokens.gather(1, order.unsqueeze(-1).expand(-1, -1, self.d_model))  # (B, V, D)
        if bool((counts == n_max).all()):
            return self._run(packed, None)
        keep = torch.arange(n_max, device=x.device).unsqueeze(0) < counts.unsqueeze(1)  # (B, V)
        return self._run(packed, keep)

    def forward_all_visible(self, x: Tensor) -> Tensor:
        """Encode ``x`` (B, L) with every position visible -> ``z`` (B, Z). Export-friendly."""
        return self._run(self.embed_tokens(x), None)

    def forward_dense_masked(self, x: Tensor, visible: Tensor) -> Tensor:
        """Encode with hidden positions excluded by an attention mask instead of packing.

        Same answer as :meth:`forward` but with static shapes and no data-dependent branch,
        which is what an exported graph needs. Hidden values are zeroed first so that
        non-finite values there (a dead detector band) cannot leak through ``0 * nan``.
        """
        x = x.masked_fill(~visible, 0.0)
        return self._run(self.embed_tokens(x), visible)


# --------------------------------------------------------------------------- decoder


class WaveDecoderMLP(nn.Module):
    """Three-layer MLP with GELU and dropout: latent ``(B, Z)`` -> reconstruction ``(B, L)``."""

    def __init__(
        self, latent_dim: int, seq_len: int, hidden: int = 256, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, seq_len),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)  # (B, L)


# --------------------------------------------------------------------------- model


@dataclass
class WaveMAEConfig:
    """Every constructor argument of :class:`WaveMAE`; checkpoints store it with ``asdict``."""

    seq_len: int = 256
    d_model: int = 384
    nhead: int = 6
    num_layers: int = 6
    dim_feedforward: int = 1536
    dropout: float = 0.1
    use_learnable_pos: bool = True
    latent_dim: int = 64
    dec_hidden: int = 256
    dec_dropout: float = 0.1
    n_blocks: int = 32
    n_mask: int = 24

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class WaveMAE(nn.Module):
    """Masked autoencoder for 1-D spectra (see ``shared/seed/wave_mae.md``).

    Args:
        seq_len: input sequence length ``L``.
        d_model: Transformer width; must be divisible by ``nhead``.
        nhead: attention heads.
        num_layers: encoder depth.
        dim_feedforward: hidden size of the feed-forward layers.
        dropout: dropout rate in the encoder.
        use_learnable_pos: learnable positional embedding if True, else fixed sinusoidal.
        latent_dim: size ``Z`` of the L2-normalised latent.
        dec_hidden: decoder hidden size.
        dec_dropout: decoder dropout rate.
        n_blocks: equal blocks along the sequence; must divide ``seq_len``.
        n_mask: default number of blocks to hide, in ``[0, n_blocks)``.

    Raises:
        ValueError: naming the offending values when the arguments are inconsistent.
    """

    def __init__(
        self,
        seq_len: int,
        d_model: int = 384,
        nhead: int = 6,
        num_layers: int = 6,
        dim_feedforward: int = 1536,
        dropout: float = 0.1,
        use_learnable_pos: bool = True,
        latent_dim: int = 64,
        dec_hidden: int = 256,
        dec_dropout: float = 0.1,
        n_blocks: int = 32,
        n_mask: int = 24,
    ) -> None:
        super().__init__()
        if seq_len <= 0:
            raise ValueError(f"seq_len={seq_len} must be positive")
        if d_model % nhead != 0:
            raise ValueError(f"d_model={d_model} is not divisible by nhead={nhead}")
        _check_blocks(seq_len, n_blocks, n_mask)
        self.config = WaveMAEConfig(
            seq_len=seq_len,
            d_model=d_model,
            nhead=nhead,
            num_layers=num_layers,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            use_learnable_pos=use_learnable_pos,
            latent_dim=latent_dim,
            dec_hidden=dec_hidden,
            dec_dropout=dec_dropout,
            n_blocks=n_blocks,
            n_mask=n_mask,
        )
        self.seq_len = seq_len
        self.latent_dim = latent_dim
        self.n_blocks = n_blocks
        self.n_mask = n_mask
        self.encoder = WaveEncoder(
            seq_len,
            d_model=d_model,
            nhead=nhead,
            num_layers=num_layers,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            latent_dim=latent_dim,
            use_learnable_pos=use_learnable_pos,
        )
        self.decoder = WaveDecoderMLP(latent_dim, seq_len, hidden=dec_hidden, dropout=dec_dropout)
        self.apply(self._init_weights)

    @classmethod
    def from_config(cls, config: WaveMAEConfig | dict[str, Any]) -> WaveMAE:
        """Rebuild a model from a :class:`WaveMAEConfig` or its plain-dict form."""
        if isinstance(config, dict):
            config = WaveMAEConfig(**config)
        return cls(**asdict(config))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # ----------------------------------------------------------------- validation

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.seq_len:
            raise ValueError(f"x must have shape (B, seq_len={self.seq_len}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("x has an empty batch (B=0)")

    def _check_visible(self, visible: Tensor, x: Tensor) -> None:
        if not isinstance(visible, Tensor) or visible.dtype != torch.bool:
            got = visible.dtype if isinstance(visible, Tensor) else type(visible).__name__
            raise ValueError(f"visible_mask must be a torch.bool tensor, got {got}")
        if visible.shape != x.shape:
            raise ValueError(
                f"visible_mask must have the shape of x {tuple(x.shape)}, "
                f"got {tuple(visible.shape)}"
            )
        empty = ~visible.any(dim=1)
        if bool(empty.any()):
            rows = empty.nonzero().flatten().tolist()
            raise ValueError(f"visible_mask rows {rows} have no visible position")

    # ----------------------------------------------------------------- public API

    def make_visible(
        self,
        batch_size: int,
        *,
        n_mask: int | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Random visible mask ``(B, L)`` bool, True = visible, hiding ``n_mask`` blocks per row.

        ``n_mask`` defaults to the model's; ``generator`` makes the draw reproducible.
        """
        n = self.n_mask if n_mask is None else n_mask
        masked = make_block_mask(
            batch_size, self.seq_len, self.n_blocks, n, generator=generator, device=device
        )
        return ~masked

    def encode(self, x: Tensor, visible_mask: Tensor) -> Tensor:
        """Encode spectra ``x`` (B, L) seeing ``visible_mask`` (B, L) bool -> ``z`` (B, Z).

        ``z`` is L2-normalised. Values at hidden positions have no effect on ``z``.
        """
        self._check_input(x)
        self._check_visible(visible_mask, x)
        return self.encoder(x, visible_mask)

    def forward(
        self,
        x: Tensor,
        visible_mask: Tensor | None = None,
        *,
        n_mask: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Mask (unless ``visible_mask`` is given), encode and decode.

        Args:
            x: spectra ``(B, L)``.
            visible_mask: ``(B, L)`` bool, True = visible; drawn with ``n_mask`` blocks hidden
                when None.
            n_mask: blocks to hide for a drawn mask (default: the model's ``n_mask``).
            generator: optional CPU ``torch.Generator`` for a reproducible drawn mask.

        Returns:
            ``(x_recon, z, visible_mask)``: ``(B, L)``, ``(B, Z)`` unit norm, ``(B, L)`` bool.
        """
        self._check_input(x)
        if visible_mask is None:
            visible_mask = self.make_visible(
                x.shape[0], n_mask=n_mask, device=x.device, generator=generator
            )
        z = self.encode(x, visible_mask)
        return self.decoder(z), z, visible_mask

    def reconstruct(
        self,
        x: Tensor,
        visible_mask: Tensor | None = None,
        *,
        n_mask: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Reconstruction ``(B, L)`` of ``x`` from its visible positions (see :meth:`forward`)."""
        x_recon, _, _ = self.forward(x, visible_mask, n_mask=n_mask, generator=generator)
        return x_recon

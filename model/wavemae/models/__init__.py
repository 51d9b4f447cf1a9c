"""Torch models. Importing this package imports torch."""

from wavemae.models.wave_mae import (
    LearnablePositionalEncoding,
    SinusoidalPositionalEncoding,
    WaveDecoderMLP,
    WaveEncoder,
    WaveMAE,
    WaveMAEConfig,
    make_block_mask,
)

__all__ = [
    "LearnablePositionalEncoding",
    "SinusoidalPositionalEncoding",
    "WaveDecoderMLP",
    "WaveEncoder",
    "WaveMAE",
    "WaveMAEConfig",
    "make_block_mask",
]

"""Behaviour of the WaveMAE model that users rely on (spec: shared/seed/wave_mae.md)."""

from __future__ import annotations

import io

import pytest
import torch

from wavemae.models import WaveMAE, WaveMAEConfig, make_block_mask
from wavemae.models.wave_mae import SinusoidalPositionalEncoding


def tiny(**overrides) -> WaveMAE:
    kw = dict(
        seq_len=64,
        d_model=32,
        nhead=4,
        num_layers=2,
        dim_feedforward=64,
        latent_dim=16,
        dec_hidden=32,
        n_blocks=8,
        n_mask=6,
    )
    kw.update(overrides)
    return WaveMAE(**kw)


# --------------------------------------------------------------------------- the spec, verbatim


def test_spec_minimal_tests():
    mae = WaveMAE(seq_len=128, latent_dim=32, n_blocks=8, n_mask=6)
    x = torch.randn(4, 128)

    x_rec, z, visible = mae(x)
    assert x_rec.shape == x.shape
    assert z.shape == (4, 32)
    assert visible.shape == (4, 128)
    assert torch.allclose(z.norm(dim=1), torch.ones(4), atol=1e-5)


def test_spec_training_loop_and_feature_extraction():
    mae = WaveMAE(seq_len=256, latent_dim=64, n_blocks=16, n_mask=4)
    x = torch.randn(8, 256)

    # Forward pass with automatic masking
    x_recon, z, visible = mae(x)

    # Loss: reconstruction error only on masked positions
    loss = ((x_recon - x) ** 2)[~visible].sum() / x.size(0)
    loss.backward()

    visible = torch.ones(8, 256, dtype=torch.bool)
    z = mae.encode(x, visible)
    assert z.shape == (8, 64)
    assert torch.allclose(z.norm(dim=1), torch.ones(8), atol=1e-5)


def test_spec_defaults():
    mae = WaveMAE(seq_len=256)
    assert mae.config == WaveMAEConfig(seq_len=256)
    c = mae.config
    assert (c.d_model, c.nhead, c.num_layers, c.dim_feedforward) == (384, 6, 6, 1536)
    assert (c.dropout, c.use_learnable_pos, c.latent_dim) == (0.1, True, 64)
    assert (c.dec_hidden, c.dec_dropout, c.n_blocks, c.n_mask) == (256, 0.1, 32, 24)


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize(("seq_len", "n_blocks", "n_mask"), [(64, 8, 6), (128, 16, 1), (30, 5, 0)])
def test_block_mask_counts_and_contiguity(seq_len, n_blocks, n_mask):
    masked = make_block_mask(50, seq_len, n_blocks, n_mask)
    assert masked.shape == (50, seq_len) and masked.dtype == torch.bool
    block = seq_len // n_blocks
    blocks = masked.view(50, n_blocks, block)
    # Every block is entirely masked or entirely visible.
    assert torch.all(blocks.all(dim=2) | ~blocks.any(dim=2))
    assert torch.all(blocks.all(dim=2).sum(dim=1) == n_mask)


def test_block_mask_rows_are_independent_and_reproducible():
    g1 = torch.Generator().manual_seed(7)
    g2 = torch.Generator().manual_seed(7)
    a = make_block_mask(64, 64, 8, 4, generator=g1)
    b = make_block_mask(64, 64, 8, 4, generator=g2)
    assert torch.equal(a, b)
    assert len({tuple(row.tolist()) for row in a}) > 10  # rows differ from each other
    c = make_block_mask(64, 64, 8, 4, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(a, c)


def test_forward_mask_reproducible_with_generator():
    mae = tiny().eval()
    x = torch.randn(3, 64)
    _, z1, v1 = mae(x, generator=torch.Generator().manual_seed(1))
    _, z2, v2 = mae(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(v1, v2) and torch.equal(z1, z2)
    assert torch.all((~v1).sum(dim=1) == 6 * 8)


def test_make_visible_is_inverse_of_mask_and_honours_n_mask():
    mae = tiny()
    vis = mae.make_visible(5, n_mask=2)
    assert vis.dtype == torch.bool and vis.shape == (5, 64)
    assert torch.all((~vis).sum(dim=1) == 2 * 8)


# --------------------------------------------------------------------------- encoder semantics


def test_values_at_masked_positions_do_not_affect_z():
    mae = tiny().eval()
    x = torch.randn(6, 64)
    vis = mae.make_visible(6, generator=torch.Generator().manual_seed(0))
    z = mae.encode(x, vis)
    x2 = x.clone()
    x2[~vis] = torch.randn(int((~vis).sum())) * 100.0
    assert torch.equal(mae.encode(x2, vis), z)
    x3 = x.clone()
    x3[~vis] = float("nan")
    assert torch.allclose(mae.encode(x3, vis), z, atol=1e-6)


def test_unequal_visible_counts_match_row_by_row():
    mae = tiny().eval()
    x = torch.randn(4, 64)
    vis = torch.ones(4, 64, dtype=torch.bool)
    vis[0, :40] = False
    vis[1, 10:20] = False
    vis[2, ::3] = False
    z = mae.encode(x, vis)
    for i in range(4):
        zi = mae.encode(x[i : i + 1], vis[i : i + 1])
        torch.testing.assert_close(z[i], zi[0], atol=1e-5, rtol=1e-5)


def test_dense_masked_path_matches_packed_path():
    mae = tiny().eval()
    x = torch.randn(4, 64)
    vis = mae.make_visible(4, n_mask=3, generator=torch.Generator().manual_seed(3))
    vis[0, :8] = False  # make counts unequal
    torch.testing.assert_close(
        mae.encoder.forward_dense_masked(x, vis), mae.encode(x, vis), atol=1e-5, rtol=1e-5
    )
    full = torch.ones_like(vis)
    torch.testing.assert_close(
        mae.encoder.forward_all_visible(x), mae.encode(x, full), atol=1e-6, rtol=1e-6
    )


@pytest.mark.parametrize("learnable", [True, False])
def test_both_positional_encodings_work(learnable):
    mae = tiny(use_learnable_pos=learnable)
    x = torch.randn(2, 64)
    x_rec, z, _ = mae(x)
    assert x_rec.shape == (2, 64)
    assert torch.allclose(z.norm(dim=1), torch.ones(2), atol=1e-5)
    has_param = any(n.startswith("encoder.pos.") for n, _ in mae.named_parameters())
    assert has_param is learnable
    if not learnable:
        assert isinstance(mae.encoder.pos, SinusoidalPositionalEncoding)


def test_positions_matter():
    # Positional encoding makes the encoder sensitive to where a value sits, not only its value.
    mae = tiny().eval()
    x = torch.randn(1, 64)
    vis = torch.ones(1, 64, dtype=torch.bool)
    assert not torch.allclose(mae.encode(x, vis), mae.encode(x.flip(1), vis))


def test_n_mask_zero_is_all_visible():
    mae = tiny(n_mask=0)
    x = torch.randn(3, 64)
    _, _, vis = mae(x)
    assert bool(vis.all())
    _, _, vis = tiny()(x, n_mask=0)
    assert bool(vis.all())


# --------------------------------------------------------------------------- training-related


def test_every_parameter_gets_a_gradient():
    mae = tiny(use_learnable_pos=True)
    x = torch.randn(4, 64)
    x_rec, _, vis = mae(x)
    (((x_rec - x) ** 2)[~vis].mean()).backward()
    missing = [n for n, p in mae.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_state_dict_round_trip_reproduces_outputs():
    mae = tiny().eval()
    buf = io.BytesIO()
    torch.save({"config": mae.config.to_dict(), "model": mae.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    clone = WaveMAE.from_config(ckpt["config"]).eval()
    clone.load_state_dict(ckpt["model"])
    x = torch.randn(5, 64)
    vis = mae.make_visible(5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(clone.encode(x, vis), mae.encode(x, vis))
    assert torch.equal(clone.reconstruct(x, vis), mae.reconstruct(x, vis))


def test_eval_mode_is_deterministic_and_train_mode_uses_dropout():
    mae = tiny(dropout=0.5, dec_dropout=0.5)
    x = torch.randn(4, 64)
    vis = torch.ones(4, 64, dtype=torch.bool)
    mae.train()
    assert not torch.equal(mae.reconstruct(x, vis), mae.reconstruct(x, vis))
    mae.eval()
    assert torch.equal(mae.reconstruct(x, vis), mae.reconstruct(x, vis))


def test_bf16_autocast_forward_on_cpu_keeps_unit_norm():
    mae = tiny().eval()
    x = torch.randn(4, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_rec, z, _ = mae(x)
    assert torch.isfinite(x_rec).all()
    assert torch.allclose(z.float().norm(dim=1), torch.ones(4), atol=1e-3)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(d_model=30, nhead=4), ["d_model=30", "nhead=4"]),
        (dict(seq_len=60, n_blocks=8), ["seq_len=60", "n_blocks=8"]),
        (dict(n_mask=8), ["n_mask=8", "n_blocks=8"]),
        (dict(n_mask=-1), ["n_mask=-1"]),
    ],
)
def test_constructor_errors_name_the_values(kwargs, words):
    with pytest.raises(ValueError) as err:
        tiny(**kwargs)
    for w in words:
        assert w in str(err.value)


def test_input_and_mask_errors():
    mae = tiny()
    with pytest.raises(ValueError, match=r"seq_len=64.*\(2, 63\)"):
        mae(torch.randn(2, 63))
    with pytest.raises(ValueError, match="shape"):
        mae(torch.randn(64))
    x = torch.randn(2, 64)
    with pytest.raises(ValueError, match=r"torch\.bool"):
        mae.encode(x, torch.ones(2, 64))
    with pytest.raises(ValueError, match=r"shape of x"):
        mae.encode(x, torch.ones(2, 32, dtype=torch.bool))
    vis = torch.ones(2, 64, dtype=torch.bool)
    vis[1] = False
    with pytest.raises(ValueError, match=r"rows \[1\] have no visible position"):
        mae.encode(x, vis)
    with pytest.raises(ValueError, match="n_mask=8"):
        mae(x, n_mask=8)

"""Checkpoints: plain dicts that load with weights_only=True, EMA vs raw weights, RNG resume."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from wavemae.checkpoint import (
    CHECKPOINT_FORMAT,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    slim_checkpoint,
)
from wavemae.models import WaveMAE


def _tiny() -> WaveMAE:
    torch.manual_seed(0)
    return WaveMAE(
        seq_len=32,
        d_model=16,
        nhead=2,
        num_layers=1,
        dim_feedforward=32,
        latent_dim=8,
        dec_hidden=16,
        n_blocks=4,
        n_mask=2,
    )


def test_round_trip_loads_with_weights_only_and_returns_ema(tmp_path):
    model = _tiny()
    ema = {k: v + 1.0 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    pre = {"kind": "pipeline", "mean": np.arange(3, dtype=np.float32)}
    path = save_checkpoint(
        tmp_path / "ck.pt",
        model=model,
        ema_state=ema,
        step=7,
        preprocessing=pre,
        wavelengths=np.linspace(1000, 1100, 32),
        unit="nm",
        train_config={"lr": 1e-3, "betas": (0.9, 0.95)},
        provenance={"seed": np.int64(3), "metrics": {"mse": np.float32(0.5)}},
    )
    raw = torch.load(path, weights_only=True)  # must not need any pickled class
    assert raw["format"] == CHECKPOINT_FORMAT
    assert raw["preprocessing"]["mean"] == [0.0, 1.0, 2.0]
    assert raw["provenance"]["seed"] == 3

    loaded = load_checkpoint(path)
    assert loaded.weights == "ema" and not loaded.model.training
    assert loaded.step == 7 and loaded.unit == "nm" and len(loaded.wavelengths) == 32
    assert loaded.config == model.config
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, ema[k])
    raw_model = load_checkpoint(path, weights="raw").model
    for k, v in raw_model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])
    x = torch.randn(2, 32)
    with torch.no_grad():
        assert not torch.allclose(
            loaded.model.encoder.forward_all_visible(x), raw_model.encoder.forward_all_visible(x)
        )


def test_rejects_bad_inputs(tmp_path):
    model = _tiny()
    with pytest.raises(ValueError, match="wavelengths has 3 entries but seq_len=32"):
        save_checkpoint(tmp_path / "a.pt", model=model, wavelengths=[1, 2, 3])
    with pytest.raises(TypeError, match=r"provenance\.obj is a object"):
        save_checkpoint(tmp_path / "a.pt", model=model, provenance={"obj": object()})
    save_checkpoint(tmp_path / "noema.pt", model=model)
    with pytest.raises(ValueError, match="no ema weights"):
        load_checkpoint(tmp_path / "noema.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="'other' is not"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_round_trip(tmp_path):
    model = _tiny()
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    state = capture_rng_state({"mask": gen})
    save_checkpoint(tmp_path / "r.pt", model=model, rng_state=state)
    first = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=gen))
    restored = torch.load(tmp_path / "r.pt", weights_only=True)["rng_state"]
    restore_rng_state(restored, {"mask": gen})
    again = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=gen))
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] == again[2] and torch.equal(first[3], again[3])


def test_slim_copy_keeps_ema_weights_and_metadata_only(tmp_path):
    model = _tiny()
    ema = {k: v * 0.5 for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 32))[0].sum().backward()
    opt.step()
    full = save_checkpoint(
        tmp_path / "full.pt",
        model=model,
        ema_state=ema,
        optimizer=opt,
        step=3,
        unit="nm",
        rng_state=capture_rng_state(),
        provenance={"seed": 1},
    )
    slim = slim_checkpoint(full, tmp_path / "slim.pt")
    assert slim.stat().st_size < 0.5 * full.stat().st_size
    loaded = load_checkpoint(slim)
    assert loaded.step == 3 and loaded.provenance == {"seed": 1} and loaded.unit == "nm"
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, ema[k])
    with pytest.raises(ValueError, match="no raw weights; load it with weights='ema'"):
        load_checkpoint(slim, weights="raw")

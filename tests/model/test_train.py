"""Training loop on synthetic spectra: learning, exact resume, EMA export, DDP, the CLI."""

from __future__ import annotations

import itertools
import json
import socket

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from wavemae.checkpoint import load_checkpoint
from wavemae.cli import app
from wavemae.data import Spectra, write_csv_wide
from wavemae.train import TrainConfig, preset, train_model
from wavemae.train.baselines import block_visible_masks, masked_mse
from wavemae.train.evaluate import model_fill
from wavemae.train.loop import batch_indices, lr_factor

L = 64
TINY = {
    "seq_len": L,
    "d_model": 32,
    "nhead": 2,
    "num_layers": 2,
    "dim_feedforward": 64,
    "latent_dim": 16,
    "dec_hidden": 64,
    "n_blocks": 8,
    "n_mask": 5,
    "dropout": 0.1,
    "dec_dropout": 0.1,
}


def synthetic_spectra(n: int, seed: int) -> np.ndarray:
    """Smooth spectra: three Gaussian bands with random heights on a sloped baseline."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, L)
    centres = np.array([0.2, 0.5, 0.75])
    bands = np.exp(-(((t[None, :] - centres[:, None]) / 0.06) ** 2))  # (3, L)
    heights = rng.uniform(0.2, 1.5, size=(n, 3))
    slope = rng.normal(0, 0.3, size=(n, 1))
    return (heights @ bands + slope * t).astype(np.float32)


def tiny_config(**changes) -> TrainConfig:
    base = TrainConfig(
        model=dict(TINY),
        steps=12,
        batch_size=16,
        lr=3e-3,
        warmup_steps=3,
        eval_every=0,
        log_every=2,
        checkpoint_every=0,
        aug_noise=0.01,
        aug_scale=0.02,
        aug_offset=0.02,
        num_threads=1,
    )
    return base.replace(**changes)


def heldout_error(model, x, seed=0) -> float:
    vis = block_visible_masks(len(x), L, TINY["n_blocks"], TINY["n_mask"], seed=seed)
    return masked_mse(model_fill(model, x, vis), x, vis)


def test_short_run_lowers_the_heldout_masked_error():
    train, held = synthetic_spectra(256, 0), synthetic_spectra(64, 1)
    cfg = tiny_config(steps=150, batch_size=32, lr=2e-3, warmup_steps=10, ema_decay=0.9)
    torch.manual_seed(0)
    from wavemae.models import WaveMAE

    before = heldout_error(WaveMAE.from_config(cfg.model), held)
    result = train_model(cfg, train, seed=0, progress=False)
    after = heldout_error(result.ema.module, held)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert after < 0.3 * before, (before, after)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:2])


def _states(result) -> tuple[dict, dict]:
    return result.model.state_dict(), result.ema.state_dict()


def test_resume_continues_bit_for_bit(tmp_path):
    train = synthetic_spectra(40, 2)  # 40 rows, batch 16: epochs turn over mid-run
    cfg = tiny_config()
    whole = train_model(cfg, train, seed=5, out_dir=tmp_path / "whole", progress=False)
    first = train_model(cfg, train, seed=5, out_dir=tmp_path / "part", stop_at=6, progress=False)
    assert first.step == 6
    # Scramble global RNGs: a resumed run must not depend on the state of the process.
    torch.manual_seed(999), np.random.seed(999)
    resumed = train_model(
        cfg,
        train,
        seed=5,
        out_dir=tmp_path / "part",
        resume=tmp_path / "part" / "checkpoint.pt",
        progress=False,
    )
    assert resumed.step == 12
    for a, b in zip(_states(whole), _states(resumed), strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key
    # the resumed loss history continues the uninterrupted one
    tail = [h["loss"] for h in whole.history if "loss" in h and h["step"] > 6]
    assert tail == [h["loss"] for h in resumed.history if "loss" in h]
    # and a different seed gives a different model
    other = train_model(cfg, train, seed=6, progress=False)
    assert not torch.equal(other.model.encoder.pos.pe, whole.model.encoder.pos.pe)


def test_ema_differs_from_raw_and_is_what_the_checkpoint_exports(tmp_path):
    cfg = tiny_config(steps=20, ema_decay=0.95)
    result = train_model(cfg, synthetic_spectra(64, 3), seed=1, out_dir=tmp_path, progress=False)
    raw, ema = _states(result)
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)
    raw_loaded = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert raw_loaded["step"] == 20 and raw_loaded["train_config"]["seed"] == 1
    exported = load_checkpoint(tmp_path / "checkpoint.pt")  # default weights="ema"
    for k, v in exported.model.state_dict().items():
        assert torch.equal(v, ema[k]), k
    x = torch.as_tensor(synthetic_spectra(4, 9))
    with torch.no_grad():
        z_ema = exported.model.encoder.forward_all_visible(x)
        z_raw = load_checkpoint(tmp_path / "checkpoint.pt", weights="raw").model.encoder(
            x, torch.ones_like(x, dtype=torch.bool)
        )
    assert not torch.allclose(z_ema, z_raw)


def test_time_limit_stops_with_an_evaluated_checkpoint(tmp_path):
    cfg = tiny_config(steps=10_000, time_limit_s=1e-9)
    result = train_model(
        cfg,
        synthetic_spectra(32, 6),
        heldout_x=synthetic_spectra(8, 7),
        seed=0,
        out_dir=tmp_path,
        progress=False,
    )
    assert result.step == 1
    assert load_checkpoint(tmp_path / "checkpoint.pt").step == 1
    assert any("heldout_mse_ema" in h for h in result.history)


def test_schedule_warms_up_then_keeps_a_floor():
    cfg = tiny_config(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    factors = [lr_factor(s, cfg) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert min(factors[10:]) == pytest.approx(0.1, abs=1e-3)


def test_batches_shard_like_a_distributed_sampler_and_cover_each_epoch():
    whole = [batch_indices(s, 50, 10, seed=3) for s in range(5)]
    assert sorted(np.concatenate(whole).tolist()) == list(range(50))  # one epoch = every row
    for s in range(7):
        shards = [batch_indices(s, 50, 10, seed=3, rank=r, world=2) for r in range(2)]
        assert sorted(np.concatenate(shards)) == sorted(batch_indices(s, 50, 10, seed=3))
    assert not np.array_equal(batch_indices(5, 50, 10, seed=3), batch_indices(0, 50, 10, seed=3))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_world_size_one_under_gloo_matches_plain_training(monkeypatch):
    train = synthetic_spectra(48, 4)
    cfg = tiny_config(steps=6)
    plain = train_model(cfg, train, seed=2, progress=False)
    # What torchrun sets for one process; train_model joins the group itself.
    for key, value in {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
    }.items():
        monkeypatch.setenv(key, value)
    try:
        ddp = train_model(cfg, train, seed=2, progress=False)
        assert torch.distributed.is_initialized()
        assert torch.distributed.get_backend() == "gloo"
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    for key, value in plain.model.state_dict().items():
        torch.testing.assert_close(ddp.model.state_dict()[key], value, rtol=1e-5, atol=1e-6)


def test_cli_train_on_a_file_writes_a_complete_run_folder(tmp_path):
    rng = np.random.default_rng(0)
    values = synthetic_spectra(60, 5) + rng.normal(0, 0.01, (60, L)).astype(np.float32)
    write_csv_wide(Spectra(values, np.linspace(1000, 1630, L), "nm"), tmp_path / "s.csv")
    run = tmp_path / "run"
    model_flags = [f"--set=model.{k}={v}" for k, v in TINY.items() if k != "seq_len"]
    result = CliRunner().invoke(
        app,
        ["train", "--data", str(tmp_path / "s.csv"), "--steps", "8", "--seed", "3",
         "--out", str(run), "--no-progress", "--set=model.seq_len=32", "--set=log_every=2",
         "--set=num_threads=1", *model_flags],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "PCA fill-in, 8 components" in result.output
    names = {p.name for p in run.iterdir()}
    assert {"command.txt", "config.json", "metrics.jsonl", "checkpoint.pt", "eval.json",
            "eval.md", "metrics.json", "loss_curve.png"} <= names  # fmt: skip
    assert (run / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "--seed 3" in (run / "command.txt").read_text()
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 8
    ck = load_checkpoint(run / "checkpoint.pt")
    assert ck.config.seq_len == 32 and len(ck.wavelengths) == 32 and ck.unit == "nm"
    assert ck.provenance["seed"] == 3 and len(ck.provenance["data_sha256"]) == 64
    assert "heldout_masked_mse" in ck.provenance["metrics"]
    evaluated = CliRunner().invoke(app, ["evaluate", str(run / "checkpoint.pt")])
    assert evaluated.exit_code == 0, evaluated.output
    assert "linear interpolation" in evaluated.output


def test_presets_are_plain_and_base_is_the_spec_default():
    from wavemae.models import WaveMAEConfig

    assert preset("base").model == WaveMAEConfig().to_dict()
    small = preset("small")
    assert small.model["d_model"] == 128 and small.model["num_layers"] == 4
    assert TrainConfig.from_dict(small.to_dict()) == small
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")
    with pytest.raises(ValueError, match="loss='l1'"):
        TrainConfig(loss="l1")


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_one_model(tmp_path):
    """Real torchrun, 2 gloo ranks on CPU: shards the batch, rank 0 writes the run folder."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    values = synthetic_spectra(60, 5) + rng.normal(0, 0.01, (60, L)).astype(np.float32)
    write_csv_wide(Spectra(values, np.linspace(1000, 1630, L), "nm"), tmp_path / "s.csv")
    model_flags = [f"--set=model.{k}={v}" for k, v in TINY.items() if k != "seq_len"]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        f"--master_port={_free_port()}", "-m", "wavemae.cli", "train",
        "--data", str(tmp_path / "s.csv"), "--steps", "6", "--out", str(tmp_path / "run"),
        "--no-progress", "--set=model.seq_len=32", "--set=num_threads=1", *model_flags,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt").step == 6
    assert done.stdout.count("PCA fill-in, 8 components") == 1  # printed by rank 0 only

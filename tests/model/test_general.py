"""The general model's training set and run (--corpus general), and fine-tuning (--init)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from wavemae.checkpoint import load_checkpoint
from wavemae.cli import app
from wavemae.data import Spectra, load_corpus, write_csv_wide
from wavemae.evaluation.loader import _seeded_split
from wavemae.preprocessing import Preprocessor
from wavemae.train.evaluate import embed
from wavemae.train.general import general_training_set, partner_index
from wavemae.train.objectives import ViewAugment

TINY = {"d_model": 16, "nhead": 2, "num_layers": 1, "dim_feedforward": 32, "latent_dim": 8,
        "dec_hidden": 32, "n_blocks": 8, "n_mask": 5}  # fmt: skip
TINY_FLAGS = [f"--set=model.{k}={v}" for k, v in TINY.items()]


def _said(output: str) -> str:
    """The CLI's message with the box drawing and line wrapping of its error panel removed."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


QUICK = ["--no-progress", "--set=num_threads=1", "--set=eval_masks=1", "--set=log_every=1"]


def test_general_set_holds_synthetic_pairs_and_only_the_documented_reference_spectra():
    s = general_training_set(32, n_materials=6)
    sources = {m["source"] for m in s.metadata}
    assert sources == {"synthetic:train", "tablet:calibration", "fermentation:reference",
                       "coffee:reference"}  # fmt: skip
    assert s.values.shape[1] == 32 and np.isfinite(s.values).all()
    # No tablet test spectrum, and none of the suite's held-out fermentation/coffee spectra.
    tablets = {m["pair"] for m in s.metadata if m["source"] == "tablet:calibration"}
    assert all(p.startswith("tablet:calibration-") for p in tablets)
    for name in ("fermentation", "coffee"):
        reference, _, _ = _seeded_split(load_corpus(name), None, 0)
        n_seen = sum(m["source"] == f"{name}:reference" for m in s.metadata)
        assert n_seen == 3 * len(reference)  # each reference spectrum three times, no others
    partner = partner_index(s.metadata)
    for i in (0, 1, len(s) - 1, next(i for i, m in enumerate(s.metadata) if "instrument" in m
                                     and m["source"] == "tablet:calibration")):  # fmt: skip
        a, b = s.metadata[i], s.metadata[partner[i]]
        assert a["pair"] == b["pair"] and partner[i] != i
        if "instrument" in a:  # the same sample on the other instrument
            assert a["instrument"] != b["instrument"]


def test_views_of_a_normalised_spectrum_are_normalised_again():
    x = torch.randn(4, 50).cumsum(dim=1)
    x = (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)
    view = ViewAugment(offset=0.3, slope=0.3, scale=0.2, noise=0.05, renormalize="snv")
    out = view(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.mean(1), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(1), torch.ones(4), atol=1e-5, rtol=0)
    assert not torch.allclose(out, x, atol=1e-3)


@pytest.fixture(scope="module")
def general_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("general") / "run"
    result = CliRunner().invoke(
        app,
        ["train", "--corpus", "general", "--materials", "8", "--steps", "3", "--out", str(run),
         "--set=model.seq_len=32", "--set=batch_size=16", '--set=normalization="snv"',
         "--set=standardize=false", "--set=embed_loss=infonce", "--set=view_slope=0.1",
         *QUICK, *TINY_FLAGS],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return run / "checkpoint.pt"


@pytest.mark.slow  # the fixture builds the general set and trains: ~20-70 s on 2 busy cores
def test_general_model_reads_any_range_and_ignores_the_intensity_scale(general_run):
    ck = load_checkpoint(general_run)
    pre = Preprocessor.from_dict(ck.preprocessing)
    assert pre.axis == "relative" and pre.normalization == "snv"
    assert ck.provenance["data"]["corpus"] == "general"
    tablet = load_corpus("tablet", split="test").subset(slice(0, 6))
    coffee = load_corpus("coffee").subset(slice(0, 6))
    for s in (tablet, coffee):  # nm and cm-1, 597 and 1841 points: all onto 32 points
        x = pre.transform(s.values, s.wavelengths, unit=s.unit)
        x_scaled = pre.transform(s.values * 1e3, s.wavelengths, unit=s.unit)
        z = embed(ck.model, x.astype(np.float32))
        z_scaled = embed(ck.model, x_scaled.astype(np.float32))
        cos = np.sum(z * z_scaled, axis=1)
        assert z.shape == (6, 8) and np.all(1 - cos < 1e-3)


def _own_csv(path: Path, start: float = 1100.0) -> Path:
    rng = np.random.default_rng(3)
    grid = np.arange(start, 2501.0, 5.0)
    bands = np.exp(-(((grid[None, :] - np.array([[1450.0], [1940.0], [2300.0]])) / 60) ** 2))
    values = rng.uniform(0.2, 1.2, (30, 3)) @ bands + rng.normal(0, 0.01, (30, grid.size))
    write_csv_wide(Spectra(values + 0.3, grid, "nm"), path)
    return path


def test_init_fine_tunes_a_checkpoint_into_a_domain_model_on_the_users_grid(tmp_path):
    first = tmp_path / "first"
    made = CliRunner().invoke(
        app, ["train", "--data", str(_own_csv(tmp_path / "a.csv", 1100.0)), "--steps", "2",
              "--out", str(first), "--set=model.seq_len=32", '--set=normalization="snv"',
              "--set=standardize=false", "--set=batch_size=8", *QUICK, *TINY_FLAGS],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    start = load_checkpoint(first / "checkpoint.pt")
    run = tmp_path / "tuned"
    # lr 0: the fine-tuned weights are exactly the start's, which proves they were loaded.
    result = CliRunner().invoke(
        app, ["train", "--init", str(first / "checkpoint.pt"), "--steps", "2", "--out", str(run),
              "--data", str(_own_csv(tmp_path / "b.csv", 1300.0)), "--set=lr=0",
              "--set=batch_size=8", *QUICK],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    tuned = load_checkpoint(run / "checkpoint.pt")
    assert tuned.config == start.config
    for key, value in start.model.state_dict().items():
        torch.testing.assert_close(tuned.model.state_dict()[key], value)
    pre = Preprocessor.from_dict(tuned.preprocessing)
    assert pre.normalization == "snv" and not pre.standardize  # the start's normalisation
    assert (tuned.wavelengths[0], tuned.wavelengths[-1]) == (1300.0, 2500.0)  # the new grid
    assert tuned.provenance["init"]["kind"] == "checkpoint"
    assert "--init" in (run / "command.txt").read_text()


@pytest.mark.slow  # a real fine-tuning step of the shipped model: minutes on busy cores
def test_init_default_starts_from_the_shipped_artifact_and_keeps_its_architecture(tmp_path):
    from wavemae.artifact import default_model_dir

    data = _own_csv(tmp_path / "my.csv")
    clash = CliRunner().invoke(
        app, ["train", "--init", "default", "--data", str(data), "--set=model.num_layers=1"]
    )
    assert clash.exit_code == 2 and "drop the --set model.* overrides" in _said(clash.output)
    missing = CliRunner().invoke(app, ["train", "--init", str(tmp_path), "--data", str(data)])
    assert missing.exit_code == 2 and "is not an artifact folder" in _said(missing.output)
    run = tmp_path / "tuned"
    result = CliRunner().invoke(
        app, ["train", "--init", "default", "--data", str(data), "--steps", "1",
              "--set=batch_size=8", "--out", str(run), "--set=lr=0", *QUICK],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    tuned = load_checkpoint(run / "checkpoint.pt")
    shipped = torch.jit.load(str(default_model_dir() / "encoder.pt")).state_dict()
    for key, value in shipped.items():
        torch.testing.assert_close(tuned.model.state_dict()[key], value)
    assert tuned.provenance["init"]["kind"] == "artifact"


def test_init_takes_a_shipped_models_name():
    from wavemae.train.init import load_init

    general, tablet = load_init("default"), load_init("tablet")
    assert general.describe["artifact"].startswith("wavemae-general:")
    assert general.preprocessing["axis"] == "relative"
    assert tablet.describe["artifact"].startswith("wavemae-tablet:")
    assert tablet.model_config["num_layers"] == 4 and tablet.model_config["seq_len"] == 256

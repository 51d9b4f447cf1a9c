"""The command line with a user's own data: sample files, own-grid train -> export without
--data -> a loadable artifact, and one-line messages (no traceback) for a user's mistakes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from wavemae.cli import app
from wavemae.data import (
    Spectra,
    load_corpus,
    read_spectra,
    spectra_from_argument,
    write_csv_long,
)


def _wavemae(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real command in a fresh process (as a user runs it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WAVEMAE_TRACEBACK", None)
    return subprocess.run(
        [sys.executable, "-m", "wavemae.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_version_flag(tmp_path: Path) -> None:
    from wavemae import __version__

    done = _wavemae("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"wavemae {__version__}"


def test_a_user_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    done = _wavemae("export", "model.pt", "--out", "art", "--data", "nope", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        "error: --data 'nope' is neither a file nor a corpus (corpora: ['coffee', "
        "'fermentation', 'tablet'], written as CORPUS or CORPUS:SPLIT)"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "missing.pt", "--out", "art"], r"checkpoint missing\.pt does not exist"),
        (["train", "--data", "nope.csv", "--steps", "1"], r"/nope\.csv: no such file"),
        (["train", "--data", "bad.csv", "--steps", "1"], r"/bad\.csv, line 3: column 2 \('x'\)"),
        (["evaluate", "bad.csv"], r"bad\.csv"),
    ],
)
def test_user_errors_exit_1_with_one_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WAVEMAE_TRACEBACK", raising=False)
    (tmp_path / "bad.csv").write_text("wavelength,a\n1000,1\n1001,x\n")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and re.match(rf"error: .*{message}", lines[0]), result.output


def test_data_argument_takes_a_file_or_a_corpus(tmp_path: Path) -> None:
    own = _own_spectra(6).to_unit("um")
    write_csv_long(own, tmp_path / "um.csv")
    from_file = spectra_from_argument(str(tmp_path / "um.csv"))
    assert from_file.unit == "nm" and from_file.wavelengths[0] == pytest.approx(1100)
    assert len(spectra_from_argument("tablet:test")) == 424


def test_sample_files_read_back_as_the_tablet_spectra(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sample", "--out", str(tmp_path), "--n", "3"])
    assert result.exit_code == 0, result.output
    tablets = load_corpus("tablet", split="test").subset([0, 1, 2])
    full_grid = [
        "tablet_wide.csv",
        "tablet_long.csv",
        "tablet.npy",
        "tablet.npz",
        "tablet.spc",
        "tablet_cube.hdr",
    ]
    for name in full_grid:
        s = read_spectra(tmp_path / name)
        assert s.unit == "nm", name
        np.testing.assert_array_equal(s.values, tablets.values, err_msg=name)
        np.testing.assert_allclose(s.wavelengths, tablets.wavelengths, rtol=1e-6, err_msg=name)
    for name in ("tablet_one.csv", "tablet.jdx"):
        np.testing.assert_allclose(read_spectra(tmp_path / name).values, tablets.values[:1])
    partial = read_spectra(tmp_path / "tablet_900-1700nm.csv")
    assert (partial.wavelengths[0], partial.wavelengths[-1]) == (900, 1700)
    assert read_spectra(tmp_path / "fermentation_ir.csv").unit == "cm-1"
    assert read_spectra(tmp_path / "omnic_demo.spa").unit == "cm-1"
    assert "wrote 11 sample files" in result.output


def _own_spectra(n: int = 40) -> Spectra:
    """Smooth NIR-like spectra on 1100-2500 nm (2 nm), away from the tablet grid."""
    rng = np.random.default_rng(7)
    grid = np.arange(1100.0, 2501.0, 2.0)
    centres = np.array([1450.0, 1940.0, 2100.0, 2300.0])
    bands = np.exp(-(((grid[None, :] - centres[:, None]) / 60.0) ** 2))
    values = rng.uniform(0.2, 1.2, (n, 4)) @ bands + rng.normal(0, 0.01, (n, grid.size))
    ids = [f"lot-{i:02d}" for i in range(n)]
    return Spectra(values + 0.3, grid, "nm", ids=ids)


@pytest.mark.slow  # ~20-50 s on 2 busy cores: training, ONNX export and its verification
def test_own_data_train_then_export_without_data(tmp_path: Path) -> None:
    from wavemae.artifact import load_artifact

    own = _own_spectra()
    write_csv_long(own, tmp_path / "my_nir.csv")
    tiny = {"d_model": 16, "nhead": 2, "num_layers": 1, "dim_feedforward": 32, "latent_dim": 8,
            "dec_hidden": 32, "n_blocks": 8, "n_mask": 3, "seq_len": 64}  # fmt: skip
    run = tmp_path / "run"
    train = CliRunner().invoke(
        app,
        ["train", "--data", str(tmp_path / "my_nir.csv"), "--steps", "4", "--out", str(run),
         "--no-progress", "--set=num_threads=1", "--set=eval_masks=1",
         *(f"--set=model.{k}={v}" for k, v in tiny.items())],
    )  # fmt: skip
    assert train.exit_code == 0, train.output
    art = tmp_path / "art"
    exported = CliRunner().invoke(app, ["export", str(run / "checkpoint.pt"), "--out", str(art)])
    assert exported.exit_code == 0, exported.output
    artifact = load_artifact(art)
    assert artifact.wavelengths[0] == pytest.approx(1100) and artifact.seq_len == 64
    assert artifact.wavelengths[-1] == pytest.approx(2500)
    data = artifact.manifest.provenance["verification_data"]
    assert data["source"] == f"held-out split of file {tmp_path / 'my_nir.csv'}"
    assert data["n_spectra"] == 8  # the 20 % held out of 40
    x = artifact.preprocess(own.values[:2], own.wavelengths)
    assert x.shape == (2, 64) and np.isfinite(x).all()

    # The training file is gone: the message says what to do; --data FILE still works.
    (tmp_path / "my_nir.csv").rename(tmp_path / "moved.csv")
    again = CliRunner().invoke(app, ["export", str(run / "checkpoint.pt"), "--out", str(art)])
    assert again.exit_code == 1 and "not there any more; pass --data" in again.output

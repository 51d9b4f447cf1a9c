"""The evaluation suite, the QC score and the training objectives, on tiny models (seconds)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from wavemae.evaluation import EvalModel, run_suite, write_suite
from wavemae.evaluation.classical import auroc, effective_rank, hotelling_t2, q_residual
from wavemae.evaluation.corruptions import CORRUPTIONS, corrupt
from wavemae.models import WaveMAE
from wavemae.preprocessing import Preprocessor
from wavemae.qc import QCCalibration, fit_qc
from wavemae.train.baselines import fill_pca, fit_pca
from wavemae.train.evaluate import embed, model_fill
from wavemae.train.objectives import ViewAugment, embedding_loss, shift_rows

L = 64
GRID = np.linspace(1100.0, 1700.0, L)


def synthetic_spectra(n: int, wavelengths: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """``(n, L)`` float32 smooth NIR-like spectra: 3 Gaussian bands whose heights vary per
    spectrum, a sloped baseline and a little noise."""
    grid = np.asarray(wavelengths, dtype=np.float64)
    rng = np.random.default_rng(seed)
    t = (grid - grid[0]) / max(float(grid[-1] - grid[0]), 1e-12)  # (L,) in [0, 1]
    centres = np.array([0.2, 0.5, 0.8])
    heights = rng.uniform(0.2, 1.0, size=(n, 3))
    bands = np.exp(-0.5 * ((t[None, None, :] - centres[None, :, None]) / 0.06) ** 2)
    values = np.einsum("nk,nkl->nl", heights, np.broadcast_to(bands, (n, 3, grid.size)))
    baseline = rng.uniform(0.0, 0.3, size=(n, 1)) + rng.uniform(-0.2, 0.2, size=(n, 1)) * t
    noise = rng.normal(0.0, 0.005, size=values.shape)
    return (values + baseline + noise).astype(np.float32)


def _tiny_model(seed: int = 0) -> WaveMAE:
    torch.manual_seed(seed)
    return WaveMAE(
        L, d_model=16, nhead=2, num_layers=1, dim_feedforward=32, dropout=0.0,
        latent_dim=8, dec_hidden=16, dec_dropout=0.0, n_blocks=8, n_mask=4,
    ).eval()  # fmt: skip


def _eval_model(model: WaveMAE, raw: np.ndarray) -> EvalModel:
    pre = Preprocessor(wavelengths=GRID, unit="nm", normalization="snv", standardize=True).fit(raw)
    return EvalModel(
        "tiny",
        GRID,
        lambda r: pre.transform(r, GRID, unit="nm"),
        lambda x: embed(model, x.astype(np.float32)),
        lambda x, v: model_fill(model, x.astype(np.float32), v),
        n_blocks=8,
        n_mask=4,
    )


def test_auroc_and_effective_rank_on_known_cases():
    assert auroc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0
    assert auroc(np.ones(5), np.ones(5)) == 0.5
    rng = np.random.default_rng(0)
    rank1 = rng.normal(size=(200, 1)) * rng.normal(size=(1, 10))
    assert effective_rank(rank1) == pytest.approx(1.0, abs=1e-6)
    assert effective_rank(rng.normal(size=(5000, 10))) > 9.0


def test_pca_outlier_statistics_flag_spectra_off_the_training_subspace():
    raw = synthetic_spectra(100, GRID, seed=0).astype(np.float64)
    odd = raw[:10].copy()
    odd[:, 30] += 0.5  # a spike: off the PCA subspace
    assert q_residual(raw, odd, 4).min() > q_residual(raw, raw[10:20], 4).max()
    far = raw[:10] + 3 * (raw[:10] - raw.mean(0))  # inside the subspace, far out along it
    assert hotelling_t2(raw, far, 3).min() > np.median(hotelling_t2(raw, raw, 3))


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_each_fault_grows_with_its_level(kind):
    raw = synthetic_spectra(20, GRID, seed=1).astype(np.float64)
    sizes = [
        np.abs(corrupt(raw, kind, level, np.random.default_rng(0)) - raw).max()
        for level in (0.01, 0.05, 0.2)
    ]
    assert 0 < sizes[0] < sizes[1] < sizes[2]


def test_qc_score_flags_gross_faults_and_round_trips_through_json():
    raw = synthetic_spectra(160, GRID, seed=2).astype(np.float64)
    ref, cal, test = raw[:80], raw[80:120], raw[120:]
    basis = fit_pca(ref, max_components=6)

    def reconstruct(x, visible):  # a good "model": PCA fill-in
        return fill_pca(x, visible, basis, 4)

    def emb(x):
        return basis.scores(x, 4)

    qc = fit_qc(ref, cal, emb, reconstruct, n_groups=8)
    clean = qc.score(test, emb, reconstruct)
    spiked = qc.score(corrupt(test, "spike", 0.2, np.random.default_rng(0)), emb, reconstruct)
    assert auroc(clean["score"], spiked["score"]) > 0.95
    assert spiked["flag"].mean() > 0.8 and clean["flag"].mean() < 0.2
    assert clean["percentile"].min() >= 0.0 and clean["percentile"].max() <= 100.0
    again = QCCalibration.from_dict(json.loads(json.dumps(qc.to_dict())))
    np.testing.assert_allclose(again.score(test, emb, reconstruct)["score"], clean["score"],
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    with pytest.raises(ValueError, match="at least 10 clean spectra"):
        fit_qc(ref, cal[:5], emb, reconstruct)


def _instrument_pairs(idx, raw, y):
    inst2 = raw * 1.03 + 0.02
    values = np.vstack([raw[idx], inst2[idx]])
    meta = [{"y": float(y[i]), "sample": int(i), "inst": k} for k in (1, 2) for i in idx]
    return values, meta


def test_suite_reports_every_section_next_to_its_baselines(tmp_path):
    raw = synthetic_spectra(60, GRID, seed=3).astype(np.float64)
    y = raw[:, 20] - raw[:, 40]
    model = _eval_model(_tiny_model(), raw)
    report = run_suite(
        model,
        _instrument_pairs(np.arange(0, 30), raw, y),
        _instrument_pairs(np.arange(30, 45), raw, y),
        _instrument_pairs(np.arange(45, 60), raw, y),
        label="y", group="sample", instrument="inst",
    )  # fmt: skip
    retrieval = report["retrieval"]["table"]
    assert {"WaveMAE embedding", "raw cosine", "Pearson (HQI)"} <= set(retrieval)
    assert all(set(row) == {"k=1", "k=5"} for row in retrieval.values())
    # an affine instrument difference: Pearson correlation finds every sample's twin
    assert report["identity"]["table"]["Pearson (HQI)"]["2->1 top-1"] == 1.0
    fill = report["fill_in"]["table"]
    assert list(fill)[:4] == ["gap 2 %", "gap 5 %", "gap 10 %", "gap 20 %"]
    assert all(
        set(row)
        == {"WaveMAE fill", "linear interpolation", "PCA fill-in", "PCA k (chosen on validation)"}
        for row in fill.values()
    )
    assert len(report["qc"]["table"]) == len(CORRUPTIONS) * 3
    qc_columns = {c for c in report["qc"]["table"]["spike 5 %"] if c.startswith("QC ")}
    assert len(qc_columns) == 3 and "QC model" in qc_columns  # model-only, PCA-only, combined
    assert report["qc"]["chosen_on_validation"] in report["qc"]["validation_mean_auroc"]
    # SNV input: a pure rescale cannot change the embedding
    assert report["health"]["rescale x2.0: max 1-cos"] < 1e-6
    folder = write_suite(report, tmp_path / "suite", "tiny")
    md = (folder / "eval.md").read_text()
    assert "## Fill-in" in md and "Hotelling T²" in md and "Cross-instrument" in md
    assert json.loads((folder / "eval.json").read_text())["n"]["evaluation"] == 30
    assert QCCalibration.from_dict(json.loads((folder / "qc.json").read_text())).n_groups == 8


def test_retrieval_scores_only_the_spectra_that_carry_a_label():
    # fermentation-like: reference values for only some spectra; the others are not scored
    raw = synthetic_spectra(60, GRID, seed=4).astype(np.float64)
    y = raw[:, 20] - raw[:, 40]
    meta = [{"y": float(v) if i % 3 else None} for i, v in enumerate(y)]
    model = _eval_model(_tiny_model(), raw)
    sets = [(raw[a:b], meta[a:b]) for a, b in ((0, 30), (30, 45), (45, 60))]
    report = run_suite(model, *sets, label="y", sections=("retrieval",))
    retrieval = report["retrieval"]
    assert (retrieval["n_library"], retrieval["n_queries"]) == (20, 10)
    assert np.isfinite(retrieval["baseline_no_similarity"])
    assert all(np.isfinite(v) for row in retrieval["table"].values() for v in row.values())


def test_view_augmentations_and_embedding_losses():
    gen = torch.Generator().manual_seed(0)
    x = torch.as_tensor(synthetic_spectra(8, GRID, seed=4))
    assert torch.equal(ViewAugment()(x, gen), x)  # nothing asked, nothing changed
    moved = ViewAugment(offset=0.1, slope=0.1, scale=0.02, noise=0.01, shift=0.5)(x, gen)
    assert moved.shape == x.shape and not torch.allclose(moved, x)
    ramp = torch.arange(10.0).unsqueeze(0)
    assert torch.allclose(shift_rows(ramp, torch.tensor([1.0]))[0, 1:], ramp[0, :-1])
    z = torch.nn.functional.normalize(torch.randn(16, 8, generator=gen), dim=1)
    other = torch.nn.functional.normalize(torch.randn(16, 8, generator=gen), dim=1)
    for kind in ("infonce", "vicreg"):  # matching views cost less than unrelated ones
        assert embedding_loss(kind, z, z) < embedding_loss(kind, z, other)
    with pytest.raises(ValueError, match="embed_loss='cos'"):
        embedding_loss("cos", z, z)


@pytest.mark.slow  # about 15 s idle, 75 s on a loaded 2-core machine
def test_two_view_training_runs_and_cli_suite_on_a_users_file(tmp_path):
    from wavemae.cli import app

    raw = synthetic_spectra(60, GRID, seed=5).astype(np.float64)
    rows = ["id,split,sample,inst,y," + ",".join(f"{w:.3f}" for w in GRID)]
    for inst, values in ((1, raw), (2, raw * 1.03 + 0.02)):
        for i, v in enumerate(values):
            split = "train" if i < 30 else "val" if i < 45 else "test"
            rows.append(f"s{i}-{inst},{split},{i},{inst},{raw[i, 20]:.5f}," +
                        ",".join(f"{a:.6f}" for a in v))  # fmt: skip
    path = tmp_path / "mine.csv"
    path.write_text("\n".join(rows) + "\n")
    runner = CliRunner()
    model_args = [
        "--set=model.seq_len=64", "--set=model.d_model=16", "--set=model.nhead=2",
        "--set=model.num_layers=1", "--set=model.dim_feedforward=32", "--set=model.n_blocks=8",
        "--set=model.n_mask=4", "--set=model.latent_dim=8", "--set=model.dec_hidden=16",
        "--set=batch_size=16", "--set=warmup_steps=1", "--set=eval_every=0",
        "--set=embed_loss=infonce", "--set=mask_min=1", "--set=view_offset=0.05",
        "--set=view_shift=0.5", "--set=num_threads=1", "--set=time_limit_s=0",
    ]  # fmt: skip
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--data", str(path), "--steps", "4", "--out", str(run),
                              "--no-progress", *model_args])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [
        "evaluate", str(run / "checkpoint.pt"), "--data", str(path), "--report",
        str(tmp_path / "suite"), "--split-column", "split", "--label", "y", "--group",
        "sample", "--instrument", "inst",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "suite" / "eval.json").read_text())
    assert report["n"] == {"reference": 60, "validation": 30, "evaluation": 30}
    assert "identity" in report and "qc" in report
    res = runner.invoke(app, [
        "evaluate", str(run / "checkpoint.pt"), "--data", str(path), "--report",
        str(tmp_path / "bad"), "--split-column", "split", "--split-names", "a,b,c",
    ])  # fmt: skip
    assert res.exit_code != 0 and "no spectrum has split='a'" in res.output


def test_synthetic_instrument_pairs_are_harder_than_identical_copies():
    from wavemae.data.synthetic import synthetic_corpus
    from wavemae.evaluation.classical import centre_rows, unit_rows

    s = synthetic_corpus(40, n_instruments=2, seq_len=128, seed=0, strength=4.0)
    assert s.values.shape == (80, 128) and np.isfinite(s.values).all()
    inst = np.array(s.metadata_column("instrument"))
    a, b = s.values[inst == 0], s.values[inst == 1]
    assert not np.allclose(a, b)  # the two instruments see the same material differently
    sims = unit_rows(centre_rows(b)) @ unit_rows(centre_rows(a)).T
    top1 = np.mean(np.argmax(sims, axis=1) == np.arange(len(a)))
    assert 1 / 40 < top1 < 1.0  # Pearson finds some twins, not all
    again = synthetic_corpus(40, n_instruments=2, seq_len=128, seed=0, strength=4.0)
    assert np.array_equal(again.values, s.values)


def test_qc_calibration_travels_in_the_manifest_and_scores_through_onnx(tiny_artifact, tmp_path):
    import shutil

    from wavemae.artifact import load_artifact
    from wavemae.qc import ArtifactModel, ArtifactQC, attach_qc

    folder = tmp_path / "art"
    shutil.copytree(tiny_artifact, folder)
    art = load_artifact(folder)  # an artifact exported before QC existed still loads
    assert art.manifest.qc is None and "qc" not in art.manifest.to_dict()
    with pytest.raises(ValueError, match="carries no QC calibration"):
        ArtifactQC(art)
    raw = synthetic_spectra(60, art.wavelengths, seed=7).astype(np.float64)
    onnx = ArtifactModel(art)
    x = art.preprocess(raw)
    calibration = fit_qc(
        x[:30], x[30:45], onnx.embed, onnx.reconstruct, n_groups=4, pca_components=4
    )
    attach_qc(folder, calibration)
    scorer = ArtifactQC(load_artifact(folder))  # checksums still hold
    got = scorer(raw[45:], art.wavelengths)
    want = calibration.score(x[45:], onnx.embed, onnx.reconstruct)
    np.testing.assert_allclose(got["score"], want["score"], rtol=1e-4, atol=1e-4)
    assert got["percentile"].shape == (15,) and got["flag"].dtype == bool
    np.testing.assert_allclose(got["pca_q"], want["pca_q"], rtol=1e-4, atol=1e-4)


def test_pca_q_component_flags_a_band_shape_the_model_score_misses():
    # a weak "model": hidden groups filled with the training mean, a 2-D embedding. A small new
    # band (a shape no training spectrum has) hides in its errors; the Q residual sees it.
    raw = synthetic_spectra(200, GRID, seed=8).astype(np.float64)
    ref, cal, test = raw[:100], raw[100:150], raw[150:]
    basis = fit_pca(ref, max_components=2)

    def reconstruct(x, visible):
        return np.where(visible, x, basis.mean)

    def emb(x):
        return basis.scores(x, 2)

    t = np.linspace(0.0, 1.0, L)
    faulty = test + 0.05 * np.exp(-0.5 * ((t - 0.35) / 0.03) ** 2)
    model_only = fit_qc(ref, cal, emb, reconstruct, n_groups=8)
    combined = fit_qc(ref, cal, emb, reconstruct, n_groups=8, pca_components=6)
    assert model_only.components == ("recon_mean", "recon_max", "embedding")
    assert combined.use == (*model_only.components, "pca_q", "pca_t2")
    assert model_only.score(faulty, emb, reconstruct)["flag"].mean() < 0.2
    flagged = combined.score(faulty, emb, reconstruct)
    assert flagged["flag"].mean() > 0.9 and flagged["pca_q"].min() > flagged["embedding"].max()
    assert combined.score(test, emb, reconstruct)["flag"].mean() < 0.2

    # the manifest entry: plain JSON with an L x k basis, the same scores after a round trip
    entry = json.loads(json.dumps(combined.to_dict(), allow_nan=False))
    assert np.shape(entry["pca"]["loadings"]) == (6, L) and entry["use"][-1] == "pca_t2"
    again = QCCalibration.from_dict(entry)
    np.testing.assert_allclose(again.score(faulty, emb, reconstruct)["score"],
                               flagged["score"], rtol=1e-5, atol=1e-5)  # fmt: skip

    # a partial spectrum: PCA components left out, judged on its covered bands by the model
    covered = np.ones_like(faulty, dtype=bool)
    covered[0, :10] = False
    part = combined.score(faulty[:2], emb, reconstruct, covered[:2])
    assert np.isnan(part["pca_q"][0]) and not np.isnan(part["pca_q"][1])
    assert np.isfinite(part["score"]).all()

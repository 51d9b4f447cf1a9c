"""The exporter (wavemae.export): files agree with the manifest and with PyTorch eager."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from wavemae.artifact import FILE_NAMES, load_artifact, sha256_file  # noqa: E402
from wavemae.bench.spectra import synthetic_raw_spectra  # noqa: E402
from wavemae.export import (  # noqa: E402
    ExportVerificationError,
    export_checkpoint,
    export_model,
    verify_exported,
)
from wavemae.models import WaveMAE  # noqa: E402
from wavemae.preprocessing import Preprocessor  # noqa: E402

SEQ_LEN = 48
GRID = np.linspace(900.0, 1700.0, SEQ_LEN)


def _tiny_model(seed: int = 0) -> WaveMAE:
    torch.manual_seed(seed)
    return WaveMAE(
        SEQ_LEN,
        d_model=32,
        nhead=4,
        num_layers=2,
        dim_feedforward=64,
        latent_dim=8,
        dec_hidden=32,
        n_blocks=8,
        n_mask=5,
    ).eval()


@pytest.fixture(scope="module")
def raw() -> np.ndarray:
    return synthetic_raw_spectra(80, SEQ_LEN, seed=1).astype(np.float32)


@pytest.fixture(scope="module")
def preprocessor(raw: np.ndarray) -> Preprocessor:
    return Preprocessor(wavelengths=GRID, unit="nm", normalization="snv", standardize=True).fit(raw)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, raw, preprocessor):
    model = _tiny_model()
    folder = export_model(
        model,
        tmp_path_factory.mktemp("export") / "art",
        preprocessor=preprocessor,
        wavelengths=GRID,
        unit="nm",
        name="tiny",
        version="1",
        provenance={"command": "pytest"},
        verify_spectra=preprocessor.transform(raw),
    )
    return model, folder


def test_every_file_matches_the_manifest(exported) -> None:
    _, folder = exported
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {entry["path"] for entry in manifest["files"].values()}
    on_disk = {p.name for p in folder.iterdir()} - {"manifest.json"}
    assert (
        listed
        == on_disk
        == {
            FILE_NAMES[r]
            for r in (
                "encoder",
                "decoder",
                "encoder_masked",
                "encoder_torchscript",
                "decoder_torchscript",
            )
        }
    )
    for entry in manifest["files"].values():
        assert sha256_file(folder / entry["path"]) == entry["sha256"]
        assert (folder / entry["path"]).stat().st_size == entry["bytes"]
    assert manifest["seq_len"] == SEQ_LEN and manifest["latent_dim"] == 8
    assert manifest["wavelengths"] == pytest.approx(GRID.tolist())
    assert manifest["model_config"]["d_model"] == 32
    assert {"torch", "onnx", "onnxruntime", "numpy"} <= set(manifest["libraries"])
    assert manifest["provenance"]["command"] == "pytest"
    ver = manifest["verification"]
    assert ver["n_spectra"] == 80 and ver["onnx_checker"] == "passed"
    assert ver["encoder"]["max_abs"] <= 1e-4 and ver["encoder"]["min_cosine"] >= 0.9999


def test_graphs_agree_with_pytorch_at_any_batch_size(exported, raw, preprocessor) -> None:
    model, folder = exported
    art = load_artifact(folder)
    x = art.preprocess(raw)
    np.testing.assert_array_equal(x, preprocessor.transform(raw))
    sessions = {
        r: ort.InferenceSession(str(art.file(r)), providers=["CPUExecutionProvider"])
        for r in ("encoder", "encoder_masked", "decoder")
    }
    ts_encoder = torch.jit.load(str(art.file("encoder_torchscript")))
    ts_decoder = torch.jit.load(str(art.file("decoder_torchscript")))
    gen = torch.Generator().manual_seed(3)
    for b in (1, 7, 64):
        xb = x[:b]
        visible = model.make_visible(b, generator=gen)
        with torch.no_grad():
            z_ref = model.encode(torch.from_numpy(xb), torch.ones(b, SEQ_LEN, dtype=torch.bool))
            zm_ref = model.encode(torch.from_numpy(xb), visible)
            rec_ref = model.decoder(z_ref)
            z_ts = ts_encoder(torch.from_numpy(xb))
            rec_ts = ts_decoder(z_ref)
        z = sessions["encoder"].run(None, {"spectra": xb})[0]
        zm = sessions["encoder_masked"].run(None, {"spectra": xb, "visible": visible.numpy()})[0]
        rec = sessions["decoder"].run(None, {"embedding": z_ref.numpy()})[0]
        assert z.shape == (b, 8) and rec.shape == (b, SEQ_LEN)
        np.testing.assert_allclose(z, z_ref.numpy(), atol=1e-5)
        np.testing.assert_allclose(zm, zm_ref.numpy(), atol=1e-5)
        np.testing.assert_allclose(rec, rec_ref.numpy(), atol=1e-5)
        np.testing.assert_allclose(z_ts.numpy(), z_ref.numpy(), atol=1e-6)
        np.testing.assert_allclose(rec_ts.numpy(), rec_ref.numpy(), atol=1e-6)


def test_masked_encoder_ignores_hidden_values_even_nan(exported, raw, preprocessor) -> None:
    _, folder = exported
    art = load_artifact(folder)
    x = art.preprocess(raw[:5])
    visible = np.ones_like(x, dtype=bool)
    visible[:, 10:25] = False  # a dead band
    session = ort.InferenceSession(
        str(art.file("encoder_masked")), providers=["CPUExecutionProvider"]
    )
    z = session.run(None, {"spectra": x, "visible": visible})[0]
    broken = x.copy()
    broken[:, 10:20] = np.nan
    broken[:, 20:25] = 1e6
    z_broken = session.run(None, {"spectra": broken, "visible": visible})[0]
    np.testing.assert_allclose(z_broken, z, atol=1e-6)
    full = session.run(None, {"spectra": x, "visible": np.ones_like(visible)})[0]
    assert np.max(np.abs(full - z)) > 1e-3  # hiding a band does change the embedding


def test_masked_encoder_matches_pytorch_on_ragged_missing_bands(exported, raw) -> None:
    """Callers mark different bands missing per spectrum: unequal visible counts per row."""
    model, folder = exported
    art = load_artifact(folder)
    x = art.preprocess(raw[:6])
    visible = np.ones_like(x, dtype=bool)
    for row, (lo, hi) in enumerate([(0, 5), (10, 30), (40, 48), (3, 4), (20, 21), (0, 0)]):
        visible[row, lo:hi] = False
    session = ort.InferenceSession(
        str(art.file("encoder_masked")), providers=["CPUExecutionProvider"]
    )
    z = session.run(None, {"spectra": x, "visible": visible})[0]
    with torch.no_grad():
        z_ref = model.encode(torch.from_numpy(x), torch.from_numpy(visible)).numpy()
        z_rows = [
            model.encode(
                torch.from_numpy(x[i : i + 1]), torch.from_numpy(visible[i : i + 1])
            ).numpy()
            for i in range(len(x))
        ]
    np.testing.assert_allclose(z, z_ref, atol=1e-5)
    np.testing.assert_allclose(z, np.concatenate(z_rows), atol=1e-5)


def test_verifier_rejects_graphs_of_another_model(exported, raw, preprocessor) -> None:
    _, folder = exported
    other = _tiny_model(seed=1)
    with pytest.raises(ExportVerificationError, match=r"encoder: max abs diff \d"):
        verify_exported(other, folder, preprocessor.transform(raw))


class _DisagreeingMAE(WaveMAE):
    """A model whose eager encode() disagrees with the encoder the graphs are made from."""

    def encode(self, x, visible_mask):
        return torch.roll(super().encode(x, visible_mask), 1, dims=1)


def test_failed_verification_writes_nothing(tmp_path: Path, raw, preprocessor) -> None:
    torch.manual_seed(0)
    model = _DisagreeingMAE(
        SEQ_LEN,
        d_model=16,
        nhead=2,
        num_layers=1,
        dim_feedforward=32,
        latent_dim=8,
        dec_hidden=16,
        n_blocks=8,
        n_mask=5,
    ).eval()
    out = tmp_path / "art"
    with pytest.raises(ExportVerificationError, match="min cosine"):
        export_model(
            model,
            out,
            preprocessor=preprocessor,
            wavelengths=GRID,
            unit="nm",
            name="bad",
            version="1",
            verify_spectra=preprocessor.transform(raw),
        )
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left behind


def test_bad_arguments_are_refused(tmp_path: Path, raw, preprocessor, exported) -> None:
    model, folder = exported
    x = preprocessor.transform(raw)
    common = dict(preprocessor=preprocessor, unit="nm", name="t", version="1")
    with pytest.raises(ValueError, match="at least 64"):
        export_model(model, tmp_path / "a", wavelengths=GRID, verify_spectra=x[:10], **common)
    with pytest.raises(ValueError, match="wavelengths has 47"):
        export_model(model, tmp_path / "a", wavelengths=GRID[:-1], verify_spectra=x, **common)
    with pytest.raises(ValueError, match="NaN"):
        export_model(model, tmp_path / "a", wavelengths=GRID, verify_spectra=x * np.nan, **common)
    with pytest.raises(FileExistsError, match="not empty"):
        export_model(model, folder, wavelengths=GRID, verify_spectra=x, **common)


def test_export_checkpoint_uses_ema_weights_and_records_provenance(
    tmp_path: Path, raw, preprocessor
) -> None:
    from wavemae.checkpoint import save_checkpoint
    from wavemae.data import Spectra

    model = _tiny_model(seed=4)
    ema = {
        k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
        for k, v in model.state_dict().items()
    }
    ckpt = save_checkpoint(
        tmp_path / "ckpt.pt",
        model=model,
        ema_state=ema,
        step=123,
        preprocessing=preprocessor.to_dict(),
        wavelengths=GRID,
        unit="nm",
        provenance={
            "command": "wavemae train --preset tiny",
            "data_sha256": "ab" * 32,
            "metrics": {"masked_mse": 0.5},
        },
    )
    values = synthetic_raw_spectra(70, SEQ_LEN, seed=8).astype(np.float32)
    held_out = Spectra(values=values, wavelengths=GRID, unit="nm")
    folder = export_checkpoint(ckpt, tmp_path / "art", data=held_out, command="wavemae export")
    art = load_artifact(folder)
    assert art.version == f"123-{sha256_file(ckpt)[:8]}"
    prov = art.manifest.provenance
    assert prov["command"] == "wavemae train --preset tiny"
    assert prov["metrics"] == {"masked_mse": 0.5}
    assert prov["checkpoint"]["sha256"] == sha256_file(ckpt) and prov["checkpoint"]["step"] == 123
    assert prov["export_command"] == "wavemae export"
    # The graphs hold the EMA weights, not the raw ones.
    x = art.preprocess(held_out.values)
    z = ort.InferenceSession(str(art.file("encoder")), providers=["CPUExecutionProvider"]).run(
        None, {"spectra": x}
    )[0]
    ema_model = _tiny_model()
    ema_model.load_state_dict(ema)
    ones = torch.ones(len(x), SEQ_LEN, dtype=torch.bool)
    with torch.no_grad():
        np.testing.assert_allclose(
            z, ema_model.encode(torch.from_numpy(x), ones).numpy(), atol=1e-5
        )
        assert np.max(np.abs(z - model.encode(torch.from_numpy(x), ones).numpy())) > 1e-3


def test_int8_is_dropped_when_retrieval_changes(tmp_path: Path) -> None:
    """Random weights: cosine stays ~0.9999 but neighbours change, so int8 must not ship."""
    from tiny_artifact import export_tiny_model

    folder = export_tiny_model(tmp_path / "q", seq_len=32, quantize="int8")
    art = load_artifact(folder)
    q = art.manifest.quantization
    assert q["kept"] is False and not art.has("encoder_int8")
    assert not (folder / "encoder.int8.onnx").exists()
    assert q["min_cosine"] > 0.98 and q["top1_agreement"] < 0.95  # close, yet other neighbours
    assert "top-1 agreement" in q["reason"]
    assert set(q["spectra_per_s"]["fp32"]) == {"1", "8", "32"}


def test_cli_exports_a_checkpoint_verified_on_held_out_tablet_spectra(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from wavemae.checkpoint import save_checkpoint
    from wavemae.cli import app
    from wavemae.data import load_corpus

    train = load_corpus("tablet", split="calibration")
    grid = np.linspace(620.0, 1780.0, SEQ_LEN)
    pre = Preprocessor(wavelengths=grid, unit="nm", standardize=True).fit(
        train.values, train.wavelengths
    )
    ckpt = save_checkpoint(
        tmp_path / "ckpt.pt",
        model=_tiny_model(),
        step=5,
        ema_state=_tiny_model().state_dict(),
        preprocessing=pre.to_dict(),
        wavelengths=grid,
        unit="nm",
        provenance={"name": "tablet-tiny"},
    )
    result = CliRunner().invoke(
        app, ["export", str(ckpt), "--out", str(tmp_path / "art"), "--version", "v9"]
    )
    assert result.exit_code == 0, result.output
    assert "exported tablet-tiny:v9" in result.output
    art = load_artifact(tmp_path / "art")
    assert art.model_id == "tablet-tiny:v9"
    data = art.manifest.provenance["verification_data"]
    assert data["source"] == "tablet:test" and data["n_spectra"] == 424
    assert data["n_parity"] == art.manifest.verification["n_spectra"] == 128
    assert data["sha256"] == load_corpus("tablet", split="test").checksum()

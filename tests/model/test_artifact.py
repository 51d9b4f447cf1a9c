"""The artifact contract (wavemae.artifact): loading, validation, checksums, no torch needed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from wavemae.artifact import (
    ROLES,
    SHIPPED_MODELS,
    ArtifactError,
    ChecksumError,
    ManifestError,
    MissingFileError,
    TensorSpec,
    default_model_dir,
    load_artifact,
    resolve_model_dir,
    sha256_file,
    shipped_model_dir,
)
from wavemae.bench.spectra import synthetic_raw_spectra

pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_artifact import export_tiny_model

    return export_tiny_model(tmp_path_factory.mktemp("artifact") / "tiny", seq_len=64)


@pytest.fixture()
def copy_dir(tiny_dir: Path, tmp_path: Path) -> Path:
    """A private copy that a test may tamper with."""
    return Path(shutil.copytree(tiny_dir, tmp_path / "copy"))


def _edit_manifest(folder: Path, edit) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_loads_with_the_properties_the_service_reads(tiny_dir: Path) -> None:
    art = load_artifact(tiny_dir)
    assert art.model_id == "wavemae-tiny:test-0"
    assert (art.seq_len, art.latent_dim) == (64, 16)
    assert art.wavelengths.dtype == np.float64 and art.wavelengths.shape == (64,)
    assert art.wavelength_unit == "nm"
    assert art.file("encoder") == tiny_dir / "encoder.onnx"
    assert art.has("encoder_masked") and art.has("encoder_torchscript")
    assert not art.has("encoder_int8")
    assert art.inputs("encoder_masked") == [
        TensorSpec("spectra", ("batch", 64), "float32"),
        TensorSpec("visible", ("batch", 64), "bool"),
    ]
    assert art.outputs("decoder") == [TensorSpec("reconstruction", ("batch", 64), "float32")]
    with pytest.raises(KeyError, match="encoder_int8"):
        art.file("encoder_int8")
    with pytest.raises(KeyError, match="unknown artifact role 'encoderr'"):
        art.has("encoderr")


def test_manifest_tensor_specs_match_the_onnx_sessions(tiny_dir: Path) -> None:
    art = load_artifact(tiny_dir)
    for role in ("encoder", "encoder_masked", "decoder"):
        session = ort.InferenceSession(str(art.file(role)), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == [s.name for s in art.inputs(role)]
        assert [o.name for o in session.get_outputs()] == [s.name for s in art.outputs(role)]
        for node, spec in zip(session.get_inputs(), art.inputs(role), strict=True):
            assert node.shape[1:] == list(spec.shape[1:])


def test_manifest_round_trips_through_json(tiny_dir: Path) -> None:
    from wavemae.artifact import Manifest

    data = json.loads((tiny_dir / "manifest.json").read_text())
    manifest = Manifest.from_dict(data)
    assert Manifest.from_dict(json.loads(manifest.to_json())) == manifest
    assert set(manifest.files) <= set(ROLES)


def test_preprocess_resamples_and_rejects_bad_spectra(tiny_dir: Path) -> None:
    art = load_artifact(tiny_dir)
    on_grid = synthetic_raw_spectra(3, art.seq_len, seed=5)
    x = art.preprocess(on_grid)
    assert x.shape == (3, 64) and x.dtype == np.float32 and x.flags.c_contiguous
    # A finer grid covering the model's range resamples onto it (same spectra, close values).
    fine = np.linspace(art.wavelengths[0] - 50, art.wavelengths[-1] + 50, 400)
    x_fine = art.preprocess(synthetic_raw_spectra(3, fine.size, seed=5), fine)
    assert x_fine.shape == (3, 64)
    with pytest.raises(ValueError, match="64"):
        art.preprocess(on_grid[:, :50])
    bad = on_grid.copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        art.preprocess(bad)
    short = np.linspace(art.wavelengths[0] + 100, art.wavelengths[-1], 64)
    with pytest.raises(ValueError, match="does not cover"):
        art.preprocess(on_grid, short)
    with pytest.raises(ValueError, match="empty"):
        art.preprocess(np.zeros((0, 64)))


def test_tampered_file_fails_with_checksum_error(copy_dir: Path) -> None:
    target = copy_dir / "encoder.onnx"
    expected = sha256_file(target)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as info:
        load_artifact(copy_dir)
    message = str(info.value)
    assert "encoder.onnx" in message and expected in message and sha256_file(target) in message
    # verify=False skips the digests (presence is still checked).
    assert load_artifact(copy_dir, verify=False).model_id == "wavemae-tiny:test-0"


def test_missing_file_is_named(copy_dir: Path) -> None:
    (copy_dir / "decoder.pt").unlink()
    with pytest.raises(MissingFileError, match=r"decoder\.pt"):
        load_artifact(copy_dir, verify=False)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(schema_version=2), "schema_version=2"),
        (lambda d: d.pop("seq_len"), "'seq_len'"),
        (lambda d: d.update(latent_dim="16"), "'latent_dim' must be int"),
        (lambda d: d.update(wavelengths=d["wavelengths"][:-1]), "wavelengths has 63"),
        (lambda d: d.update(wavelength_unit="um"), "wavelength_unit='um'"),
        (lambda d: d["files"]["encoder"].update(path="../encoder.onnx"), "plain file name"),
        (lambda d: d["files"]["decoder"].update(sha256="abc"), "sha256='abc'"),
        (lambda d: d["files"].pop("encoder_masked"), "'encoder_masked'"),
        (
            lambda d: d["tensors"]["encoder"]["outputs"][0].update(shape=["batch", 8]),
            "tensors.encoder",
        ),
        (lambda d: d["preprocessing"].update(normalization="magic"), "preprocessing"),
        (
            lambda d: d["preprocessing"].update(
                wavelengths=[float(w) + 1 for w in d["wavelengths"]]
            ),
            "grid",
        ),
    ],
)
def test_invalid_manifest_names_the_key(copy_dir: Path, edit, match: str) -> None:
    _edit_manifest(copy_dir, edit)
    with pytest.raises(ManifestError, match=match):
        load_artifact(copy_dir)


def test_not_an_artifact_folder(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"manifest\.json"):
        load_artifact(tmp_path)
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "nowhere")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_artifact(tmp_path)


def test_artifact_loads_and_runs_with_torch_blocked(tiny_dir: Path) -> None:
    """The service's path: manifest, checksums, preprocessing and ONNX Runtime, no torch."""
    art = load_artifact(tiny_dir)
    raw = synthetic_raw_spectra(4, art.seq_len, seed=9)
    session = ort.InferenceSession(str(art.file("encoder")), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"spectra": art.preprocess(raw)})[0]
    np.save(tiny_dir.parent / "raw.npy", raw)
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np, onnxruntime as ort
        from wavemae.artifact import load_artifact
        art = load_artifact({str(tiny_dir)!r}, verify=True)
        raw = np.load({str(tiny_dir.parent / "raw.npy")!r})
        s = ort.InferenceSession(str(art.file("encoder")), providers=["CPUExecutionProvider"])
        z = s.run(None, {{"spectra": art.preprocess(raw)}})[0]
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        print(json.dumps({{"z": z.tolist(), "torch": [m for m in loaded
                                                     if sys.modules[m] is not None]}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["torch"] == []
    np.testing.assert_allclose(np.array(result["z"]), expected, atol=1e-6)


@pytest.mark.parametrize("name", list(SHIPPED_MODELS))
def test_shipped_models_load_and_verify(name: str) -> None:
    folder = shipped_model_dir(name)
    assert (folder / "manifest.json").is_file(), f"no shipped model at {folder}"
    assert (folder / "README.md").is_file(), f"the shipped {name} model has no README"
    art = load_artifact(folder, verify=True)
    listed = {entry.path for entry in art.manifest.files.values()} | {"manifest.json", "README.md"}
    assert {p.name for p in folder.iterdir()} == listed  # nothing unlisted ships
    assert art.has("encoder") and art.has("decoder") and art.has("encoder_masked")
    assert art.manifest.verification["n_spectra"] >= 64
    session = ort.InferenceSession(str(art.file("encoder")), providers=["CPUExecutionProvider"])
    x = np.zeros((2, art.seq_len), dtype=np.float32)
    z = session.run(None, {"spectra": x})[0]
    assert z.shape == (2, art.latent_dim)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)


def test_the_default_is_the_general_model_and_tablet_the_qc_calibrated_domain_model() -> None:
    general = load_artifact(default_model_dir())
    assert general.name == "wavemae-general" and general.preprocessor.axis == "relative"
    assert general.preprocessor.normalization == "snv" and general.manifest.qc is None
    tablet = load_artifact(shipped_model_dir("tablet"))
    assert tablet.name == "wavemae-tablet" and tablet.preprocessor.axis == "fixed"
    assert tablet.seq_len == 256 and tablet.wavelength_unit == "nm"
    assert tablet.manifest.qc["use"] == ["pca_q", "pca_t2"]
    assert np.asarray(tablet.manifest.qc["pca"]["loadings"]).shape == (16, 256)


def test_a_model_is_named_or_a_folder_and_a_wrong_name_lists_the_shipped_ones(
    tiny_dir: Path,
) -> None:
    assert resolve_model_dir(None) == default_model_dir()
    assert resolve_model_dir("tablet") == shipped_model_dir("tablet")
    assert resolve_model_dir(str(tiny_dir)) == tiny_dir
    for wrong in ("tabelt", "no/such/folder"):
        with pytest.raises(ArtifactError, match="shipped model \\(default, tablet\\)"):
            resolve_model_dir(wrong)
    with pytest.raises(ArtifactError, match="shipped models: default, tablet"):
        shipped_model_dir("general")

"""The two models shipped in the package, served through real uvicorn as a user starts them.

``wavemae serve`` with no model serves the general model: any axis, any unit, any intensity
scale. ``--model tablet`` (or ``WAVEMAE_MODEL_DIR=tablet``) serves the tablet NIR model on its
fixed 600-1792 nm grid, with its QC calibration. An unknown name stops start-up, naming the
shipped ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from wavemae.artifact import SHIPPED_MODELS
from wavemae.bench.servers import ServerProcess, free_port, service_process

RAMAN = np.linspace(200.0, 1800.0, 700)  # Raman shift, cm-1: no NIR grid covers it


def _raman(centres: list[tuple[float, float, float]]) -> np.ndarray:
    """Counts on RAMAN: a sloped fluorescence-like baseline plus Gaussian bands."""
    bands = sum(h * np.exp(-0.5 * ((RAMAN - c) / w) ** 2) for c, w, h in centres)
    return 50.0 + 0.01 * RAMAN + bands


PAPER = _raman([(520, 8, 300), (1001, 5, 900), (1450, 12, 200), (1600, 6, 400)])
OTHER = _raman([(300, 10, 500), (800, 6, 700), (1100, 15, 300)])


def _cosine_distance(a: list[float], b: list[float]) -> float:
    u, v = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(1.0 - u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


@pytest.fixture(scope="module")
def default_http(tmp_path_factory) -> Iterator[httpx.Client]:
    """``python -m wavemae_service`` with no model setting: the shipped default."""
    folder = tmp_path_factory.mktemp("default-model")
    env = {"WAVEMAE_LIBRARY_URL": ":memory:", "WAVEMAE_LOG_LEVEL": "warning"}
    with (
        service_process(env, log_path=folder / "server.log") as server,
        httpx.Client(base_url=server.url, timeout=60.0) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def tablet_http(tmp_path_factory) -> Iterator[httpx.Client]:
    """``wavemae serve --model tablet``, the command line a user types."""
    folder = tmp_path_factory.mktemp("tablet-model")
    port = free_port()
    argv = [sys.executable, "-m", "wavemae.cli", "serve", "--model", "tablet"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--library", ":memory:"]
    server = ServerProcess(
        argv,
        port,
        env={"WAVEMAE_LOG_LEVEL": "warning"},
        log_path=folder / "server.log",
        inherit_wavemae_env=False,
    )
    with server, httpx.Client(base_url=server.url, timeout=60.0) as client:
        yield client


def _post(http: httpx.Client, path: str, body: dict) -> dict:
    response = http.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_default_server_is_the_general_model_without_qc_calibration(default_http):
    info = default_http.get("/model").json()
    assert info["name"] == "wavemae-general" and info["model"].startswith("wavemae-general:")
    assert info["axis"] == "relative"
    assert info["manifest"]["preprocessing"]["normalization"] == "snv"
    assert info["qc"]["calibrated"] is False and info["qc"]["flag_percentile"] is None
    assert "no QC calibration" in info["qc"]["note"]


def test_default_embeds_a_raman_spectrum_the_same_at_any_intensity_scale(default_http):
    spectra = [PAPER, PAPER * 37.5, PAPER * 0.01, OTHER]
    answer = _post(
        default_http,
        "/embed",
        {"spectra": [s.tolist() for s in spectra], "wavelengths": RAMAN.tolist(), "unit": "cm-1"},
    )
    z = answer["embeddings"]
    assert answer["coverage"] == [1.0] * 4 and answer["warnings"] == [[]] * 4
    assert _cosine_distance(z[0], z[1]) < 1e-3
    assert _cosine_distance(z[0], z[2]) < 1e-3
    # ... while another material is elsewhere: the embedding has not collapsed.
    assert _cosine_distance(z[0], z[3]) > 100 * _cosine_distance(z[0], z[1]) + 0.01


def test_default_finds_a_rescaled_spectrum_in_the_library(default_http):
    entries = [
        {"id": name, "spectrum": s.tolist(), "wavelengths": RAMAN.tolist(), "unit": "cm-1"}
        for name, s in (("paper", PAPER), ("other", OTHER))
    ]
    _post(default_http, "/library", {"entries": entries})
    found = _post(
        default_http,
        "/similar",
        {"spectra": [(PAPER * 5.0).tolist()], "wavelengths": RAMAN.tolist(), "k": 2},
    )
    ranked = found["results"][0]
    assert [hit["id"] for hit in ranked] == ["paper", "other"]
    assert ranked[0]["score"] > 0.999 > ranked[1]["score"]


def test_default_reconstruct_answers_on_the_callers_axis_with_no_qc_verdict(default_http):
    answer = _post(
        default_http,
        "/reconstruct",
        {"spectra": [PAPER.tolist()], "wavelengths": RAMAN.tolist(), "unit": "cm-1"},
    )
    recon = np.asarray(answer["reconstructions"][0], dtype=np.float64)
    assert recon.shape == RAMAN.shape and np.all(np.isfinite(recon))
    assert np.isfinite(answer["rmse"][0]) and answer["rmse"][0] > 0
    # Uncalibrated: no "out of distribution" verdict either way.
    assert answer["warnings"] == [[]]


def test_tablet_name_serves_the_tablet_grid_with_its_qc(tablet_http):
    info = tablet_http.get("/model").json()
    assert info["name"] == "wavemae-tablet" and info["axis"] == "fixed"
    assert (info["seq_len"], info["wavelength_unit"]) == (256, "nm")
    assert info["wavelength_range"] == pytest.approx([600.0, 1792.0])
    assert info["qc"]["calibrated"] is True
    assert info["qc"]["components"] == ["pca_q", "pca_t2"]
    assert info["qc"]["pca_components"] == 16 and info["qc"]["flag_percentile"] == 99.0
    assert "qc" not in info["manifest"]  # the 16 x 256 basis stays out of /model

    grid = np.linspace(600.0, 1792.0, 256)
    tablet_like = 3.0 + 0.5 * np.exp(-0.5 * ((grid - 1200.0) / 80.0) ** 2)
    answer = _post(tablet_http, "/embed", {"spectra": [tablet_like.tolist()]})
    assert len(answer["embeddings"][0]) == info["latent_dim"]

    refused = tablet_http.post(
        "/embed", json={"spectra": [PAPER.tolist()], "wavelengths": RAMAN.tolist(), "unit": "cm-1"}
    )
    assert refused.status_code == 422
    assert "600-1792 nm" in refused.json()["error"]["message"]


def test_tablet_qc_flags_a_spiked_tablet_and_says_why_a_partial_one_is_not_judged(tablet_http):
    from wavemae.data import load_corpus

    tablet = load_corpus("tablet", split="test")
    clean = tablet.values[0].astype(np.float64)
    spiked = clean.copy()
    spiked[300] += 5.0 * clean.std()  # one saturated-looking band
    wavelengths = tablet.wavelengths.tolist()
    answer = _post(
        tablet_http,
        "/reconstruct",
        {"spectra": [clean.tolist(), spiked.tolist()], "wavelengths": wavelengths},
    )
    assert answer["warnings"][0] == []
    assert any("out of distribution for the model" in w for w in answer["warnings"][1])

    inside = (tablet.wavelengths >= 900) & (tablet.wavelengths <= 1700)
    partial = _post(
        tablet_http,
        "/embed",
        {"spectra": [clean[inside].tolist()], "wavelengths": tablet.wavelengths[inside].tolist()},
    )
    assert partial["coverage"][0] < 1.0
    assert any("calibrated on whole spectra" in w for w in partial["warnings"][0])


def test_an_unknown_model_name_stops_start_up_naming_the_shipped_ones():
    base = {k: v for k, v in os.environ.items() if not k.startswith("WAVEMAE_")}
    env = {**base, "WAVEMAE_MODEL_DIR": "tabelt", "WAVEMAE_PORT": str(free_port())}
    env.update({"WAVEMAE_LIBRARY_URL": ":memory:", "WAVEMAE_LOG_LEVEL": "warning"})
    result = subprocess.run(
        [sys.executable, "-m", "wavemae_service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode != 0
    assert "'tabelt'" in result.stderr and ", ".join(SHIPPED_MODELS) in result.stderr
    assert "Traceback" not in result.stderr, result.stderr

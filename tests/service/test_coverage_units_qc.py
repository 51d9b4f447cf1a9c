"""Partial ranges, units and QC alike on every endpoint, through real uvicorn (issue 12):
the QC warning judges a partial spectrum on its covered bands, ranges are read in the caller's
unit, errors name the caller's numbers, and every endpoint reports coverage and warnings."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from service_helpers import spectra_like

GRID = np.linspace(1090.0, 1710.0, 90)  # covers the tiny model's 1100-1700 nm


@pytest.fixture(scope="module")
def qc_url(start_server, tiny_artifact, tmp_path_factory) -> str:
    """A server of the tiny artifact with a QC calibration fitted on clean spectra."""
    import shutil

    from wavemae.artifact import load_artifact
    from wavemae.qc import ArtifactModel, attach_qc, fit_qc

    folder = tmp_path_factory.mktemp("qc") / "with-qc"
    shutil.copytree(tiny_artifact, folder)
    artifact = load_artifact(folder)
    onnx = ArtifactModel(artifact)
    x = artifact.preprocess(spectra_like(60, seed=8))
    qc = fit_qc(x[:30], x[30:], onnx.embed, onnx.reconstruct, n_groups=4, pca_components=4)
    attach_qc(folder, qc)  # with the PCA Q residual / T² components
    return start_server(model_dir=folder).url


def _corrupted(seed: int) -> np.ndarray:
    return np.where(np.arange(64) % 2, 5.0, -5.0)[None, :] + spectra_like(1, seed=seed)


def test_qc_flags_out_of_distribution_spectra_as_warnings(qc_url):
    body = {"spectra": np.vstack([spectra_like(1, seed=10), _corrupted(9)]).tolist()}
    answer = httpx.post(qc_url + "/embed", json=body, timeout=30).json()
    assert answer["warnings"][0] == []
    assert "out of distribution" in answer["warnings"][1][0]
    again = httpx.post(qc_url + "/reconstruct", json=body, timeout=30).json()
    assert "out of distribution" in again["warnings"][1][0]


def test_qc_judges_a_partial_spectrum_on_its_covered_bands(qc_url):
    # Clean spectra cut to 70 % of the model's range are in distribution on the bands they
    # cover; the edge values that stand in for the rest must not make them look odd.
    cut = 45  # of the tiny model's 64 grid points: 70 %
    grid = np.linspace(1100.0, 1700.0, 64)
    clean = spectra_like(12, seed=20)
    values = np.vstack([clean, _corrupted(21)])[:, :cut]
    body = {"spectra": values.tolist(), "wavelengths": grid[:cut].tolist()}
    for route in ("/embed", "/reconstruct"):
        answer = httpx.post(qc_url + route, json=body, timeout=30).json()
        assert answer["coverage"][0] == pytest.approx(cut / 64)
        flagged = [
            i
            for i, w in enumerate(answer["warnings"])
            if any("out of distribution for" in t for t in w)
        ]
        assert flagged == [len(clean)], (route, answer["warnings"])


def test_missing_ranges_and_exclude_are_read_in_the_callers_unit(http):
    values = spectra_like(1, seed=13, length=GRID.size)
    in_nm = {"spectra": values.tolist(), "wavelengths": GRID.tolist(), "missing": [[[1300, 1400]]]}
    expected = http.post("/embed", json=in_nm).json()["embeddings"]
    full = http.post("/embed", json={**in_nm, "missing": None}).json()["embeddings"]
    in_cm = {
        "spectra": values[:, ::-1].tolist(),
        "wavelengths": (1e7 / GRID[::-1]).tolist(),
        "unit": "cm-1",
        "missing": [[[1e7 / 1400, 1e7 / 1300]]],
    }
    in_um = {**in_nm, "wavelengths": (GRID / 1000).tolist(), "unit": "um"}
    in_um["missing"] = [[[1.3, 1.4]]]
    for body in (in_cm, in_um):
        for route in ("/embed", "/reconstruct"):
            answer = http.post(route, json=body)
            assert answer.status_code == 200, answer.text
        got = http.post("/embed", json=body).json()["embeddings"]
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert not np.allclose(got, full, atol=1e-4)

    search = {"k": 1, "space": "spectrum", "filter": {"id": "unit-probe"}}
    http.put(
        "/library/unit-probe",
        json={
            "spectrum": values[0].tolist(),
            "wavelengths": GRID.tolist(),
            "metadata": {"id": "unit-probe"},
        },
    ).raise_for_status()
    noisy = values + 0.5 * np.exp(-(((GRID - 1350) / 10) ** 2))
    by_nm = http.post(
        "/similar",
        json={
            **search,
            "spectra": noisy.tolist(),
            "wavelengths": GRID.tolist(),
            "exclude": [[1300, 1400]],
        },
    )
    by_cm = http.post(
        "/similar",
        json={
            **search,
            "spectra": noisy[:, ::-1].tolist(),
            "unit": "cm-1",
            "wavelengths": (1e7 / GRID[::-1]).tolist(),
            "exclude": [[1e7 / 1400, 1e7 / 1300]],
        },
    )
    assert by_nm.status_code == 200 and by_cm.status_code == 200, by_cm.text
    score = by_nm.json()["results"][0][0]["score"]
    unexcluded = http.post(
        "/similar", json={**search, "spectra": noisy.tolist(), "wavelengths": GRID.tolist()}
    )
    assert score > unexcluded.json()["results"][0][0]["score"] + 1  # the bump is left out
    assert by_cm.json()["results"][0][0]["score"] == pytest.approx(score, abs=1e-3)


def test_coverage_refusal_names_the_callers_range_in_the_callers_unit(http):
    short = GRID[GRID < 1300]  # 1090-1296 nm: a third of the model's 1100-1700 nm
    values = spectra_like(1, seed=14, length=short.size)
    body = {
        "spectra": values[:, ::-1].tolist(),
        "wavelengths": (1e7 / short[::-1]).tolist(),
        "unit": "cm-1",
    }
    for route in ("/embed", "/reconstruct", "/similar"):
        answer = http.post(route, json=body)
        assert answer.status_code == 422, answer.text
        message = answer.json()["error"]["message"]
        low, high = 1e7 / short.max(), 1e7 / short.min()
        assert f"{low:g}-{high:g} cm-1" in message, message
        assert "1100-1700 nm" in message and "cm-1" in message.split("1100-1700 nm")[1], message


def test_every_endpoint_reports_coverage_and_warnings_alike(http):
    part = GRID[GRID <= 1500]  # 1090-1500 nm: 2/3 of the model's 1100-1700 nm
    values = spectra_like(2, seed=15, length=GRID.size)
    body = {"spectra": values[:, : part.size].tolist(), "wavelengths": part.tolist()}
    embedded = http.post("/embed", json=body).json()
    coverage, warnings = embedded["coverage"], embedded["warnings"]
    assert 0.6 < coverage[0] < 0.7 and any("coverage" in w for w in warnings[0])
    assert http.post("/reconstruct", json=body).json()["coverage"] == coverage

    stored = http.post(
        "/library",
        json={
            "entries": [
                {
                    "id": f"part-{i}",
                    "spectrum": row,
                    "wavelengths": part.tolist(),
                    "metadata": {"group": "coverage"},
                }
                for i, row in enumerate(body["spectra"])
            ]
        },
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["coverage"] == coverage and stored.json()["warnings"] == warnings
    put = http.put(
        "/library/part-0",
        json={
            "spectrum": body["spectra"][0],
            "wavelengths": part.tolist(),
            "metadata": {"group": "coverage"},
        },
    )
    assert put.json()["coverage"] == coverage[:1]

    only = {"filter": {"group": "coverage"}, "k": 1}
    found = http.post("/similar", json={**body, **only}).json()
    assert found["coverage"] == coverage and found["warnings"] == warnings
    assert [r[0]["id"] for r in found["results"]] == ["part-0", "part-1"]
    by_embedding = http.post("/similar", json={"embeddings": embedded["embeddings"], **only}).json()
    assert by_embedding.get("coverage") is None

    # the spectrum search compares the covered bands only: a full-range entry equal to the
    # query there is a perfect match, whatever it holds beyond the query's range
    full = values[0] + np.where(GRID > 1500, 0.8 * (GRID - 1500) / 200, 0.0)
    http.put(
        "/library/full-0",
        json={
            "spectrum": full.tolist(),
            "wavelengths": GRID.tolist(),
            "metadata": {"group": "full"},
        },
    ).raise_for_status()
    spectral = http.post(
        "/similar",
        json={
            "spectra": body["spectra"][:1],
            "wavelengths": part.tolist(),
            "k": 1,
            "space": "spectrum",
            "filter": {"group": "full"},
        },
    ).json()
    assert spectral["coverage"] == coverage[:1]
    assert spectral["results"][0][0]["score"] > 99.9


def test_exclude_in_another_unit_is_accepted_for_spectra_on_the_model_grid(http):
    # Spectra without wavelengths are on the model's grid; `unit` then names the unit of the
    # exclude ranges, as it does for `missing` ranges.
    grid = np.linspace(1100.0, 1700.0, 64)  # the tiny model's grid
    values = spectra_like(1, seed=14)
    http.put(
        "/library/grid-probe",
        json={"spectrum": values[0].tolist(), "metadata": {"id": "grid-probe"}},
    ).raise_for_status()
    noisy = values + 0.5 * np.exp(-(((grid - 1350) / 10) ** 2))
    search = {"k": 1, "space": "spectrum", "filter": {"id": "grid-probe"}}
    search["spectra"] = noisy.tolist()
    by_nm = http.post("/similar", json={**search, "exclude": [[1300, 1400]]})
    by_cm = http.post(
        "/similar", json={**search, "unit": "cm-1", "exclude": [[1e7 / 1400, 1e7 / 1300]]}
    )
    assert by_nm.status_code == 200, by_nm.text
    assert by_cm.status_code == 200, by_cm.text
    score = by_nm.json()["results"][0][0]["score"]
    unexcluded = http.post("/similar", json=search).json()["results"][0][0]["score"]
    assert score > unexcluded + 1  # the bump is left out
    assert by_cm.json()["results"][0][0]["score"] == pytest.approx(score, abs=1e-3)
    # without any range to read, a unit on spectra without wavelengths is still refused
    refused = http.post("/similar", json={**search, "unit": "cm-1"})
    assert refused.status_code == 422 and "no wavelengths" in refused.text


def test_coarse_grid_warning_gives_the_steps_in_the_callers_unit(http):
    coarse = np.linspace(1090.0, 1710.0, 10)  # ~69 nm steps against the tiny model's ~9.5 nm
    values = spectra_like(1, seed=15, length=coarse.size)
    model_nm = np.diff(np.linspace(1100.0, 1700.0, 64)).mean()
    by_nm = {"spectra": values.tolist(), "wavelengths": coarse.tolist()}
    wavenumbers = 1e7 / coarse[::-1]
    by_cm = {"spectra": values[:, ::-1].tolist(), "wavelengths": wavenumbers.tolist()}
    by_cm["unit"] = "cm-1"
    model_cm = np.median(np.abs(np.diff(1e7 / np.linspace(1100.0, 1700.0, 64))))
    for body, step, model_step, unit in (
        (by_nm, np.diff(coarse).mean(), model_nm, "nm"),
        (by_cm, np.median(np.diff(wavenumbers)), model_cm, "cm-1"),
    ):
        answer = http.post("/embed", json=body)
        assert answer.status_code == 200, answer.text
        (warning,) = [w for w in answer.json()["warnings"][0] if "coarse grid" in w]
        assert f"{step:.4g} {unit} steps" in warning
        assert f"the model's {model_step:.4g} {unit}" in warning

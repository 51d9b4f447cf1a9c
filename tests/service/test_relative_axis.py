"""An axis-relative (general) model served through real uvicorn: any contiguous axis in any
unit is resampled onto the model's points over the caller's own range.

The artifact is a tiny random-weight export whose manifest says ``axis: relative`` and SNV, so
what is asserted is what the axis handling guarantees (coverage, lengths, invariances), not
what the embeddings mean.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from wavemae.bench.servers import service_process

SEQ_LEN = 64


def _cosine(a: list[float], b: list[float]) -> float:
    u, v = np.asarray(a), np.asarray(b)
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


def _spectrum(axis: np.ndarray) -> np.ndarray:
    """A smooth spectrum with three bands, a baseline, as a function of the axis position."""
    t = (axis - axis.min()) / (axis.max() - axis.min())
    peaks = sum(
        h * np.exp(-(((t - c) / w) ** 2))
        for c, w, h in [(0.2, 0.04, 1.0), (0.55, 0.08, 0.6), (0.8, 0.03, 0.8)]
    )
    return 0.3 + 0.2 * t + peaks


@pytest.fixture(scope="module")
def http(tmp_path_factory, tiny_relative_artifact) -> Iterator[httpx.Client]:
    folder = tmp_path_factory.mktemp("relative")
    env = {
        "WAVEMAE_MODEL_DIR": str(tiny_relative_artifact),
        "WAVEMAE_LIBRARY_URL": str(folder / "library.sqlite3"),
        "WAVEMAE_LOG_LEVEL": "warning",
    }
    with (
        service_process(env, log_path=folder / "server.log") as server,
        httpx.Client(base_url=server.url, timeout=30.0) as client,
    ):
        yield client


def _embed(http: httpx.Client, body: dict) -> dict:
    response = http.post("/embed", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_model_says_the_axis_is_relative(http):
    info = http.get("/model").json()
    assert info["axis"] == "relative"
    assert info["manifest"]["preprocessing"]["axis"] == "relative"


def test_mid_ir_and_nir_spectra_are_both_embedded_with_full_coverage(http):
    wavenumbers = np.linspace(4000.0, 400.0, 900)  # cm-1, decreasing, far from any nm grid
    nm = np.linspace(1100.0, 2500.0, 700)
    mid_ir = _embed(
        http,
        {
            "spectra": [_spectrum(wavenumbers).tolist()],
            "wavelengths": wavenumbers.tolist(),
            "unit": "cm-1",
        },
    )
    nir = _embed(http, {"spectra": [_spectrum(nm).tolist()], "wavelengths": nm.tolist()})
    for answer in (mid_ir, nir):
        assert answer["coverage"] == [1.0]
        assert len(answer["embeddings"][0]) == 16
        assert np.isfinite(answer["embeddings"]).all()
        assert not any("coverage" in w for w in answer["warnings"][0])


def test_intensity_rescale_leaves_the_embedding_unchanged(http):
    axis = np.linspace(400.0, 4000.0, 500)
    y = _spectrum(axis)
    answer = _embed(
        http, {"spectra": [y.tolist(), (25.0 * y + 3.0).tolist()], "wavelengths": axis.tolist()}
    )
    a, b = answer["embeddings"]
    assert 1.0 - _cosine(a, b) < 1e-3


def test_the_same_spectrum_on_another_grid_of_the_same_range_embeds_nearly_the_same(http):
    fine = np.linspace(1100.0, 2500.0, 1400)
    other = np.linspace(1100.0, 2500.0, 997)
    a = _embed(http, {"spectra": [_spectrum(fine).tolist()], "wavelengths": fine.tolist()})
    b = _embed(http, {"spectra": [_spectrum(other).tolist()], "wavelengths": other.tolist()})
    assert 1.0 - _cosine(a["embeddings"][0], b["embeddings"][0]) < 1e-3


def test_without_wavelengths_exactly_seq_len_values_are_needed(http):
    y = _spectrum(np.arange(SEQ_LEN, dtype=float))
    assert _embed(http, {"spectra": [y.tolist()]})["coverage"] == [1.0]
    response = http.post("/embed", json={"spectra": [[*y.tolist(), 1.0]]})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "spectra"
    assert f"seq_len={SEQ_LEN}" in response.json()["error"]["message"]


def test_an_axis_that_is_not_monotonic_is_refused_naming_wavelengths(http):
    axis = np.linspace(400.0, 4000.0, 200)
    axis[50], axis[51] = axis[51], axis[50]
    response = http.post(
        "/embed", json={"spectra": [_spectrum(axis).tolist()], "wavelengths": axis.tolist()}
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "wavelengths"
    assert "strictly increasing or strictly decreasing" in response.json()["error"]["message"]


def test_missing_ranges_hide_bands_in_the_callers_unit(http):
    axis = np.linspace(4000.0, 400.0, 900)
    body = {"spectra": [_spectrum(axis).tolist()], "wavelengths": axis.tolist(), "unit": "cm-1"}
    plain = _embed(http, body)
    hidden = _embed(http, body | {"missing": [[[1500.0, 2500.0]]]})
    assert hidden["coverage"] == [1.0]
    assert 1.0 - _cosine(plain["embeddings"][0], hidden["embeddings"][0]) > 1e-4
    # a range outside the spectrum's axis hides nothing: the same as no missing at all
    outside = _embed(http, body | {"missing": [[[5000.0, 6000.0]]]})
    assert 1.0 - _cosine(outside["embeddings"][0], plain["embeddings"][0]) < 1e-6


def test_reconstruct_answers_on_the_callers_grid(http):
    axis = np.linspace(3800.0, 600.0, 333)
    y = 0.01 * _spectrum(axis)
    response = http.post(
        "/reconstruct",
        json={"spectra": [y.tolist()], "wavelengths": axis.tolist(), "unit": "cm-1"},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    values = np.asarray(answer["reconstructions"][0], dtype=float)
    assert values.shape == (333,)
    assert np.isfinite(values).all()  # the whole caller's range, nothing outside the model's
    assert answer["coverage"] == [1.0]
    # back in the caller's scale (SNV inverted): around the input's level, not unit variance
    assert abs(values.mean() - y.mean()) < 5 * y.std()


def test_library_entries_keep_their_own_axis(http):
    axis = np.linspace(400.0, 4000.0, 321)
    y = _spectrum(axis)
    response = http.put(
        "/library/raman-1",
        json={"spectrum": y.tolist(), "wavelengths": axis.tolist(), "unit": "cm-1"},
    )
    assert response.status_code == 200, response.text
    entry = http.get("/library/raman-1").json()
    np.testing.assert_allclose(entry["wavelengths"], axis)
    hits = http.post(
        "/similar", json={"spectra": [(2.0 * y).tolist()], "wavelengths": axis.tolist(), "k": 1}
    ).json()
    assert hits["results"][0][0]["id"] == "raman-1"
    assert hits["results"][0][0]["score"] > 0.999


def test_parse_keeps_the_files_axis_and_unit_for_a_relative_model(http):
    wavenumbers = np.linspace(4000.0, 400.0, 50)
    rows = "\n".join(
        f"{w:g},{v:.6f}" for w, v in zip(wavenumbers, _spectrum(wavenumbers), strict=True)
    )
    answer = http.post(
        "/parse?unit=cm-1",
        content=("wavenumber,value\n" + rows + "\n").encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["unit"] == "cm-1"
    assert min(answer.json()["wavelengths"]) == pytest.approx(400.0)


def _pixels(axis: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``(rows, cols, bands)`` pixels: the spectrum scaled, offset and shifted per pixel."""
    rng = np.random.default_rng(3)
    t = np.linspace(0.0, 1.0, axis.size)
    return np.array(
        [
            rng.uniform(0.5, 2.0) * _spectrum(axis) + rng.uniform(-0.1, 0.1) + 0.2 * t * r
            for r in range(rows * cols)
        ]
    ).reshape(rows, cols, axis.size)


def _post_cube(http: httpx.Client, cube: np.ndarray, **params) -> httpx.Response:
    buffer = io.BytesIO()
    np.save(buffer, cube)
    return http.post(
        "/embed/cube",
        content=buffer.getvalue(),
        headers={"Content-Type": "application/x-npy"},
        params=params,
    )


@pytest.mark.parametrize(
    ("axis", "unit"),
    [
        (np.linspace(4000.0, 400.0, 150), "cm-1"),  # mid-IR, decreasing, more bands than points
        (np.linspace(1100.0, 2500.0, 37), "nm"),  # NIR, fewer bands than the model's points
    ],
)
def test_a_cube_on_any_axis_embeds_each_pixel_as_embed_does(http, axis, unit):
    cube = _pixels(axis, 3, 4)
    wavelengths = ",".join(f"{w:.6f}" for w in axis)
    response = _post_cube(http, cube, wavelengths=wavelengths, unit=unit)
    assert response.status_code == 200, response.text
    embeddings = np.load(io.BytesIO(response.content))
    assert embeddings.shape == (3, 4, 16)
    single = _embed(
        http,
        {"spectra": cube.reshape(12, -1).tolist(), "wavelengths": axis.tolist(), "unit": unit},
    )
    np.testing.assert_allclose(embeddings.reshape(12, -1), single["embeddings"], atol=1e-5)
    assert float(response.headers["X-WaveMAE-Coverage"]) == 1.0  # as for single spectra
    assert json.loads(response.headers["X-WaveMAE-Warnings"]) == single["warnings"][0]


def test_a_cube_with_nan_bands_hides_them_as_embed_does(http):
    axis = np.linspace(400.0, 4000.0, 120)
    cube = _pixels(axis, 2, 3)
    cube[1, 2, 40:50] = np.nan  # a saturated stretch in one pixel
    params = {"wavelengths": ",".join(f"{w:g}" for w in axis), "unit": "cm-1"}
    refused = _post_cube(http, cube, **params)
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "cube[1][2][40]"
    response = _post_cube(http, cube, **params, nan_as_missing="true")
    assert response.status_code == 200, response.text
    assert response.headers["X-WaveMAE-Missing-Pixels"] == "1"
    pixels = [[None if np.isnan(v) else v for v in row] for row in cube.reshape(6, -1).tolist()]
    single = _embed(
        http,
        {"spectra": pixels, "wavelengths": axis.tolist(), "unit": "cm-1", "nan_as_missing": True},
    )
    embeddings = np.load(io.BytesIO(response.content)).reshape(6, -1)
    np.testing.assert_allclose(embeddings, single["embeddings"], atol=1e-5)


def test_a_cube_without_wavelengths_needs_seq_len_bands(http):
    cube = _pixels(np.arange(SEQ_LEN, dtype=float), 2, 2)
    response = _post_cube(http, cube)
    assert response.status_code == 200, response.text
    single = _embed(http, {"spectra": cube.reshape(4, -1).tolist()})
    np.testing.assert_allclose(
        np.load(io.BytesIO(response.content)).reshape(4, -1), single["embeddings"], atol=1e-5
    )
    refused = _post_cube(http, _pixels(np.arange(SEQ_LEN + 5, dtype=float), 2, 2))
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["field"] == "wavelengths" and f"seq_len={SEQ_LEN}" in error["message"]

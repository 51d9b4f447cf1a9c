"""wavemae.preprocessing: resampling, normalisation, standardisation, inversion, JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.signal import savgol_filter

from wavemae.preprocessing import (
    GridRangeError,
    Preprocessor,
    convert_axis,
    resample_to_grid,
)

GRID = np.linspace(1000.0, 1500.0, 64)


def _smooth_spectra(n: int = 12, grid: np.ndarray = GRID, seed: int = 0) -> np.ndarray:
    """Sums of Gaussian bands on a sloping baseline, (n, len(grid)) float64."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(grid[0], grid[-1], size=(n, 3, 1))
    heights = rng.uniform(0.2, 1.0, size=(n, 3, 1))
    bands = (heights * np.exp(-(((grid - centres) / 40.0) ** 2))).sum(axis=1)
    return bands + rng.uniform(0.1, 0.5, size=(n, 1)) + 1e-4 * (grid - grid[0])


def test_preprocessing_does_not_import_torch() -> None:
    code = "import sys, wavemae.preprocessing; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- resampling


def test_resample_is_bitwise_exact_on_the_same_grid() -> None:
    values = _smooth_spectra().astype(np.float32)
    out = resample_to_grid(values, GRID, GRID.copy())
    assert out.dtype == np.float32 and out.tobytes() == values.tobytes()
    out64 = resample_to_grid(values.astype(np.float64), GRID, GRID)
    assert np.array_equal(out64, values.astype(np.float64).astype(np.float32))


def test_resample_onto_a_subset_of_points_is_exact() -> None:
    values = _smooth_spectra()
    out = resample_to_grid(values, GRID, GRID[::3])
    assert np.array_equal(out, values[:, ::3].astype(np.float32))


def test_resample_reproduces_linear_functions_and_accepts_descending_input() -> None:
    src = np.linspace(400.0, 2500.0, 301)
    dst = np.sort(np.random.default_rng(2).uniform(400.0, 2500.0, 97))
    values = np.stack([0.5 + 0.001 * src, 3.0 - 0.0005 * src])
    expected = np.stack([0.5 + 0.001 * dst, 3.0 - 0.0005 * dst])
    np.testing.assert_allclose(resample_to_grid(values, src, dst), expected, rtol=1e-6)
    np.testing.assert_allclose(
        resample_to_grid(values[:, ::-1], src[::-1], dst), expected, rtol=1e-6
    )
    one = resample_to_grid(values[0], src, dst)
    assert one.shape == (97,)


def test_resample_refuses_grids_that_do_not_cover_the_target() -> None:
    src = np.linspace(1100.0, 2400.0, 100)
    with pytest.raises(GridRangeError, match=r"1100-2400 nm does not cover .*1000-2400 nm"):
        resample_to_grid(np.ones(100), src, np.linspace(1000.0, 2400.0, 10), unit="nm")
    with pytest.raises(GridRangeError, match="2500"):
        resample_to_grid(np.ones(100), src, np.linspace(1200.0, 2500.0, 10))
    # round-off at the ends is tolerated
    dst = np.linspace(1100.0 * (1 - 1e-9), 2400.0 * (1 + 1e-9), 10)
    assert np.all(resample_to_grid(np.ones(100), src, dst) == 1.0)


def test_resample_rejects_bad_grids() -> None:
    with pytest.raises(ValueError, match="strictly increasing or strictly decreasing"):
        resample_to_grid(np.ones(3), [1.0, 3.0, 2.0], [1.5, 2.5])
    with pytest.raises(ValueError, match="values have 3 bands but src_wavelengths has 4"):
        resample_to_grid(np.ones(3), [1.0, 2.0, 3.0, 4.0], [1.5])


def test_convert_axis_round_trip() -> None:
    nm = np.array([1000.0, 1250.0, 2500.0])
    cm = convert_axis(nm, "nm", "cm-1")
    assert np.allclose(cm, [10000.0, 8000.0, 4000.0])
    assert np.allclose(convert_axis(cm, "cm-1", "nm"), nm)


# --------------------------------------------------------------------------- normalisation


def test_snv_rows_have_mean_zero_and_std_one() -> None:
    x = Preprocessor(normalization="snv").transform(_smooth_spectra())
    np.testing.assert_allclose(x.mean(axis=1), 0.0, atol=1e-6)
    np.testing.assert_allclose(x.std(axis=1), 1.0, rtol=1e-5)


def test_minmax_and_l2_rows() -> None:
    values = _smooth_spectra()
    x = Preprocessor(normalization="minmax").transform(values)
    np.testing.assert_allclose(x.min(axis=1), 0.0, atol=1e-7)
    np.testing.assert_allclose(x.max(axis=1), 1.0, rtol=1e-6)
    x = Preprocessor(normalization="l2").transform(values)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-6)


def test_flat_spectrum_stays_finite() -> None:
    x = Preprocessor(normalization="snv").transform(np.full((1, 10), 3.0))
    assert np.all(x == 0.0)


def test_fit_standardises_each_band_on_the_training_data() -> None:
    train = _smooth_spectra(50)
    pre = Preprocessor(normalization="snv", standardize=True)
    with pytest.raises(ValueError, match="not fitted"):
        pre.transform(train)
    fitted = pre.fit(train)
    assert pre.band_mean is None  # fit returns a copy
    x = fitted.transform(train)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=0), 1.0, rtol=1e-4)


def test_resampling_inside_transform_uses_the_model_grid() -> None:
    caller_grid = np.linspace(900.0, 1600.0, 200)
    values = _smooth_spectra(5, caller_grid)
    pre = Preprocessor(wavelengths=GRID, normalization="snv")
    x = pre.transform(values, caller_grid)
    expected = Preprocessor(normalization="snv").transform(
        resample_to_grid(values, caller_grid, GRID)
    )
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-6)
    assert x.shape == (5, GRID.size)
    # the same spectra given on a wavenumber axis land on the same model input
    x_cm = pre.transform(values, convert_axis(caller_grid, "nm", "cm-1"), unit="cm-1")
    np.testing.assert_allclose(x_cm, x, atol=1e-3)
    with pytest.raises(GridRangeError):
        pre.transform(values[:, 50:], caller_grid[50:])


def test_transform_validates_input() -> None:
    pre = Preprocessor(wavelengths=GRID)
    values = _smooth_spectra(4)
    values[2, 7] = np.nan
    with pytest.raises(ValueError, match="spectrum 2 contains NaN or inf"):
        pre.transform(values)
    with pytest.raises(ValueError, match="values have 10 bands but the model grid has 64"):
        pre.transform(np.ones((2, 10)))
    with pytest.raises(ValueError, match="rectangular"):
        pre.transform([[1.0, 2.0], [3.0]])
    with pytest.raises(ValueError, match="must be numbers"):
        pre.transform([["1.0"] * 64])


# --------------------------------------------------------------------------- inversion


@pytest.mark.parametrize("normalization", ["none", "snv", "minmax", "l2"])
def test_inverse_transform_undoes_transform(normalization: str) -> None:
    caller_grid = np.linspace(950.0, 1550.0, 333)
    values = _smooth_spectra(20, caller_grid) * 100.0
    pre = Preprocessor(wavelengths=GRID, normalization=normalization, standardize=True)
    pre = pre.fit(values, caller_grid)
    x, state = pre.transform_with_state(values, caller_grid)
    back = pre.inverse_transform(x, state)
    np.testing.assert_allclose(back, resample_to_grid(values, caller_grid, GRID), rtol=1e-4)
    with pytest.raises(ValueError, match="x has 19 spectra but state describes 20"):
        pre.inverse_transform(x[:19], state)


def test_savgol_smoothing_inverts_to_the_smoothed_spectrum() -> None:
    values = _smooth_spectra(6)
    pre = Preprocessor(normalization="snv", savgol={"window": 7, "polyorder": 2}).fit(values)
    x, state = pre.transform_with_state(values)
    back = pre.inverse_transform(x, state)
    np.testing.assert_allclose(back, savgol_filter(values, 7, 2, axis=1), rtol=1e-5)


def test_savgol_derivative_is_not_invertible() -> None:
    pre = Preprocessor(savgol={"window": 9, "polyorder": 2, "deriv": 1})
    x, state = pre.transform_with_state(_smooth_spectra(3))
    assert not pre.invertible
    with pytest.raises(ValueError, match=r"derivative .* cannot be inverted"):
        pre.inverse_transform(x, state)


@pytest.mark.parametrize(
    ("savgol", "message"),
    [
        ({"window": 8, "polyorder": 2}, "odd"),
        ({"window": 5, "polyorder": 5}, "polyorder=5"),
        ({"window": 5, "polyorder": 2, "deriv": 3}, "deriv=3"),
        ({"window": 5, "polyorder": 2, "mode": "x"}, "unknown keys"),
        ({"window": 5.0, "polyorder": 2}, "integer"),
    ],
)
def test_bad_savgol_settings(savgol: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Preprocessor(savgol=savgol)


# --------------------------------------------------------------------------- JSON


def test_json_round_trip_is_exact() -> None:
    train = _smooth_spectra(30)
    pre = Preprocessor(
        wavelengths=GRID * np.pi / 3,
        unit="cm-1",
        normalization="snv",
        savgol={"window": 5, "polyorder": 2, "deriv": 0},
        standardize=True,
    ).fit(train, GRID * np.pi / 3)
    text = json.dumps(pre.to_dict())
    back = Preprocessor.from_dict(json.loads(text))
    assert back.to_dict() == pre.to_dict()
    assert json.loads(text)["version"] == 1
    assert np.array_equal(back.band_mean, pre.band_mean)
    assert np.array_equal(back.wavelengths, pre.wavelengths)
    assert np.array_equal(back.transform(train), pre.transform(train))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "version=2"),
        ({"extra": 1}, "unknown keys"),
        ({"normalization": "zscore"}, "normalization='zscore'"),
        ({"unit": "Hz"}, "unit='Hz'"),
        ({"wavelengths": [1.0, "2"]}, "finite numbers"),
        ({"wavelengths": [2.0, 1.0]}, "strictly increasing"),
        ({"band_mean": [0.0, 0.0], "band_std": [1.0, 0.0]}, "positive"),
        ({"band_mean": [0.0, 0.0], "band_std": None}, "together"),
        ({"standardize": "yes"}, "bool"),
    ],
)
def test_from_dict_rejects_bad_documents(change: dict, message: str) -> None:
    document = Preprocessor(normalization="l2").to_dict() | change
    with pytest.raises(ValueError, match=message):
        Preprocessor.from_dict(document)


def test_relative_axis_takes_any_contiguous_range_and_fixed_json_is_unchanged():
    from wavemae.preprocessing import Preprocessor

    nominal = np.linspace(0.0, 1.0, 32)
    rel = Preprocessor(wavelengths=nominal, unit="nm", normalization="snv", axis="relative")
    shape = np.sin(np.linspace(0, 3, 200)) + 2.0
    a = rel.transform(shape, np.linspace(600.0, 1800.0, 200), unit="nm")
    b = rel.transform(10 * shape, np.linspace(4000.0, 400.0, 200)[::-1], unit="cm-1")
    np.testing.assert_allclose(a, b, atol=1e-6)  # other range, unit and intensity scale
    assert rel.transform(shape).shape == (1, 32)  # no axis: positions taken as evenly spaced
    again = Preprocessor.from_dict(rel.to_dict())
    assert again.axis == "relative"
    fixed = Preprocessor(wavelengths=nominal, unit="nm")
    assert "axis" not in fixed.to_dict()  # fixed-grid models serialise exactly as before
    with pytest.raises(ValueError, match="axis='sideways'"):
        Preprocessor(wavelengths=nominal, axis="sideways")

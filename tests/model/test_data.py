"""The Spectra container and the named corpora shipped inside installed packages."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from wavemae.data import CORPORA, Spectra, load_corpus


def _spectra(n: int = 4, bands: int = 5) -> Spectra:
    rng = np.random.default_rng(0)
    return Spectra(
        rng.normal(size=(n, bands)),
        np.linspace(1000.0, 1100.0, bands),
        "nm",
        ids=[f"s{i}" for i in range(n)],
        metadata=[{"k": i, "group": "a" if i % 2 else "b"} for i in range(n)],
    )


# --------------------------------------------------------------------------- container


def test_spectra_coerces_dtypes_and_accepts_unit_spellings() -> None:
    s = Spectra(np.ones((2, 3), dtype=np.float64), [1, 2, 3], "1/CM")
    assert s.values.dtype == np.float32
    assert s.wavelengths.dtype == np.float64
    assert s.unit == "cm-1"
    assert len(s) == 2 and s.n_bands == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": np.ones(3), "wavelengths": [1, 2, 3]}, "2-D"),
        ({"values": np.ones((2, 3)), "wavelengths": [1, 2]}, "2 entries but values has 3"),
        ({"values": np.ones((2, 3)), "wavelengths": [1, 3, 2]}, "strictly increasing"),
        ({"values": np.ones((2, 3)), "wavelengths": [1, 2, 2]}, "strictly increasing"),
        ({"values": np.ones((2, 3)), "wavelengths": [1, 2, np.nan]}, "NaN"),
        ({"values": np.ones((2, 3)), "wavelengths": [1, 2, 3], "unit": "Hz"}, "unit='Hz'"),
        ({"values": np.ones((2, 3)), "wavelengths": [1, 2, 3], "ids": ["a"]}, "ids has 1"),
        (
            {"values": np.ones((2, 3)), "wavelengths": [1, 2, 3], "metadata": [{}, "x"]},
            "metadata[1] must be a dict",
        ),
    ],
)
def test_spectra_rejects_inconsistent_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Spectra(**kwargs)


def test_subset_by_indices_mask_and_slice_copies() -> None:
    s = _spectra()
    picked = s.subset([2, 0])
    assert picked.ids == ["s2", "s0"]
    assert np.array_equal(picked.values, s.values[[2, 0]])
    picked.values[:] = 0
    picked.metadata[0]["k"] = 99
    assert s.values[2].any() and s.metadata[2]["k"] == 2
    assert s.subset(np.array([True, False, True, False])).ids == ["s0", "s2"]
    assert s.subset(slice(1, 3)).ids == ["s1", "s2"]
    with pytest.raises(IndexError, match="index 7"):
        s.subset([7])


def test_where_and_metadata_column() -> None:
    s = _spectra()
    assert s.where("group", "a").ids == ["s1", "s3"]
    assert s.metadata_column("k") == [0, 1, 2, 3]


def test_concat_requires_one_grid_and_keeps_ids() -> None:
    a, b = _spectra(2), _spectra(3)
    both = Spectra.concat([a, b])
    assert len(both) == 5
    assert both.ids == ["s0", "s1", "s0", "s1", "s2"]
    assert np.array_equal(both.values[2:], b.values)
    other = Spectra(np.ones((1, 5)), np.linspace(1000.0, 1200.0, 5))
    with pytest.raises(ValueError, match="different wavelength grid"):
        Spectra.concat([a, other])
    with pytest.raises(ValueError, match="unit"):
        Spectra.concat([a, Spectra(np.ones((1, 5)), a.wavelengths, "cm-1")])


def test_checksum_changes_with_any_value_or_wavelength() -> None:
    s = _spectra()
    same = Spectra(s.values.copy(), s.wavelengths.copy())
    assert s.checksum() == same.checksum()
    assert len(s.checksum()) == 64
    changed = s.subset(slice(None))
    changed.values[3, 4] = np.nextafter(changed.values[3, 4], np.float32(np.inf))
    assert changed.checksum() != s.checksum()
    shifted = Spectra(s.values, s.wavelengths + 1e-9)
    assert shifted.checksum() != s.checksum()


# --------------------------------------------------------------------------- corpora


def test_tablet_corpus_has_both_instruments_and_the_stored_split() -> None:
    s = load_corpus("tablet")
    assert s.unit == "nm"
    assert s.values.shape == (1284, 597)
    assert np.array_equal(s.wavelengths, np.arange(600.0, 1793.0, 2.0))
    splits = Counter(s.metadata_column("split"))
    assert splits == {"calibration": 800, "test": 424, "transfer": 60}
    assert Counter(s.metadata_column("instrument")) == {1: 642, 2: 642}
    assert np.all(np.isfinite(s.values))
    # every tablet is measured once on each instrument, with one reference value
    by_tablet: dict[str, list[dict]] = {}
    for entry in s.metadata:
        by_tablet.setdefault(entry["tablet"], []).append(entry)
    assert len(by_tablet) == 642
    assert all(len(v) == 2 and v[0]["api"] == v[1]["api"] for v in by_tablet.values())
    api = np.array(s.metadata_column("api"))
    assert 150 < api.min() < api.max() < 240


def test_tablet_split_selection_and_independent_copies() -> None:
    cal = load_corpus("tablet", split="calibration")
    assert len(cal) == 800 and set(cal.metadata_column("split")) == {"calibration"}
    assert len(load_corpus("tablet", split="test")) == 424
    cal.values[:] = 0
    assert load_corpus("tablet", split="calibration").values.any()


def test_fermentation_corpus_matches_hplc_to_online_spectra() -> None:
    s = load_corpus("fermentation")
    assert s.unit == "cm-1" and s.n_bands == 1047
    assert s.wavelengths[0] == 428.0 and s.wavelengths[-1] == 1833.0
    train, test = (
        load_corpus("fermentation", split="train"),
        load_corpus("fermentation", split="test"),
    )
    assert (len(train), len(test)) == (21, 1629)
    assert all(isinstance(g, float) for g in train.metadata_column("glucose"))
    matched = [m for m in test.metadata if "glucose" in m]
    assert len(matched) == 34
    for m in matched:
        assert abs(m["hplc_time_h"] - m["time_h"]) <= 0.625 / 60 + 1e-9
        assert {"xylose", "acetic_acid", "ethanol", "furfural"} <= set(m)
    glucose = [m["glucose"] for m in sorted(matched, key=lambda m: m["time_h"])]
    assert glucose[0] > 40 and glucose[-1] < 5  # glucose is consumed during fermentation


def test_coffee_corpus_has_three_origins() -> None:
    s = load_corpus("coffee")
    assert s.values.shape == (60, 1841) and s.unit == "cm-1"
    assert Counter(s.metadata_column("origin")) == {"Ethiopia": 20, "Brasil": 20, "Vietnam": 20}
    assert s.wavelengths[0] == 450.0 and s.wavelengths[-1] == 4000.0


def test_load_corpus_rejects_unknown_names_and_splits() -> None:
    assert set(CORPORA) == {"tablet", "fermentation", "coffee"}
    with pytest.raises(ValueError, match="available"):
        load_corpus("nope")
    with pytest.raises(ValueError, match="calibration"):
        load_corpus("tablet", split="validation")
    with pytest.raises(ValueError, match="none"):
        load_corpus("coffee", split="train")


def test_crop_keeps_the_bands_inside_the_range() -> None:
    full = load_corpus("fermentation", split="train")
    s = full.crop(950, 1500)
    inside = (full.wavelengths >= 950) & (full.wavelengths <= 1500)
    assert np.array_equal(s.wavelengths, full.wavelengths[inside])
    assert np.array_equal(s.values, full.values[:, inside]) and s.ids == full.ids
    with pytest.raises(ValueError, match="keeps 0 bands"):
        s.crop(5000, 6000)

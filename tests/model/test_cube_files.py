"""Hyperspectral cubes opened lazily (wavemae.data.cubes): what is read equals what was written,
for a .npy and for ENVI files of every interleave, and broken files say why."""

from __future__ import annotations

import io

import numpy as np
import pytest
import spectral.io.envi as envi

from wavemae.data import SpectraFormatError
from wavemae.data.cubes import npy_cube_pixels, open_envi_cube, open_npy_cube


def _cube(rows: int = 4, cols: int = 5, bands: int = 6) -> np.ndarray:
    return np.random.default_rng(0).random((rows, cols, bands)).astype(np.float32)


def test_a_npy_cube_is_read_by_blocks_without_loading_it(tmp_path):
    cube = _cube()
    np.save(tmp_path / "c.npy", cube)
    opened = open_npy_cube(tmp_path / "c.npy")
    assert isinstance(opened.data, np.memmap)
    assert opened.shape == (4, 5, 6) and opened.wavelengths is None
    block = opened.read(slice(1, 3), slice(2, 5))
    np.testing.assert_array_equal(block, cube[1:3, 2:5].reshape(-1, 6))
    assert block.dtype == np.float64


@pytest.mark.parametrize("interleave", ["bip", "bil", "bsq"])
def test_an_envi_cube_gives_its_pixels_axis_unit_and_bad_bands(tmp_path, interleave):
    cube = _cube()
    envi.save_image(
        str(tmp_path / "c.hdr"),
        cube,
        interleave=interleave,
        metadata={
            "wavelength": ["1.1", "1.2", "1.3", "1.4", "1.5", "1.6"],
            "wavelength units": "Micrometers",
            "bbl": [1, 1, 0, 1, 1, 1],
        },
        force=True,
    )
    opened = open_envi_cube(tmp_path / "c.hdr", tmp_path / "c.img")
    assert opened.shape == (4, 5, 6) and opened.unit == "um"
    np.testing.assert_allclose(opened.wavelengths, [1.1, 1.2, 1.3, 1.4, 1.5, 1.6])
    assert opened.bad_bands.tolist() == [False, False, True, False, False, False]
    np.testing.assert_array_equal(opened.read(slice(0, 4), slice(0, 5)), cube.reshape(-1, 6))


def test_broken_cubes_say_why(tmp_path):
    np.save(tmp_path / "flat.npy", np.ones((3, 4)))
    with pytest.raises(SpectraFormatError, match=r"\(rows, cols, bands\)"):
        open_npy_cube(tmp_path / "flat.npy")
    (tmp_path / "short.npy").write_bytes(_npy_bytes(np.ones((50, 50, 8)))[:500])
    with pytest.raises(SpectraFormatError, match=r"numpy\.save"):
        open_npy_cube(tmp_path / "short.npy")
    envi.save_image(
        str(tmp_path / "c.hdr"), _cube(), metadata={"wavelength": ["1", "2"]}, force=True
    )
    with pytest.raises(SpectraFormatError, match="2 values for 6 bands"):
        open_envi_cube(tmp_path / "c.hdr", tmp_path / "c.img")
    (tmp_path / "bad.hdr").write_text("not a header")
    with pytest.raises(SpectraFormatError, match="could not be read"):
        open_envi_cube(tmp_path / "bad.hdr", tmp_path / "c.img")


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_the_pixels_of_a_npy_cube_are_known_from_its_first_bytes():
    head = _npy_bytes(np.zeros((30, 40, 5), dtype=np.float32))[:256]
    assert npy_cube_pixels(head) == (30, 40)
    assert npy_cube_pixels(head[:20]) is None  # not all of the header yet
    assert npy_cube_pixels(_npy_bytes(np.zeros((3, 4)))) is None  # not a cube
    assert npy_cube_pixels(b"not a numpy file at all") is None

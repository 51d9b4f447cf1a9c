"""Models and data for the suite: a checkpoint as an :class:`EvalModel`, and the
reference / validation / evaluation sets of a corpus or of a user's own file.

Sets (all spectra resampled onto the model grid):

- ``tablet`` corpus: reference = ``calibration``, validation = ``transfer``, evaluation =
  ``test`` (label ``api``, group ``tablet``, instrument ``instrument``). With
  ``holdout="validation"`` the evaluation set is a seeded 20 % of the calibration tablets
  (the rest is the reference): for choosing settings without touching ``test``.
- any other corpus or file: a column ``split_column`` with the values ``train`` / ``val`` /
  ``test`` (names configurable), or, without one, a seeded 60/20/20 split of the spectra (by
  ``group`` when given, so one sample's spectra stay on one side).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wavemae.data import Spectra, load_corpus, read_spectra
from wavemae.evaluation.suite import EvalModel
from wavemae.preprocessing import Preprocessor, resample_to_grid

__all__ = ["EvalSets", "corpus_defaults", "load_sets", "model_from_checkpoint"]

EvalSets = dict[str, tuple[np.ndarray, list[dict]]]


def model_from_checkpoint(path: str | Path, *, weights: str = "ema") -> EvalModel:
    """An :class:`EvalModel` around a training checkpoint (torch, eval mode, fp32)."""
    import torch

    from wavemae.checkpoint import load_checkpoint
    from wavemae.train.evaluate import embed, model_fill

    ck = load_checkpoint(path, weights=weights)
    if ck.preprocessing is None:
        raise ValueError(f"{path} carries no preprocessing; it cannot be evaluated on spectra")
    pre = Preprocessor.from_dict(ck.preprocessing)
    grid = np.asarray(pre.wavelengths, dtype=np.float64)
    unit = pre.unit
    torch.set_num_threads(max(1, torch.get_num_threads()))

    def preprocess(raw: np.ndarray) -> np.ndarray:
        return pre.transform(np.asarray(raw, dtype=np.float64), grid, unit=unit)

    return EvalModel(
        name=f"{Path(path).parent.name}/{Path(path).name} ({weights} weights, step {ck.step})",
        grid=grid,
        preprocess=preprocess,
        embed=lambda x: embed(ck.model, np.asarray(x, dtype=np.float32)),
        reconstruct=lambda x, v: model_fill(ck.model, np.asarray(x, dtype=np.float32), v),
        n_blocks=ck.config.n_blocks,
        n_mask=ck.config.n_mask,
        axis=pre.axis,
    )


def corpus_defaults(corpus: str | None) -> dict[str, str | None]:
    """Label / group / instrument columns known for a corpus."""
    if corpus == "tablet":
        return {"label": "api", "group": "tablet", "instrument": "instrument"}
    if corpus == "coffee":
        return {"label": "origin", "group": None, "instrument": None}
    if corpus == "fermentation":
        return {"label": "glucose", "group": None, "instrument": None}
    return {"label": None, "group": None, "instrument": None}


def _on_grid(
    s: Spectra, grid: np.ndarray, unit: str | None, relative: bool = False
) -> tuple[np.ndarray, list[dict]]:
    if relative:  # a general model: the set's own range, on as many points as the model has
        grid = np.linspace(float(np.min(s.wavelengths)), float(np.max(s.wavelengths)), len(grid))
        unit = None
    wavelengths = s.wavelengths
    if unit is not None and s.unit != unit:
        from wavemae.preprocessing import convert_axis

        wavelengths = convert_axis(s.wavelengths, s.unit, unit)
    values = resample_to_grid(s.values, wavelengths, grid, unit=unit or s.unit)
    return values, list(s.metadata or [{} for _ in range(len(s))])


def _seeded_split(s: Spectra, group: str | None, seed: int) -> tuple[Spectra, Spectra, Spectra]:
    meta = s.metadata or [{} for _ in range(len(s))]
    keys = np.array([str(m.get(group)) if group else str(i) for i, m in enumerate(meta)])
    names = np.random.default_rng(seed).permutation(np.unique(keys))
    n = len(names)
    n_val, n_test = max(1, round(0.2 * n)), max(1, round(0.2 * n))
    val, test = set(names[:n_val]), set(names[n_val : n_val + n_test])
    side = np.array([2 if k in test else 1 if k in val else 0 for k in keys])
    return s.subset(side == 0), s.subset(side == 1), s.subset(side == 2)


def load_sets(
    grid: np.ndarray,
    *,
    corpus: str | None = None,
    path: str | None = None,
    holdout: str = "test",
    split_column: str | None = None,
    split_names: tuple[str, str, str] = ("train", "val", "test"),
    group: str | None = None,
    seed: int = 0,
    unit: str | None = None,
    relative: bool = False,
) -> EvalSets:
    """``{"reference", "validation", "evaluation"}`` -> ``(raw on grid, metadata)``.

    ``relative``: for an axis-relative (general) model: each set goes onto ``len(grid)``
    points over the corpus's own range instead of onto ``grid`` (every set of one corpus shares
    one range, so the points are the same for all of them).

    Raises:
        ValueError: if a declared split is empty or the source is ambiguous.
    """
    if (corpus is None) == (path is None):
        raise ValueError("give exactly one of corpus and path")
    if holdout not in ("test", "validation"):
        raise ValueError(f"holdout={holdout!r} must be 'test' or 'validation'")
    if holdout == "validation" and corpus != "tablet":
        raise ValueError("holdout='validation' is defined for the tablet corpus only")
    spectra = load_corpus(corpus) if corpus else read_spectra(Path(path))
    if corpus == "tablet":
        cal = spectra.where("split", "calibration")
        validation = spectra.where("split", "transfer")
        if holdout == "validation":
            from wavemae.train.data_source import _group_split

            reference, evaluation = _group_split(cal, "tablet", seed)
        else:
            reference, evaluation = cal, spectra.where("split", "test")
    elif split_column:
        parts = []
        for name in split_names:
            part = spectra.where(split_column, name)
            if len(part) == 0:
                raise ValueError(f"no spectrum has {split_column}={name!r}")
            parts.append(part)
        reference, validation, evaluation = parts
    else:
        reference, validation, evaluation = _seeded_split(spectra, group, seed)
    out: dict[str, Any] = {}
    for name, part in (
        ("reference", reference),
        ("validation", validation),
        ("evaluation", evaluation),
    ):
        if len(part) < 2:
            raise ValueError(f"the {name} set has {len(part)} spectra; need at least 2")
        out[name] = _on_grid(part, grid, unit, relative)
    return out

"""The evaluation suite: every WaveMAE figure next to classical baselines, same run, same
held-out spectra.

Three sets of spectra: ``reference`` (the training side: the retrieval library, where PCA, the
training mean and the QC distribution are fitted), ``validation`` (held-out spectra used only
to choose the baselines' PCA sizes and to calibrate the QC score) and ``evaluation`` (held-out
spectra scored once). Sections:

- retrieval: cosine k-NN (k = 1, 5) from ``evaluation`` into ``reference`` of a numeric label
  (RMSE) or a class label (accuracy), embedding vs the classical similarities;
- identity: the same sample (``group``) measured on two ``instrument`` values inside
  ``evaluation``: top-1 of each spectrum among the other instrument's spectra;
- fill-in: a contiguous gap of 2, 5, 10, 20 % of the grid at a random position, and the
  training block masks: RMSE over the hidden positions (model input space) for the model,
  linear interpolation and PCA fill-in;
- QC: AUROC of clean vs corrupted ``evaluation`` spectra for the model's QC score
  (:mod:`wavemae.qc`) vs Hotelling's T² and the Q residual of PCA;
- health: effective rank, and the embedding's cosine change under a pure intensity rescale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from wavemae.evaluation.classical import (
    auroc,
    classical_features,
    effective_rank,
    hotelling_t2,
    q_residual,
    unit_rows,
)
from wavemae.evaluation.corruptions import CORRUPTIONS, corrupt
from wavemae.qc import fit_qc
from wavemae.train.baselines import block_visible_masks, fill_interp, fill_pca, fit_pca

__all__ = ["GAP_FRACTIONS", "QC_LEVELS", "EvalModel", "run_suite"]

GAP_FRACTIONS = (0.02, 0.05, 0.10, 0.20)
QC_LEVELS = (0.01, 0.05, 0.20)
PCA_CHOICES = (1, 2, 3, 4, 6, 8, 10, 12, 16, 20)
EMBEDDING = "WaveMAE embedding"


@dataclass
class EvalModel:
    """What the suite needs from a model (a checkpoint or an artifact).

    ``preprocess`` maps spectra on ``grid`` in their own units to model input; ``embed`` and
    ``reconstruct`` take model input (``reconstruct`` also a ``(N, L)`` visible mask).
    ``axis``: ``"fixed"`` (spectra are resampled onto ``grid``) or ``"relative"`` (a general
    model: each set is resampled onto ``len(grid)`` points over its own range; ``grid`` is
    nominal).
    """

    name: str
    grid: np.ndarray
    preprocess: Callable[[np.ndarray], np.ndarray]
    embed: Callable[[np.ndarray], np.ndarray]
    reconstruct: Callable[[np.ndarray, np.ndarray], np.ndarray]
    n_blocks: int
    n_mask: int
    axis: str = "fixed"


def _knn_pred(lib: np.ndarray, q: np.ndarray, y: np.ndarray, k: int, regression: bool):
    sims = unit_rows(q) @ unit_rows(lib).T
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    if regression:
        return y[nearest].mean(axis=1)
    out = []
    for row in y[nearest]:
        values, counts = np.unique(row, return_counts=True)
        out.append(values[np.argmax(counts)])
    return np.array(out)


def _retrieval_score(lib, q, y_lib, y_q, k, regression) -> float:
    pred = _knn_pred(lib, q, y_lib, k, regression)
    if regression:
        return float(np.sqrt(np.mean((pred - y_q) ** 2)))
    return float(np.mean(pred == y_q))


def _labels(meta: list[dict], key: str) -> tuple[np.ndarray, bool]:
    values = [m.get(key) for m in meta]
    try:
        return np.array(values, dtype=np.float64), True
    except (TypeError, ValueError):
        return np.array([str(v) for v in values]), False


def _features(model: EvalModel, raw, pre, basis, k) -> dict[str, np.ndarray]:
    return {EMBEDDING: model.embed(pre), **classical_features(raw, pre, basis, k)}


def _labelled(s: _Set, key: str) -> _Set:
    """The spectra of ``s`` that carry a ``key`` label (not missing, not NaN): a corpus like
    fermentation has reference values for only some of its spectra."""
    keep = []
    for m in s.meta:
        v = m.get(key)
        keep.append(v is not None and not (isinstance(v, float) and np.isnan(v)))
    idx = np.flatnonzero(keep)
    return _Set(s.raw[idx], s.pre[idx], [s.meta[i] for i in idx])


def retrieval(model, sets, basis, label) -> dict[str, Any]:
    ref, val, ev = (_labelled(sets[n], label) for n in ("reference", "validation", "evaluation"))
    for name, part in (("reference", ref), ("validation", val), ("evaluation", ev)):
        if len(part.meta) < 2:
            raise ValueError(f"the {name} set has {len(part.meta)} spectra labelled {label!r}")
    y_ref, regression = _labels(ref.meta, label)
    y_val, _ = _labels(val.meta, label)
    y_ev, _ = _labels(ev.meta, label)
    # PCA size for the scores: best validation 1-NN
    ks = [k for k in (2, 4, 8, 16) if k <= basis.components.shape[0]]
    val_scores = {
        k: _retrieval_score(
            basis.scores(ref.pre, k), basis.scores(val.pre, k), y_ref, y_val, 1, regression
        )
        for k in ks
    }
    best_k = (min if regression else max)(val_scores, key=val_scores.get)
    f_ref = _features(model, ref.raw, ref.pre, basis, best_k)
    f_ev = _features(model, ev.raw, ev.pre, basis, best_k)
    table = {
        name: {
            f"k={k}": _retrieval_score(f_ref[name], f_ev[name], y_ref, y_ev, k, regression)
            for k in (1, 5)
        }
        for name in f_ref
    }
    if regression:
        chance = float(np.sqrt(np.mean((y_ev - y_ref.mean()) ** 2)))
    else:
        values, counts = np.unique(y_ref, return_counts=True)
        chance = float(np.mean(y_ev == values[np.argmax(counts)]))
    return {
        "label": label,
        "metric": "RMSE (lower is better)" if regression else "accuracy (higher is better)",
        "regression": regression,
        "baseline_no_similarity": chance,
        "pca_k_chosen_on_validation": best_k,
        "n_library": len(y_ref),
        "n_queries": len(y_ev),
        "table": table,
        "effective_rank": {name: effective_rank(f) for name, f in f_ref.items()},
    }


def identity(model, ev, basis, pca_k, group, instrument) -> dict[str, Any] | None:
    groups = np.array([str(m.get(group)) for m in ev.meta])
    inst = np.array([str(m.get(instrument)) for m in ev.meta])
    names = sorted(set(inst))
    if len(names) < 2:
        return None
    a, b = names[0], names[1]
    feats = _features(model, ev.raw, ev.pre, basis, pca_k)
    out: dict[str, Any] = {"instruments": [a, b], "table": {}}
    for name, f in feats.items():
        row = {}
        for src, dst in ((b, a), (a, b)):
            qi, li = np.flatnonzero(inst == src), np.flatnonzero(inst == dst)
            sims = unit_rows(f[qi]) @ unit_rows(f[li]).T
            hit = groups[li][np.argmax(sims, axis=1)] == groups[qi]
            row[f"{src}->{dst} top-1"] = float(hit.mean())
        out["table"][name] = row
    out["chance"] = 1.0 / max(1, int(np.sum(inst == a)))
    return out


def _gap_masks(n: int, length: int, frac: float, rng) -> np.ndarray:
    width = max(1, round(frac * length))
    starts = rng.integers(0, length - width + 1, n)
    visible = np.ones((n, length), dtype=bool)
    for i, s in enumerate(starts):
        visible[i, s : s + width] = False
    return visible


def _hidden_rmse(pred, x, visible) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred) - x)[~visible] ** 2)))


def fill_in(model, sets, basis, seed, repeats=2) -> dict[str, Any]:
    val, ev = sets["validation"].pre, sets["evaluation"].pre
    length = ev.shape[1]
    conditions: dict[str, Callable[[int, int], np.ndarray]] = {
        f"gap {round(100 * f)} %": (
            lambda n, s, f=f: _gap_masks(n, length, f, np.random.default_rng(s))
        )
        for f in GAP_FRACTIONS
    }
    conditions[f"training mask ({model.n_mask}/{model.n_blocks} blocks)"] = lambda n, s: (
        block_visible_masks(n, length, model.n_blocks, model.n_mask, seed=s)
    )
    ks = [k for k in PCA_CHOICES if k <= basis.components.shape[0]]
    table = {}
    for i, (name, masks) in enumerate(conditions.items()):
        vv = masks(len(val) * repeats, seed + 100 + i)
        xv = np.tile(val, (repeats, 1))
        errs = {k: _hidden_rmse(fill_pca(xv, vv, basis, k), xv, vv) for k in ks}
        best_k = min(errs, key=errs.get)
        ve = masks(len(ev) * repeats, seed + 200 + i)
        xe = np.tile(ev, (repeats, 1))
        table[name] = {
            EMBEDDING.replace("embedding", "fill"): _hidden_rmse(model.reconstruct(xe, ve), xe, ve),
            "linear interpolation": _hidden_rmse(fill_interp(xe, ve), xe, ve),
            "PCA fill-in": _hidden_rmse(fill_pca(xe, ve, basis, best_k), xe, ve),
            "PCA k (chosen on validation)": best_k,
        }
    return {"metric": "RMSE over hidden positions, model input space", "table": table}


_QC_VARIANTS = {  # the components each candidate QC score combines (wavemae.qc)
    "model": ("recon_mean", "recon_max", "embedding"),
    "PCA Q": ("pca_q",),
    "PCA Q+T²": ("pca_q", "pca_t2"),
    "model+Q": ("recon_mean", "recon_max", "embedding", "pca_q"),
    "model+Q+T²": ("recon_mean", "recon_max", "embedding", "pca_q", "pca_t2"),
}


def _with_pca(calib, model_raw: np.ndarray, x: np.ndarray) -> np.ndarray:
    """All raw components of ``calib`` from the model's ``(N, 3)`` and spectra ``x``."""
    if calib.pca_loadings is None:
        return model_raw
    return np.concatenate([model_raw, calib.pca_components(x)], axis=1)


def _qc_candidates(calib, ref_pre, ks, raw_val_clean, raw_val_faults, x_val_clean, x_val_faults):
    """Every (variant, k) QC score calibrated on the clean validation spectra, with its mean
    validation AUROC over all faults and levels: ``[(mean_auroc, variant, k, calibration)]``."""
    out = []
    for k in [None, *ks]:
        base = calib if k is None else calib.with_pca(ref_pre, k)
        clean = _with_pca(base, raw_val_clean, x_val_clean)
        faults = [_with_pca(base, r, x) for r, x in zip(raw_val_faults, x_val_faults, strict=True)]
        for name, use in _QC_VARIANTS.items():
            if (name == "model") != (k is None):
                continue
            c = replace(base).calibrate(clean, use)
            ref = c.score_raw(clean)["score"]
            mean = float(np.mean([auroc(ref, c.score_raw(f)["score"]) for f in faults]))
            out.append((mean, name, k, c))
    return out


def qc(model, sets, seed, n_groups=8, max_spectra=200) -> dict[str, Any]:
    """QC AUROC per fault and level: the model-only score, PCA-only and combined scores
    (:mod:`wavemae.qc`), Hotelling T² and the Q residual. Every choice (the PCA sizes, the
    combined components) is the best mean AUROC over all faults and levels on the validation
    spectra (ties: the earlier, simpler candidate); the evaluation spectra are scored once. The
    calibration returned (and written into an artifact) is the best candidate overall."""
    ref, val, ev = sets["reference"], sets["validation"], sets["evaluation"]
    if len(ev.pre) > max_spectra:  # a seeded subset keeps the model's cost bounded
        keep = np.sort(np.random.default_rng(seed).permutation(len(ev.pre))[:max_spectra])
        ev = _Set(ev.raw[keep], ev.pre[keep], [ev.meta[i] for i in keep])
    calib = fit_qc(ref.pre, val.pre, model.embed, model.reconstruct, n_groups=n_groups)
    ks = [k for k in (2, 4, 8, 10, 16) if k < min(len(ref.pre), ref.pre.shape[1])]

    def corrupted(raw, kind, level, s):
        return model.preprocess(corrupt(raw, kind, level, np.random.default_rng(s)))

    def model_raw(x):
        return calib.raw_components(x, model.embed, model.reconstruct)

    # PCA size for T² and Q: best mean validation AUROC over all faults (fair to the baselines)
    val_sets = [
        corrupted(val.raw, kind, lvl, seed + j)
        for j, (kind, lvl) in enumerate((k, v) for k in CORRUPTIONS for v in QC_LEVELS)
    ]
    chosen = {}
    for stat, fn in (("Hotelling T²", hotelling_t2), ("Q residual", q_residual)):
        means = {}
        for k in ks:
            clean = fn(ref.pre, val.pre, k)
            means[k] = np.mean([auroc(clean, fn(ref.pre, x, k)) for x in val_sets])
        chosen[stat] = max(means, key=means.get)
    candidates = _qc_candidates(
        calib, ref.pre, ks, model_raw(val.pre), [model_raw(x) for x in val_sets], val.pre, val_sets
    )
    best = {}  # the best model-only, PCA-only and combined candidate on validation
    for group, names in (
        ("model", ("model",)),
        ("PCA", ("PCA Q", "PCA Q+T²")),
        ("combined", ("model+Q", "model+Q+T²")),
    ):
        mine = [c for c in candidates if c[1] in names]
        best[group] = max(mine, key=lambda c: c[0])  # max keeps the first of equal ones
    overall = max(best.values(), key=lambda c: c[0])

    def label(c):
        return f"QC {c[1]}" + ("" if c[2] is None else f" (k={c[2]})")

    raw_ev = model_raw(ev.pre)
    clean_scores = {g: c[3].score_raw(_with_pca(c[3], raw_ev, ev.pre)) for g, c in best.items()}
    clean_stats = {
        s: fn(ref.pre, ev.pre, chosen[s])
        for s, fn in (("Hotelling T²", hotelling_t2), ("Q residual", q_residual))
    }
    table = {}
    for j, kind in enumerate(CORRUPTIONS):
        for lvl in QC_LEVELS:
            x = corrupted(ev.raw, kind, lvl, seed + 1000 + j)
            raw_x = model_raw(x)
            row = {
                label(c): auroc(
                    clean_scores[g]["score"], c[3].score_raw(_with_pca(c[3], raw_x, x))["score"]
                )
                for g, c in best.items()
            }
            row[f"Hotelling T² (k={chosen['Hotelling T²']})"] = auroc(
                clean_stats["Hotelling T²"], hotelling_t2(ref.pre, x, chosen["Hotelling T²"])
            )
            row[f"Q residual (k={chosen['Q residual']})"] = auroc(
                clean_stats["Q residual"], q_residual(ref.pre, x, chosen["Q residual"])
            )
            table[f"{kind} {round(100 * lvl)} %"] = row
    shipped = overall[3]
    pct = next(clean_scores[g] for g, c in best.items() if c is overall)["percentile"]
    return {
        "metric": "AUROC clean vs corrupted evaluation spectra (higher is better)",
        "n_spectra": len(ev.pre),
        "table": table,
        "validation_mean_auroc": {label(c): c[0] for c in candidates},
        "chosen_on_validation": label(overall),
        "clean_evaluation_flag_rate": float(np.mean(pct >= shipped.flag_percentile)),
        "flag_percentile": shipped.flag_percentile,
        "calibration": shipped,
    }


def health(model, sets) -> dict[str, Any]:
    ref = sets["reference"]
    z = model.embed(ref.pre)
    out = {"effective_rank_embedding": effective_rank(z), "embedding_dim": int(z.shape[1])}
    for c in (0.5, 2.0):
        zc = model.embed(model.preprocess(ref.raw * c))
        cos = np.sum(unit_rows(z) * unit_rows(zc), axis=1)
        out[f"rescale x{c}: mean 1-cos"] = float(np.mean(1 - cos))
        out[f"rescale x{c}: max 1-cos"] = float(np.max(1 - cos))
    return out


@dataclass
class _Set:
    raw: np.ndarray
    pre: np.ndarray
    meta: list[dict]


def run_suite(
    model: EvalModel,
    reference: tuple[np.ndarray, list[dict]],
    validation: tuple[np.ndarray, list[dict]],
    evaluation: tuple[np.ndarray, list[dict]],
    *,
    label: str | None = None,
    group: str | None = None,
    instrument: str | None = None,
    seed: int = 0,
    sections: tuple[str, ...] = ("retrieval", "identity", "fill_in", "qc", "health"),
    qc_spectra: int = 200,
) -> dict[str, Any]:
    """Run the suite. Each set is ``(raw spectra on model.grid (N, L), metadata dicts)``.

    ``qc_spectra``: the QC section scores a seeded subset of at most this many evaluation
    spectra (clean and each fault on the same ones): the model's score costs ``n_groups``
    reconstructions per spectrum and fault.
    """
    sets = {
        name: _Set(np.asarray(raw, dtype=np.float64), model.preprocess(raw), list(meta))
        for name, (raw, meta) in (
            ("reference", reference),
            ("validation", validation),
            ("evaluation", evaluation),
        )
    }
    basis = fit_pca(
        sets["reference"].pre, max_components=min(max(PCA_CHOICES), len(sets["reference"].pre) - 1)
    )
    report: dict[str, Any] = {
        "model": model.name,
        "n": {k: len(v.pre) for k, v in sets.items()},
        "seed": seed,
    }
    if label and "retrieval" in sections:
        report["retrieval"] = retrieval(model, sets, basis, label)
    if group and instrument and "identity" in sections:
        k = report.get("retrieval", {}).get("pca_k_chosen_on_validation", 8)
        ident = identity(model, sets["evaluation"], basis, k, group, instrument)
        if ident is not None:
            report["identity"] = ident
    if "fill_in" in sections:
        report["fill_in"] = fill_in(model, sets, basis, seed)
    if "qc" in sections:
        report["qc"] = qc(model, sets, seed, max_spectra=qc_spectra)
    if "health" in sections:
        report["health"] = health(model, sets)
    return report

"""``wavemae bench search``: which library search finds tablets with the right assay.

The task (issue 13): the library is the calibration spectra of instrument 1 of the tablet
corpus, the queries its test spectra; a search is scored by the k-NN RMSE of the reference
value ``api`` (mg), k = 1 and 5 (prediction = mean ``api`` of the k hits).

Every Hit Quality Index variant (none / SNV / 1st / 2nd Savitzky-Golay derivative at several
windows) is scored on the VALIDATION split only: the project's tablet validation split
(``wavemae train/evaluate --holdout validation``: a seeded 20 % of the calibration tablets held
out, the other 80 % the library). The default is the variant with the lowest mean of the two
validation RMSEs (k = 1 and 5) on the model grid, the grid the service searches on. 5-fold
cross-validation inside the calibration set is reported beside it (how much the choice moves
between splits) but does not choose. The test set is then scored once, for that default and the
comparisons (raw cosine, the old standardised-input cosine, embedding cosine, hybrid).

Whether the default's test RMSEs differ from the two baselines of issue 13 (raw cosine, the best
1st derivative) by more than the draw of test queries is shown by a paired bootstrap of the
RMSE differences (:func:`wavemae.bench.bootstrap.paired_bootstrap`: the 212 test queries
resampled 2000 times, seed 0, 95 % percentile intervals), on the model grid; nothing is chosen
from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from wavemae.bench.bootstrap import paired_bootstrap
from wavemae.similarity import HQIIndex, HQIOptions, rank_by_correlation

__all__ = ["embed_with_onnx", "format_bootstrap", "format_search", "search_mode"]

KS = (1, 5)
_WINDOWS = (5, 7, 9, 11, 15, 21, 31, 41)
_CANDIDATES = (10, 25, 50, 100)
_FOLDS = 5
_RAW_COSINE = "cosine, raw spectra"
_BOOTSTRAP_RESAMPLES = 2000
_BOOTSTRAP_SEED = 0

# A ranker takes (library values, query values, library rows, query rows) -> (Q, max k) hits.
Ranker = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _knn_errors(hits: np.ndarray, lib_y: np.ndarray, query_y: np.ndarray) -> dict[int, np.ndarray]:
    """``{k: (Q,) prediction - reference}``, the prediction the mean of the k hits' values."""
    return {k: lib_y[hits[:, :k]].mean(axis=1) - query_y for k in KS}


def _rmse(errors: dict[int, np.ndarray]) -> dict[int, float]:
    return {k: float(np.sqrt(np.mean(e**2))) for k, e in errors.items()}


def _knn_rmse(hits: np.ndarray, lib_y: np.ndarray, query_y: np.ndarray) -> dict[int, float]:
    return _rmse(_knn_errors(hits, lib_y, query_y))


def _cosine_top(lib: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)

    return rank_by_correlation(unit(queries) @ unit(lib).T, k).indices


class _Task:
    """Tablet instrument-1 spectra on one grid, with embeddings, split for the search task."""

    def __init__(self, grid: str) -> None:
        from wavemae.artifact import load_artifact, shipped_model_dir
        from wavemae.data import load_corpus
        from wavemae.preprocessing import resample_to_grid

        # The tablet task measures the shipped tablet model (its fixed grid is the task's grid).
        self.artifact = load_artifact(shipped_model_dir("tablet"))
        tablet = load_corpus("tablet")
        inst = np.array(tablet.metadata_column("instrument")) == 1
        split = np.array(tablet.metadata_column("split"))
        self.cal = np.flatnonzero(inst & (split == "calibration"))
        self.test = np.flatnonzero(inst & (split == "test"))
        raw = tablet.values.astype(np.float64)
        self.native_grid = tablet.wavelengths
        if grid == "model":
            self.grid = self.artifact.wavelengths
            self.values = resample_to_grid(raw, self.native_grid, self.grid).astype(np.float64)
        else:
            self.grid = self.native_grid
            self.values = raw
        self.y = np.array(tablet.metadata_column("api"), dtype=np.float64)
        self.tablets = np.array([str(t) for t in tablet.metadata_column("tablet")])
        # The model input (standardised per band): what space=spectrum used to compare.
        self.model_input = self.artifact.preprocess(raw, self.native_grid)
        self.embeddings = embed_with_onnx(self.artifact, self.model_input)

    def folds(self) -> list[tuple[np.ndarray, np.ndarray]]:
        order = np.random.default_rng(0).permutation(self.cal)
        parts = np.array_split(order, _FOLDS)
        return [
            (np.concatenate([p for j, p in enumerate(parts) if j != i]), parts[i])
            for i in range(_FOLDS)
        ]

    def validation_split(self) -> tuple[np.ndarray, np.ndarray]:
        """``(library rows, query rows)``: the calibration tablets outside / inside the
        project's validation split (:func:`wavemae.train.data_source.held_out_groups`)."""
        from wavemae.train.data_source import held_out_groups

        held = np.isin(self.tablets[self.cal], held_out_groups(self.tablets[self.cal]))
        return self.cal[~held], self.cal[held]


def embed_with_onnx(artifact: Any, model_input: np.ndarray) -> np.ndarray:
    """``(N, latent_dim)`` embeddings of preprocessed ``(N, seq_len)`` input, ONNX Runtime CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(artifact.file("encoder")), options, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    return np.vstack(
        [
            session.run(None, {name: model_input[i : i + 64]})[0]
            for i in range(0, len(model_input), 64)
        ]
    )


def _rankers(task: _Task, hqi: HQIOptions | None) -> dict[str, Ranker]:
    """The comparisons; ``hqi`` is the chosen default (for the hybrid re-ranking)."""
    kmax = max(KS)
    rankers: dict[str, Ranker] = {
        _RAW_COSINE: lambda lib, q: _cosine_top(task.values[lib], task.values[q], kmax),
        "cosine, standardised model input (old space=spectrum)": lambda lib, q: _cosine_top(
            task.model_input[lib], task.model_input[q], kmax
        ),
        "embedding cosine (space=embedding)": lambda lib, q: _cosine_top(
            task.embeddings[lib], task.embeddings[q], kmax
        ),
    }
    if hqi is None:
        return rankers
    for n_cand in _CANDIDATES:
        rankers[f"hybrid: top {n_cand} by embedding, re-ranked by HQI {hqi.describe()}"] = (
            lambda lib, q, n=n_cand: _hybrid(task, lib, q, hqi, n)
        )
    return rankers


def _hybrid(task: _Task, lib: np.ndarray, q: np.ndarray, hqi: HQIOptions, n: int) -> np.ndarray:
    cand = _cosine_top(task.embeddings[lib], task.embeddings[q], n)
    r = HQIIndex(task.values[lib], task.grid, hqi).correlations(task.values[q])
    masked = np.full_like(r, -np.inf)
    np.put_along_axis(masked, cand, np.take_along_axis(r, cand, axis=1), axis=1)
    return rank_by_correlation(masked, max(KS)).indices


def _hqi_ranker(task: _Task, options: HQIOptions) -> Ranker:
    def rank(lib: np.ndarray, q: np.ndarray) -> np.ndarray:
        return (
            HQIIndex(task.values[lib], task.grid, options).search(task.values[q], max(KS)).indices
        )

    return rank


def _hqi_variants() -> list[HQIOptions]:
    variants = [HQIOptions(preprocessing="none"), HQIOptions(preprocessing="snv")]
    for name in ("deriv1", "deriv2"):
        variants += [HQIOptions(preprocessing=name, window=w) for w in _WINDOWS]
    return variants


def _validate(task: _Task, rank: Ranker) -> dict[int, float]:
    """k-NN RMSE on the validation split (what chooses the default)."""
    lib, q = task.validation_split()
    return _knn_rmse(rank(lib, q), task.y[lib], task.y[q])


def _cross_validate(task: _Task, rank: Ranker) -> dict[int, float]:
    """Mean k-NN RMSE over 5 folds of the calibration set (reported, never chooses)."""
    per_fold = [_knn_rmse(rank(lib, q), task.y[lib], task.y[q]) for lib, q in task.folds()]
    return {k: float(np.mean([f[k] for f in per_fold])) for k in KS}


def search_mode() -> dict[str, Any]:
    """Run the whole measurement; returns rows for :func:`format_search`."""
    started = time.perf_counter()
    tasks = {grid: _Task(grid) for grid in ("model", "native")}
    rows: list[dict[str, Any]] = []
    # (grid, preprocessing) -> (criterion, options, validation RMSEs) of the best window
    best: dict[tuple[str, str], tuple[float, HQIOptions, dict[int, float]]] = {}
    bootstrap: dict[str, Any] = {}
    for grid, task in tasks.items():
        for options in _hqi_variants():
            val = _validate(task, _hqi_ranker(task, options))
            rows.append(
                {
                    "method": f"HQI {options.describe()}",
                    "grid": grid,
                    "val": val,
                    "cv": _cross_validate(task, _hqi_ranker(task, options)),
                }
            )
            criterion = (val[1] + val[5]) / 2
            key = (grid, options.preprocessing)
            if key not in best or criterion < best[key][0]:
                best[key] = (criterion, options, val)
    for grid, task in tasks.items():
        default = min((v for (g, _), v in best.items() if g == grid), key=lambda v: v[0])
        deriv1 = best[(grid, "deriv1")]
        finalists: list[tuple[str, Ranker, dict[int, float] | None]] = [
            (
                f"HQI {default[1].describe()} (best on validation)",
                _hqi_ranker(task, default[1]),
                default[2],
            ),
            (
                f"HQI {deriv1[1].describe()} (best 1st derivative on validation)",
                _hqi_ranker(task, deriv1[1]),
                deriv1[2],
            ),
        ]
        finalists += [(name, rank, None) for name, rank in _rankers(task, default[1]).items()]
        errors: dict[str, dict[int, np.ndarray]] = {}
        for name, rank, val in finalists:
            errors[name] = _knn_errors(
                rank(task.cal, task.test), task.y[task.cal], task.y[task.test]
            )
            rows.append(
                {
                    "method": name,
                    "grid": grid,
                    "val": val or _validate(task, rank),
                    "cv": _cross_validate(task, rank),
                    "test": _rmse(errors[name]),
                }
            )
        if grid == "model":
            bootstrap = _bootstrap(errors, finalists[0][0], [finalists[1][0], _RAW_COSINE])
    chosen = min((v for (g, _), v in best.items() if g == "model"), key=lambda v: v[0])[1]
    model = tasks["model"]
    lib, held = model.validation_split()
    return {
        "task": (
            f"tablet instrument 1: library {len(model.cal)} calibration spectra, "
            f"{len(model.test)} test queries; validation = the {len(held)} calibration spectra "
            f"of the --holdout validation tablets searched in the other {len(lib)}"
        ),
        "settings": len(_hqi_variants()),
        "grids": {
            "model": f"{model.grid.size} bands (the model grid, {model.grid[0]:g}-"
            f"{model.grid[-1]:g} nm)",
            "native": f"{model.native_grid.size} bands (as measured, 2 nm)",
        },
        "chosen": chosen.describe(),
        "rows": rows,
        "bootstrap": bootstrap,
        "seconds": time.perf_counter() - started,
    }


def _bootstrap(
    errors: dict[str, dict[int, np.ndarray]], default: str, baselines: list[str]
) -> dict[str, Any]:
    """Paired bootstrap of test RMSE(default) - RMSE(baseline), per baseline."""
    return {
        "default": default,
        "resamples": _BOOTSTRAP_RESAMPLES,
        "seed": _BOOTSTRAP_SEED,
        "level": 0.95,
        "comparisons": [
            {
                "baseline": name,
                **paired_bootstrap(
                    errors[default],
                    errors[name],
                    resamples=_BOOTSTRAP_RESAMPLES,
                    seed=_BOOTSTRAP_SEED,
                ),
            }
            for name in baselines
        ],
    }


def format_bootstrap(bootstrap: dict[str, Any]) -> str:
    """The paired bootstrap as a Markdown table (negative: the default has the lower RMSE)."""
    lines = [
        f"paired bootstrap, test queries resampled {bootstrap['resamples']} times (seed "
        f"{bootstrap['seed']}): RMSE of {bootstrap['default']} minus the baseline's, "
        f"{bootstrap['level']:.0%} interval",
        "",
        "| baseline | k=1: difference [95 % CI] | k=5: difference [95 % CI] "
        "| mean of k=1 and k=5: difference [95 % CI] |",
        "|---|---:|---:|---:|",
    ]
    for row in bootstrap["comparisons"]:
        cells = [
            f"{row[key]['difference']:+.2f} [{row[key]['low']:+.2f}, {row[key]['high']:+.2f}]"
            for key in (*(f"k={k}" for k in KS), "mean")
        ]
        lines.append(f"| {row['baseline']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_search(result: dict[str, Any]) -> str:
    """The measurement as a Markdown table (k-NN RMSE of api in mg; lower is better)."""
    lines = [
        f"search: {result['task']}",
        *(f"grid {k}: {v}" for k, v in result["grids"].items()),
        f"chosen default (model grid, mean of val RMSE@1 and @5): HQI {result['chosen']}",
        f"HQI settings tried per grid: {result['settings']}",
        "",
        "| method | grid | val RMSE@1 | val RMSE@5 | 5-fold CV RMSE@1 | 5-fold CV RMSE@5 "
        "| test RMSE@1 | test RMSE@5 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        test = row.get("test")
        cells = [f"{row['val'][k]:.2f}" for k in KS]
        cells += [f"{row['cv'][k]:.2f}" for k in KS]
        cells += [f"{test[k]:.2f}" if test else "-" for k in KS]
        lines.append(f"| {row['method']} | {row['grid']} | " + " | ".join(cells) + " |")
    if "bootstrap" in result:
        lines += ["", format_bootstrap(result["bootstrap"])]
    lines.append(f"\n({result['seconds']:.1f} s)")
    return "\n".join(lines)

"""``eval.md`` and ``eval.json`` for a suite report (and ``qc.json``, the QC calibration)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["format_suite", "write_suite"]


def _table(rows: dict[str, dict[str, float]], first: str, fmt: str = "{:.4g}") -> list[str]:
    cols: list[str] = []
    for r in rows.values():
        cols += [c for c in r if c not in cols]
    lines = [f"| {first} | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, r in rows.items():
        cells = [fmt.format(r[c]) if c in r else "" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _transpose(rows: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, r in rows.items():
        for col, v in r.items():
            out.setdefault(col, {})[name] = v
    return out


def format_suite(report: dict[str, Any], title: str) -> str:
    """The report as Markdown: one table per section, baselines next to the model."""
    n = report["n"]
    out = [
        f"# {title}",
        "",
        f"Model: `{report['model']}`. Spectra: reference {n['reference']} (library, PCA and "
        f"QC fitting), validation {n['validation']} (PCA sizes, QC calibration only), "
        f"evaluation {n['evaluation']} (scored once). Seed {report['seed']}.",
    ]
    if "retrieval" in report:
        r = report["retrieval"]
        out += [
            "",
            f"## Retrieval: cosine k-NN of `{r['label']}` ({r['metric']})",
            "",
            f"Queries: {r['n_queries']} evaluation spectra; library: {r['n_library']} reference "
            f"spectra. No similarity (predict the library mean / majority): "
            f"{r['baseline_no_similarity']:.4g}. PCA size chosen on validation: "
            f"{r['pca_k_chosen_on_validation']}.",
            "",
        ]
        rows = {
            name: {**v, "effective rank": r["effective_rank"][name]}
            for name, v in r["table"].items()
        }
        out += _table(rows, "similarity")
    if "identity" in report:
        i = report["identity"]
        out += [
            "",
            "## Cross-instrument identity (top-1 of the same sample on the other instrument)",
            "",
            f"Instruments {i['instruments'][0]} and {i['instruments'][1]}, evaluation spectra; "
            f"chance {i['chance']:.3g}.",
            "",
        ]
        out += _table(i["table"], "similarity", "{:.3f}")
    if "fill_in" in report:
        f = report["fill_in"]
        out += ["", f"## Fill-in ({f['metric']}, lower is better)", ""]
        out += _table({k: _pca_k_column(v) for k, v in f["table"].items()}, "hidden")
    if "qc" in report:
        q = report["qc"]
        out += [
            "",
            f"## QC ({q['metric']})",
            "",
            f"{q.get('n_spectra', '')} evaluation spectra, each clean and with each fault. "
            "Faults are sized relative to each spectrum's standard deviation "
            "(`wavemae.evaluation.corruptions`). PCA sizes of T² and Q chosen on validation. "
            f"Clean evaluation spectra flagged at the default threshold (percentile >= "
            f"{q['flag_percentile']:g} of clean validation spectra): "
            f"{100 * q['clean_evaluation_flag_rate']:.1f} %."
            + (
                " QC columns: the model-only score, PCA-only and model+PCA combined scores "
                "(`wavemae.qc`), each the best of its kind by mean validation AUROC; the "
                f"calibration written to qc.json: {q['chosen_on_validation']}."
                if "chosen_on_validation" in q
                else ""
            ),
            "",
        ]
        out += _table(q["table"], "fault", "{:.3f}")
    if "health" in report:
        h = report["health"]
        out += ["", "## Embedding health", ""]
        out += [f"- {k}: {v:.4g}" for k, v in h.items()]
    return "\n".join(out) + "\n"


def write_suite(report: dict[str, Any], out_dir: str | Path, title: str) -> Path:
    """Write ``eval.json``, ``eval.md`` and (with a QC section) ``qc.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = json.loads(json.dumps(report, default=_jsonable))
    if "qc" in report and "calibration" in report["qc"]:
        (out / "qc.json").write_text(json.dumps(report["qc"]["calibration"].to_dict()))
        data["qc"].pop("calibration", None)
    (out / "eval.json").write_text(json.dumps(data, indent=2))
    (out / "eval.md").write_text(format_suite(data, title))
    return out


def _pca_k_column(row: dict[str, float]) -> dict[str, float]:
    # reports written before the PCA size had its own column named it in the key
    out = {}
    for key, value in row.items():
        if key.startswith("PCA fill-in (k chosen on validation = "):
            out["PCA fill-in"] = value
            out["PCA k (chosen on validation)"] = int(key.rsplit("= ", 1)[1].rstrip(")"))
        else:
            out[key] = value
    return out


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

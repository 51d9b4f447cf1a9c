"""Collect the general model's suite reports (one per documented corpus) into eval.md / eval.json.

python deploy/general-model-run/summarize.py tablet=DIR fermentation=DIR coffee=DIR

Each DIR holds the eval.json written by ``wavemae evaluate CKPT --corpus NAME --report DIR``.
"""

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EMB = "WaveMAE embedding"


def _best(table: dict, key: str, lower: bool) -> tuple[str, float]:
    pick = min if lower else max
    name = pick((k for k in table if k != EMB), key=lambda k: table[k][key])
    return name, table[name][key]


def row(corpus: str, report: dict) -> dict:
    r = report["retrieval"]
    lower = bool(r["regression"])
    t = r["table"]
    best_name, best = _best(t, "k=1", lower)
    out = {
        "corpus": corpus,
        "metric": r["metric"],
        "label": r["label"],
        "n_library": r["n_library"],
        "n_queries": r["n_queries"],
        "no_similarity": r["baseline_no_similarity"],
        "embedding k=1": t[EMB]["k=1"],
        "embedding k=5": t[EMB]["k=5"],
        "Pearson k=1": t["Pearson (HQI)"]["k=1"],
        "Pearson k=5": t["Pearson (HQI)"]["k=5"],
        "best classical k=1": best,
        "best classical name": best_name,
        "effective rank": report["health"]["effective_rank_embedding"],
        "rescale max 1-cos": max(v for k, v in report["health"].items() if "max 1-cos" in k),
    }
    ident = report.get("identity", {}).get("table")
    if ident:
        out["identity 2->1 embedding"] = ident[EMB]["2->1 top-1"]
        out["identity 2->1 Pearson"] = ident["Pearson (HQI)"]["2->1 top-1"]
        out["identity 2->1 best classical"] = _best(ident, "2->1 top-1", lower=False)[1]
    fill = report["fill_in"]["table"]
    out["fill model/PCA"] = {
        gap.split(" (")[0]: c["WaveMAE fill"] / c["PCA fill-in"] for gap, c in fill.items()
    }
    qc = report["qc"]["table"]
    for lvl in ("5 %", "20 %"):
        rows = [v for k, v in qc.items() if k.endswith(" " + lvl)]
        out[f"QC {lvl} model"] = float(np.mean([next(iter(v.values())) for v in rows]))
        out[f"QC {lvl} best PCA"] = float(np.mean([max(list(v.values())[1:]) for v in rows]))
    return out


def markdown(rows: list[dict]) -> str:
    lines = [
        "# General model: held-out suite on each documented corpus",
        "",
        "Zero-shot: no labels were used in training (the model saw the reference spectra of",
        "each corpus unlabelled, see README.md). Retrieval: cosine k-NN from the reference set",
        "to the held-out evaluation set, the suite's classical similarities on the same points.",
        "",
        "| corpus (label, metric) | emb 1-NN | Pearson 1-NN | best classical 1-NN | emb 5-NN |"
        " Pearson 5-NN | no similarity | eff. rank | rescale max 1-cos |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['corpus']} ({r['label']}, {r['metric']}) | {r['embedding k=1']:.3g} | "
            f"{r['Pearson k=1']:.3g} | {r['best classical k=1']:.3g} "
            f"({r['best classical name']}) | {r['embedding k=5']:.3g} | {r['Pearson k=5']:.3g} | "
            f"{r['no_similarity']:.3g} | {r['effective rank']:.2f} | "
            f"{r['rescale max 1-cos']:.1e} |"
        )
    lines += [
        "",
        "| corpus | fill ÷ PCA: gap 2 / 5 / 10 / 20 % / training mask | QC 5 %: model / PCA | "
        "QC 20 %: model / PCA | identity 2->1: emb / Pearson / best classical |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        fill = " / ".join(f"{v:.2f}" for v in r["fill model/PCA"].values())
        ident = (
            f"{r['identity 2->1 embedding']:.3f} / {r['identity 2->1 Pearson']:.3f} / "
            f"{r['identity 2->1 best classical']:.3f}"
            if "identity 2->1 embedding" in r
            else "n/a (one instrument)"
        )
        lines.append(
            f"| {r['corpus']} | {fill} | {r['QC 5 % model']:.3f} / {r['QC 5 % best PCA']:.3f} | "
            f"{r['QC 20 % model']:.3f} / {r['QC 20 % best PCA']:.3f} | {ident} |"
        )
    lines += ["", "Full per-corpus reports: `suite-<corpus>/eval.md`.", ""]
    return "\n".join(lines)


def main() -> None:
    rows, reports = [], {}
    for arg in sys.argv[1:]:
        corpus, _, folder = arg.partition("=")
        report = json.loads((Path(folder) / "eval.json").read_text())
        reports[corpus] = report
        rows.append(row(corpus, report))
    (HERE / "eval.json").write_text(json.dumps({"summary": rows, "reports": reports}, indent=1))
    (HERE / "eval.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()

"""Collect suite reports (eval.json) of several runs into one objective x figures table.

python deploy/tablet-objectives-run/ablation_table.py NAME=runs/a0/suite/eval.json ...
"""

import json
import sys
from pathlib import Path

import numpy as np


def row(report: dict) -> dict[str, float]:
    r = report["retrieval"]["table"]
    ident = report.get("identity", {}).get("table", {})
    fill = report["fill_in"]["table"]
    qc = report["qc"]["table"]
    out = {
        "emb 1-NN": r["WaveMAE embedding"]["k=1"],
        "emb 5-NN": r["WaveMAE embedding"]["k=5"],
        "best classical 1-NN": min(v["k=1"] for k, v in r.items() if k != "WaveMAE embedding"),
        "emb identity 2->1": ident.get("WaveMAE embedding", {}).get("2->1 top-1", float("nan")),
        "best classical identity": max(
            (v["2->1 top-1"] for k, v in ident.items() if k != "WaveMAE embedding"),
            default=float("nan"),
        ),
    }
    for gap, cells in fill.items():
        vals = list(cells.values())
        out[f"fill {gap.split(' (')[0]} model/PCA"] = vals[0] / vals[2]
    for lvl in ("5 %", "20 %"):
        rows = [v for k, v in qc.items() if k.endswith(" " + lvl)]
        out[f"QC AUROC {lvl} model"] = float(np.mean([next(iter(v.values())) for v in rows]))
        out[f"QC AUROC {lvl} best PCA"] = float(
            np.mean(
                [
                    max(x for c, x in v.items() if c.startswith(("Hotelling", "Q residual")))
                    for v in rows
                ]
            )
        )  # the baselines by name: reports since the PCA QC put three QC columns first
    out["eff. rank"] = report["health"]["effective_rank_embedding"]
    return out


def main() -> None:
    rows = {}
    for arg in sys.argv[1:]:
        name, _, path = arg.partition("=")
        rows[name] = row(json.loads(Path(path).read_text()))
    cols = list(next(iter(rows.values())))
    print("| objective | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{r[c]:.3g}" for c in cols) + " |")


if __name__ == "__main__":
    main()

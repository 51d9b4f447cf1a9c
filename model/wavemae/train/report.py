"""Human-readable evaluation reports and the loss-curve PNG of a run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["format_report", "plot_loss_curve"]

_BASELINE_ORDER = ("model", "model_raw_weights", "mean", "interp", "pca2", "pca4", "pca8")
_LABELS = {
    "model": "WaveMAE (EMA weights)",
    "model_raw_weights": "WaveMAE (raw weights)",
    "mean": "training mean spectrum",
    "interp": "linear interpolation",
    "pca2": "PCA fill-in, 2 components",
    "pca4": "PCA fill-in, 4 components",
    "pca8": "PCA fill-in, 8 components",
}


def format_report(report: dict[str, Any], *, title: str = "WaveMAE evaluation") -> str:
    """Markdown tables of a report from :func:`wavemae.train.run.evaluate_model`."""
    rec = report["reconstruction"]
    mse = rec["mse"]
    lines = [
        f"# {title}",
        "",
        f"## Masked reconstruction ({rec['n_spectra']} held-out spectra x "
        f"{rec['n_masks'] // max(rec['n_spectra'], 1)} masks, {rec['n_mask']}/{rec['n_blocks']} "
        f"blocks hidden; MSE over hidden positions in {report.get('space', 'model space')})",
        "",
        "| method | masked MSE | vs model |",
        "|---|---:|---:|",
    ]
    model_mse = mse["model"]
    for key in _BASELINE_ORDER:
        if key in mse:
            ratio = mse[key] / model_mse if model_mse > 0 else float("inf")
            lines.append(f"| {_LABELS[key]} | {mse[key]:.5g} | {ratio:.2f}x |")
    comp = report.get("composition")
    if comp:
        lines += ["", f"## Composition: {comp['task']}", ""]
        if comp["kind"] == "classification":
            lines += [
                f"chance (majority class): {comp['chance_accuracy']:.3f}; n = {comp['n']}",
                "",
                "| features | LOO 1-NN accuracy |",
                "|---|---:|",
            ]
            for name, acc in comp["accuracy_1nn_loo"].items():
                lines.append(f"| {name} | {acc:.3f} |")
        else:
            targets = comp["targets"]
            lines += [
                "RMSE per target (" + ", ".join(targets) + "); lower is better; "
                "`predict_mean` = always predicting the reference mean; "
                "`_knnK` = cosine K-NN; `_ridge` = ridge linear probe (alpha by LOO).",
                "",
                "| features | " + " | ".join(targets) + " |",
                "|---|" + "---:|" * len(targets),
            ]
            for name, values in comp["rmse"].items():
                lines.append(f"| {name} | " + " | ".join(f"{v:.4g}" for v in values) + " |")
    return "\n".join(lines) + "\n"


def plot_loss_curve(
    metrics_jsonl: str | Path, png: str | Path, report: dict[str, Any] | None = None
) -> Path:
    """Plot training loss and held-out masked MSE (EMA, raw) against step; log y axis.

    Baseline levels from ``report`` (mean, interp, PCA) are drawn as horizontal lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(metrics_jsonl).read_text().splitlines() if line]
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    ema = [(r["step"], r["heldout_mse_ema"]) for r in records if "heldout_mse_ema" in r]
    raw = [(r["step"], r["heldout_mse_raw"]) for r in records if "heldout_mse_raw" in r]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss (masked)", lw=1, alpha=0.8)
    if ema:
        ax.plot(*zip(*ema, strict=True), "o-", label="held-out masked MSE (EMA)")
    if raw:
        ax.plot(*zip(*raw, strict=True), "x--", label="held-out masked MSE (raw)")
    if report is not None:
        mse = report["reconstruction"]["mse"]
        for key, style in (("mean", ":"), ("interp", "-."), ("pca2", "--"), ("pca8", "-")):
            if key in mse:
                ax.axhline(mse[key], ls=style, color="grey", lw=1)
                ax.annotate(
                    _LABELS[key], (0, mse[key]), xycoords=("axes fraction", "data"), fontsize=7
                )
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE (model space)")
    ax.legend(loc="upper right")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return Path(png)

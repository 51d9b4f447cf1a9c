"""Issue 7's performance targets, checked on benchmark results, and service-vs-baseline ratios."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["compare", "evaluate_targets"]


def evaluate_targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Issue 7's targets, from whatever parts ``results`` holds."""
    targets = []
    serve = results.get("serve")
    if serve:
        by = {(r["body"], r["concurrency"]): r for r in serve["rows"]}
        for body, goal in (("json", 0.85), ("npy", 0.90)):
            row = by.get((body, 32))
            if row and row["fraction_of_engine"] is not None:
                targets.append(
                    {
                        "name": f"served {body} at 32 clients / engine best",
                        "value": row["fraction_of_engine"],
                        "goal": f">= {goal}",
                        "met": row["fraction_of_engine"] >= goal,
                    }
                )
        for body in ("json", "npy"):
            row = by.get((body, 64))
            if row and row["p50_ms"] and row["p50_ms"] == row["p50_ms"]:
                ratio = row["p99_ms"] / row["p50_ms"]
                targets.append(
                    {
                        "name": f"p99/p50 at 64 clients ({body})",
                        "value": ratio,
                        "goal": "<= 2",
                        "met": ratio <= 2.0,
                    }
                )
    engine = results.get("engine")
    if engine:
        faster = [r for r in engine["backends"] if r["precision"] != "fp32" and r["parity_holds"]]
        best = max(faster, key=lambda r: r["speedup_vs_onnxruntime_fp32"], default=None)
        if best is not None:
            targets.append(
                {
                    "name": f"parity-holding faster precision ({best['name']}) vs ORT fp32",
                    "value": best["speedup_vs_onnxruntime_fp32"],
                    "goal": ">= 2",
                    "met": best["speedup_vs_onnxruntime_fp32"] >= 2.0,
                }
            )
    return targets


def compare(service: Mapping[str, Any], baseline: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Service vs baseline spectra/s for each (body, concurrency) both measured."""
    base = {(r["body"], r["concurrency"]): r["spectra_per_s"] for r in baseline["rows"]}
    out = []
    for r in service["rows"]:
        b = base.get((r["body"], r["concurrency"]))
        if b:
            out.append(
                {
                    "body": r["body"],
                    "concurrency": r["concurrency"],
                    "service": r["spectra_per_s"],
                    "baseline": b,
                    "ratio": r["spectra_per_s"] / b,
                }
            )
    return out

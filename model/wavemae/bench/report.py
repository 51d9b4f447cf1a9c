"""Rich tables for the benchmark results, and the JSON file they are written to."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["print_results", "to_markdown", "write_json"]


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _engine_tables(result: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    peaks = result["matmul_gflops"]
    title = (
        f"engine: {result['model']}, {result['flops_per_spectrum'] / 1e6:.2f} MFLOP/spectrum; "
        f"matmul {', '.join(f'{k} {v:.0f}' for k, v in peaks.items())} GFLOP/s"
    )
    console.print(title)
    table = Table(title="engine: spectra/s by threads and batch size", title_justify="left")
    batches = [str(b) for b in result["batch_sizes"]]
    table.add_column("backend")
    table.add_column("threads", justify="right")
    for b in batches:
        table.add_column(f"b={b}", justify="right")
    for row in result["backends"]:
        for threads, by_batch in row["by_threads"].items():
            cells = [_fmt(by_batch[b]["spectra_per_s"]) for b in batches]
            table.add_row(row["name"], threads, *cells)
    console.print(table)
    best = Table(title="engine: best spectra/s per backend", title_justify="left")
    for col in (
        "backend",
        "best spectra/s",
        "threads x batch",
        "GFLOP/s",
        "of peak",
        "vs ORT fp32",
        "top-1 agree",
        "recall@5",
        "parity",
    ):
        best.add_column(col, justify="left" if col == "backend" else "right")
    for row in result["backends"]:
        parity = row["parity"]
        best.add_row(
            row["name"],
            _fmt(row["best_spectra_per_s"]),
            f"{row['best_threads']} x {row['best_batch']}",
            _fmt(row["gflops"], 1),
            f"{row['fraction_of_matmul_peak']:.1%}" if row["fraction_of_matmul_peak"] else "-",
            f"{row['speedup_vs_onnxruntime_fp32']:.2f}x",
            _fmt(parity["top1_agreement"], 3),
            _fmt(parity["recall_at_5"], 3),
            "holds" if row["parity_holds"] else "FAILS",
        )
    console.print(best)
    console.print(f"held-out spectra: {result['heldout']}")
    for note in result["skipped"]:
        console.print(f"[dim]skipped {note}[/dim]")


def _load_table(title: str, rows: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in (
        "body",
        "clients",
        "spectra/s",
        "of engine",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "p99/p50",
        "ok",
        "errors",
        "statuses",
        "client CPU",
        "server CPU",
    ):
        table.add_column(col, justify="left" if col in ("body", "statuses") else "right")
    for r in rows:
        p99_p50 = r["p99_ms"] / r["p50_ms"] if r["p50_ms"] and r["p50_ms"] > 0 else float("nan")
        server_cpu = r.get("server_cpu_cores")
        table.add_row(
            r["body"],
            str(r["concurrency"]),
            _fmt(r["spectra_per_s"]),
            f"{r['fraction_of_engine']:.2f}" if r.get("fraction_of_engine") else "-",
            _fmt(r["p50_ms"], 1),
            _fmt(r["p95_ms"], 1),
            _fmt(r["p99_ms"], 1),
            _fmt(p99_p50, 1),
            str(r["ok"]),
            str(r["errors"]),
            ",".join(f"{k}:{v}" for k, v in r["statuses"].items()),
            f"{r['client_cpu_s'] / r['seconds']:.2f}" if r["seconds"] else "-",
            _fmt(server_cpu, 2),
        )
    console.print(table)


def _cell(point: dict[str, float] | None, key: str, digits: int = 0) -> str:
    return "-" if point is None else _fmt(point[key], digits)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _p_ratio(rows: dict[str, Any], key: str) -> str:
    serve, peer = rows["serve"], rows.get("peer")
    if not peer or not peer[key] or serve[key] is None:
        return "-"
    return f"{serve[key] / peer[key]:.2f}"


#: Columns of the side-by-side comparison: header, cell from a comparison row.
_COMPARISON_COLUMNS = (
    ("body", lambda r: r["body"]),
    ("clients", lambda r: str(r["concurrency"])),
    ("service spectra/s", lambda r: _cell(r["serve"], "spectra_per_s")),
    ("peer spectra/s", lambda r: _cell(r.get("peer"), "spectra_per_s")),
    ("eager spectra/s", lambda r: _cell(r.get("baseline"), "spectra_per_s")),
    (
        "service p50 / p99 ms",
        lambda r: f"{_cell(r['serve'], 'p50_ms', 1)} / {_cell(r['serve'], 'p99_ms', 1)}",
    ),
    (
        "peer p50 / p99 ms",
        lambda r: f"{_cell(r.get('peer'), 'p50_ms', 1)} / {_cell(r.get('peer'), 'p99_ms', 1)}",
    ),
    ("spectra/s vs peer", lambda r: _ratio(r.get("serve_vs_peer"))),
    ("p50 vs peer", lambda r: _p_ratio(r, "p50_ms")),
    ("p99 vs peer", lambda r: _p_ratio(r, "p99_ms")),
    ("spectra/s vs eager", lambda r: _ratio(r.get("serve_vs_baseline"))),
    ("spectra per CPU-s vs peer", lambda r: _ratio(r.get("cpu_efficiency_vs_peer"))),
)


def _comparison_table(comparison: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    table = Table(
        title="service vs peer (FastAPI def + one ONNX Runtime session) vs eager baseline",
        title_justify="left",
    )
    for header, _ in _COMPARISON_COLUMNS:
        table.add_column(header, justify="left" if header == "body" else "right")
    for r in comparison:
        table.add_row(*(cell(r) for _, cell in _COMPARISON_COLUMNS))
    console.print(table)


def print_results(results: dict[str, Any]) -> None:
    """Print every part present in ``results`` (engine, serve, baseline, comparison)."""
    from rich.console import Console

    console = Console(width=160)
    machine = results.get("machine")
    if machine:
        console.print(
            f"machine: {machine['cpu']}, {machine['cpus']} CPUs, load average "
            f"{machine['loadavg_1_5_15']} before, {machine.get('loadavg_after')} after; "
            f"onnxruntime {machine['onnxruntime']}"
        )
    if "engine" in results:
        _engine_tables(results["engine"], console)
    for key in ("serve", "peer", "baseline"):
        part = results.get(key)
        if part:
            ref = part["reference"]
            title = (
                f"{key}: {part['server']} ({part['url']}); reference {ref['backend']} "
                f"{ref['spectra_per_s']:,.0f} spectra/s in process ({ref['threads']} threads x "
                f"batch {ref['batch']}); load generator: {part['rows'][0].get('client', 'httpx')}"
            )
            console.print(title)
            _load_table(f"{key}: spectra/s and latency by body and clients", part["rows"], console)
            profile = part.get("profile")
            if profile and profile.get("samples"):
                layers = ", ".join(f"{k} {v:.0%}" for k, v in profile["layers"].items())
                console.print(
                    f"py-spy of the {key} server under 32 JSON clients "
                    f"({profile['samples']} samples): {layers}"
                )
                for frame, share in profile["top_self"][:8]:
                    console.print(f"  {share:6.1%}  {frame}")
            elif profile:
                console.print(f"py-spy failed: {profile.get('error')}")
    comparison = results.get("comparison")
    if comparison:
        _comparison_table(comparison, console)
    for note in results.get("skipped", []):
        console.print(f"[dim]skipped {note}[/dim]")
    for target in results.get("targets", []):
        mark = "[green]met[/green]" if target["met"] else "[red]missed[/red]"
        console.print(
            f"target {target['name']}: {target['value']:.2f} (goal {target['goal']}) {mark}"
        )


def write_json(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``results`` to ``path`` as indented JSON (NaN written as null)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(clean(results), indent=2) + "\n", encoding="utf-8")
    return out


def to_markdown(results: dict[str, Any]) -> str:
    """The README's performance tables (engine best per backend, served rows, comparison)."""
    out: list[str] = []
    machine = results.get("machine")
    if machine:
        out.append(
            f"Machine: {machine['cpu']}, {machine['cpus']} CPUs, load average "
            f"{machine['loadavg_1_5_15'][0]} before / {machine.get('loadavg_after', ['?'])[0]} "
            f"after; onnxruntime {machine['onnxruntime']}.\n"
        )
    engine = results.get("engine")
    if engine:
        peaks = ", ".join(f"{k} {v:.0f}" for k, v in engine["matmul_gflops"].items())
        out.append(
            f"**Engine** (in process, {engine['model']}, "
            f"{engine['flops_per_spectrum'] / 1e6:.0f} MFLOP per spectrum; measured matmul "
            f"throughput {peaks} GFLOP/s; parity on {engine['heldout']}):\n"
        )
        out.append(
            "| backend | best spectra/s | threads x batch | of matmul peak | vs ORT fp32 "
            "| top-1 agreement | parity |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---|")
        for row in engine["backends"]:
            frac = row["fraction_of_matmul_peak"]
            out.append(
                f"| {row['name']} | {row['best_spectra_per_s']:,.0f} | {row['best_threads']} x "
                f"{row['best_batch']} | {f'{frac:.0%}' if frac else '-'} | "
                f"{row['speedup_vs_onnxruntime_fp32']:.2f}x | "
                f"{row['parity']['top1_agreement']:.3f} | "
                f"{'holds' if row['parity_holds'] else 'fails'} |"
            )
        out.append("")
    for key, label in (
        ("serve", "Service"),
        ("peer", "Peer"),
        ("baseline", "Hand-written eager baseline"),
    ):
        part = results.get(key)
        if not part:
            continue
        ref = part["reference"]
        out.append(
            f"**{label}** ({part['server']}; one spectrum per request; load generator "
            f"{part['rows'][0].get('client', 'httpx')}; engine reference {ref['backend']} "
            f"{ref['spectra_per_s']:,.0f} spectra/s):\n"
        )
        out.append(
            "| body | clients | spectra/s | of engine | p50 ms | p95 ms | p99 ms | "
            "p99/p50 | errors |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in part["rows"]:
            ratio = r["p99_ms"] / r["p50_ms"] if r["p50_ms"] else float("nan")
            out.append(
                f"| {r['body']} | {r['concurrency']} | {r['spectra_per_s']:,.0f} | "
                f"{r['fraction_of_engine']:.2f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                f"{r['p99_ms']:.1f} | {ratio:.1f} | {r['errors']} |"
            )
        out.append("")
    if results.get("comparison"):
        out.append("**Side by side** (same load, same run; ratios are service / other):\n")
        out.append("| " + " | ".join(h for h, _ in _COMPARISON_COLUMNS) + " |")
        out.append("|---|" + "---:|" * (len(_COMPARISON_COLUMNS) - 1))
        for r in results["comparison"]:
            out.append("| " + " | ".join(cell(r) for _, cell in _COMPARISON_COLUMNS) + " |")
        out.append("")
    for t in results.get("targets", []):
        out.append(
            f"- {t['name']}: {t['value']:.2f} (goal {t['goal']}): {'met' if t['met'] else 'missed'}"
        )
    return "\n".join(out) + "\n"

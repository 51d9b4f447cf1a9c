"""``wavemae evaluate``: a checkpoint's held-out evaluation, or the whole suite (``--report``)."""

from __future__ import annotations

import typer


def evaluate_cmd(
    checkpoint: str = typer.Argument(..., help="Training checkpoint."),
    corpus: str = typer.Option(None, "--corpus", help="Evaluate on this corpus."),
    data: str = typer.Option(None, "--data", help="Evaluate on this spectra file."),
    weights: str = typer.Option("ema", "--weights", help="ema | raw"),
    out: str = typer.Option(None, "--out", help="Also write the report as JSON here."),
    report_dir: str = typer.Option(
        None,
        "--report",
        help="Run the full suite (retrieval, identity, fill-in, QC, health "
        "vs classical baselines) and write eval.md, eval.json and qc.json into this folder.",
    ),
    label: str = typer.Option(None, "--label", help="Suite: metadata column to retrieve."),
    group: str = typer.Option(
        None,
        "--group",
        help="Suite: metadata column naming the sample (shared across instruments).",
    ),
    instrument: str = typer.Option(None, "--instrument", help="Suite: instrument column."),
    split_column: str = typer.Option(
        None, "--split-column", help="Suite: column with train/val/test (else a seeded split)."
    ),
    split_names: str = typer.Option(
        "train,val,test",
        "--split-names",
        help="Suite: the reference,validation,evaluation values of --split-column.",
    ),
    holdout: str = typer.Option(
        "test",
        "--holdout",
        help="Suite on tablet: evaluate on 'test' or on the 'validation' "
        "20 % of the calibration tablets.",
    ),
    seed: int = typer.Option(0, "--seed", help="Suite: split, gap and fault seed."),
    artifact: str = typer.Option(
        None,
        "--artifact",
        help="Suite: write the fitted QC calibration into this exported "
        "artifact's manifest (the checkpoint's export) and check its ONNX scores agree.",
    ),
) -> None:
    """Held-out masked error vs mean/interp/PCA baselines, and embedding composition tests.

    With --report, the whole evaluation suite instead (see wavemae.evaluation).
    """
    import json
    from pathlib import Path

    if corpus is not None and data is not None:
        raise typer.BadParameter("give at most one of --corpus and --data")
    if report_dir is not None:
        from wavemae.evaluation import (
            corpus_defaults,
            load_sets,
            model_from_checkpoint,
            run_suite,
            write_suite,
        )

        names = tuple(split_names.split(","))
        if len(names) != 3:
            raise typer.BadParameter("--split-names needs three comma-separated values")
        try:
            model = model_from_checkpoint(checkpoint, weights=weights)
            if corpus is None and data is None:
                corpus = "tablet"
            known = corpus_defaults(corpus)
            sets = load_sets(
                model.grid,
                corpus=corpus,
                path=data,
                holdout=holdout,
                split_column=split_column,
                split_names=names,  # type: ignore[arg-type]
                group=group or known["group"],
                seed=seed,
                relative=model.axis == "relative",
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        report = run_suite(
            model,
            sets["reference"],
            sets["validation"],
            sets["evaluation"],
            label=label or known["label"],
            group=group or known["group"],
            instrument=instrument or known["instrument"],
            seed=seed,
        )
        folder = write_suite(report, report_dir, f"WaveMAE evaluation of {checkpoint}")
        typer.echo((folder / "eval.md").read_text())
        if artifact is not None and "qc" in report:
            _attach_qc(artifact, report["qc"]["calibration"], model, sets["evaluation"][0])
        return

    from wavemae.train.data_source import DataSource
    from wavemae.train.report import format_report
    from wavemae.train.run import evaluate_checkpoint

    if corpus is not None and data is not None:
        raise typer.BadParameter("give at most one of --corpus and --data")
    path = None if data is None else str(Path(data).resolve())
    source = DataSource(corpus=corpus, path=path) if (corpus or data) else None
    report = evaluate_checkpoint(checkpoint, source, weights=weights)
    typer.echo(format_report(report, title=f"WaveMAE evaluation of {checkpoint}"))
    if out:
        Path(out).write_text(json.dumps(report, indent=2))


def _attach_qc(artifact_dir, calibration, model, raw) -> None:
    import numpy as np

    from wavemae.artifact import load_artifact
    from wavemae.qc import ArtifactQC, attach_qc

    attach_qc(artifact_dir, calibration)
    onnx = ArtifactQC(load_artifact(artifact_dir))(raw)["score"]
    torch_score = calibration.score(model.preprocess(raw), model.embed, model.reconstruct)
    diff = float(np.max(np.abs(onnx - torch_score["score"])))
    typer.echo(
        f"QC calibration written into {artifact_dir}/manifest.json "
        f"(ONNX vs PyTorch QC score, max abs difference {diff:.2g})"
    )
    if diff > 1e-3:
        raise typer.Exit(f"ONNX QC scores disagree with PyTorch by {diff}")

"""The ``wavemae`` command line.

This is the one place where the offline package and the service meet. Each subcommand
imports what it needs inside its own body (``train`` imports torch, ``serve`` the service),
so ``wavemae --help`` is fast and works with either extra installed.
"""

from __future__ import annotations

import os

import click
import typer
from typer.core import TyperGroup


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user's mistake raises: a bad value or file, a missing extra, a broken artifact."""
    from wavemae.manifest import ArtifactError

    return (ValueError, OSError, ModuleNotFoundError, ArtifactError)


class _UserErrorsAsOneLine(TyperGroup):
    """Prints a user's mistake as one ``error:`` line and exits 1 instead of a traceback.

    ``WAVEMAE_TRACEBACK=1`` shows the traceback (for bug reports).
    """

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not isinstance(exc, _user_errors()) or os.environ.get("WAVEMAE_TRACEBACK"):
                raise
            message = " ".join(str(exc).split()) or type(exc).__name__
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(code=1) from None


app = typer.Typer(
    name="wavemae",
    help="WaveMAE: masked autoencoder for 1-D spectra — train, export, serve, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    cls=_UserErrorsAsOneLine,
)


def _print_version(value: bool) -> None:
    if value:
        from wavemae import __version__

        typer.echo(f"wavemae {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """WaveMAE: masked autoencoder for 1-D spectra."""


@app.command()
def version() -> None:
    """Print the package version."""
    from wavemae import __version__

    typer.echo(__version__)


@app.command("export")
def export_cmd(
    checkpoint: str = typer.Argument(..., help="Training checkpoint (its EMA weights are used)."),
    out: str = typer.Option(..., "--out", help="Artifact folder to create."),
    quantize: str = typer.Option(
        None,
        "--quantize",
        help="'int8': also write encoder.int8.onnx if faster with "
        "retrieval intact on the held-out spectra.",
    ),
    name: str = typer.Option(None, "--name", help="Model name (default: from the checkpoint)."),
    model_version: str = typer.Option(
        None, "--version", help="Model version (default: '<step>-<checkpoint sha256[:8]>')."
    ),
    data: str = typer.Option(
        None,
        "--data",
        help="Verification spectra: a spectra file, or CORPUS[:SPLIT] "
        "(default: the held-out split of the data the checkpoint was trained on).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Export a checkpoint to an ONNX + TorchScript artifact folder with a verified manifest."""
    import json
    import shlex
    import sys

    from wavemae.data import spectra_from_argument

    spectra = None if data is None else spectra_from_argument(data)
    from wavemae.export import export_checkpoint  # torch: after the cheap checks

    folder = export_checkpoint(
        checkpoint,
        out,
        data=spectra,
        name=name,
        version=model_version,
        quantize=quantize,
        overwrite=overwrite,
        command=shlex.join(["wavemae", *sys.argv[1:]]),
        data_label=data,
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    enc = manifest["verification"]["encoder"]
    typer.echo(
        f"exported {manifest['name']}:{manifest['version']} to {folder} "
        f"(onnx encoder max abs {enc['max_abs']:.2g}, min cosine {enc['min_cosine']:.7f}, "
        f"{manifest['verification']['n_spectra']} spectra)"
    )
    if manifest.get("quantization"):
        typer.echo(f"int8: {json.dumps(manifest['quantization'])}")


@app.command("train")
def train_cmd(
    corpus: str = typer.Option(
        None,
        "--corpus",
        help="Corpus: tablet, fermentation, coffee, or general (synthetic "
        "spectra + those corpora on an axis-relative grid: the general model's training set).",
    ),
    data: str = typer.Option(None, "--data", help="Spectra file (CSV, NPY/NPZ, JCAMP-DX ...)."),
    materials: int = typer.Option(
        None, "--materials", help="--corpus general: synthetic materials (x2 instruments)."
    ),
    preset_name: str = typer.Option("small", "--preset", help="small | base"),
    steps: int = typer.Option(None, "--steps", help="Optimisation steps (default: the preset's)."),
    seed: int = typer.Option(0, "--seed", help="Seed for init, data order, masks, dropout."),
    out: str = typer.Option(None, "--out", help="Run folder (default: runs/<source>-<preset>)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ..."),
    resume: str = typer.Option(None, "--resume", help="Checkpoint to continue from (exactly)."),
    overrides: list[str] = typer.Option(
        None, "--set", help="TrainConfig override KEY=JSON, e.g. lr=2e-3 or model.num_layers=3."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    holdout: str = typer.Option(
        "test",
        "--holdout",
        help="tablet: hold out the 'test' split or a 'validation' 20 % "
        "of the calibration tablets (for choosing settings).",
    ),
    init: str = typer.Option(
        None,
        "--init",
        help="Fine-tune from a shipped model ('default': the general model, 'tablet'), a "
        "checkpoint.pt or an artifact folder: its architecture and normalisation, a fixed grid "
        "over your data.",
    ),
) -> None:
    """Train WaveMAE (DDP under torchrun) and print the held-out evaluation vs baselines.

    With --init, fine-tune a model into a domain model on the data's own grid.
    """
    import json
    import shlex
    from pathlib import Path

    from wavemae.train import preset
    from wavemae.train.data_source import DataSource
    from wavemae.train.report import format_report
    from wavemae.train.run import run_training

    if (corpus is None) == (data is None):
        raise typer.BadParameter("give exactly one of --corpus and --data")
    try:
        config = preset(preset_name)
        if steps is not None:
            config = config.replace(steps=steps)
        start = None
        if init is not None:
            from wavemae.train.init import load_init

            start = load_init(init)
            config = config.replace(model=start.model_config)
            inherited = start.preprocessing or {}
            config = config.replace(
                normalization=inherited.get("normalization", config.normalization),
                standardize=bool(inherited.get("standardize", config.standardize)),
            )
        for item in overrides or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--set {item!r} must look like KEY=VALUE")
            parsed = json.loads(value) if value[:1] in '[{"-0123456789tfn' else value
            if key.startswith("model."):
                config = config.replace(model={key[len("model.") :]: parsed})
            else:
                config = config.replace(**{key: parsed})
        if start is not None and config.model != start.model_config:
            raise ValueError(
                f"--init {init} fixes the architecture {start.model_config}; "
                "drop the --set model.* overrides"
            )
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(str(exc)) from None
    # The file's absolute path, so export and evaluate find it from any folder later.
    path = None if data is None else str(Path(data).resolve())
    try:
        source = DataSource(corpus=corpus, path=path, holdout=holdout)
        if corpus == "general":
            source = DataSource(corpus=corpus, materials=materials, seq_len=config.model["seq_len"])
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    run_dir = Path(out or f"runs/{corpus or Path(data).stem}-{preset_name}")
    # The command as parsed, defaults spelled out, so the run folder says how to repeat it.
    argv = ["wavemae", "train", *(["--corpus", corpus] if corpus else ["--data", data])]
    argv += ["--preset", preset_name, "--steps", str(config.steps), "--seed", str(seed)]
    argv += ["--out", str(run_dir), "--device", device, *(["--resume", resume] if resume else [])]
    argv += ["--holdout", holdout] if holdout != "test" else []
    argv += ["--materials", str(materials)] if materials is not None else []
    argv += ["--init", init] if init is not None else []
    argv += [f"--set={item}" for item in overrides or []]
    command = shlex.join(argv)
    report = run_training(
        config,
        source,
        run_dir,
        seed=seed,
        device=device,
        resume=resume,
        command=command,
        progress=progress,
        init=start,
    )
    if report is not None:
        typer.echo(format_report(report, title=f"WaveMAE run {run_dir}"))
        typer.echo(f"run folder: {run_dir} (checkpoint.pt, eval.md, loss_curve.png)")


@app.command("evaluate")
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


@app.command("sample")
def sample_cmd(
    out: str = typer.Option(..., "--out", help="Folder to write the sample files into."),
    n: int = typer.Option(5, "--n", help="Spectra per multi-spectrum file."),
) -> None:
    """Write small real sample files (CSV wide/long, JCAMP-DX, NPY/NPZ, SPC, ENVI, SPA)."""
    from wavemae.data.samples import write_samples

    written = write_samples(out, n=n)
    width = max(len(name) for name in written)
    for name, description in written.items():
        typer.echo(f"{name:<{width}}  {description}")
    typer.echo(f"wrote {len(written)} sample files to {out}")


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


@app.command("serve")
def serve_cmd(
    model_dir: str = typer.Option(
        None,
        "--model",
        "--model-dir",
        help="A shipped model's name (default: the general model; tablet: the tablet NIR "
        "model) or an artifact folder. Default: WAVEMAE_MODEL_DIR, else 'default'.",
    ),
    host: str = typer.Option(None, "--host", help="Bind address (default: WAVEMAE_HOST)."),
    port: int = typer.Option(None, "--port", help="Port (default: WAVEMAE_PORT, 8000)."),
    library: str = typer.Option(
        None,
        "--library",
        help="SQLite path or postgresql:// URL (default: WAVEMAE_LIBRARY_URL, "
        "./wavemae-library.sqlite3).",
    ),
) -> None:
    """Serve the model over HTTP (settings: WAVEMAE_* environment variables; see README)."""
    from wavemae_service.serve import serve
    from wavemae_service.settings import Settings

    overrides = {"model_dir": model_dir, "host": host, "port": port, "library_url": library}
    serve(Settings(**{k: v for k, v in overrides.items() if v is not None}))


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what}={text!r} must be comma-separated integers") from None


@app.command("bench")
def bench_cmd(
    mode: str = typer.Argument(
        "all",
        help="engine | serve | baseline | all | search (HQI on the tablet task) | cluster | "
        "cube (server memory while embedding a hyperspectral cube)",
    ),
    model_dir: str = typer.Option(
        None,
        "--model",
        "--model-dir",
        help="Artifact folder or shipped model name (default: the general default model; "
        "search and cluster always measure the tablet model).",
    ),
    out: str = typer.Option(None, "--out", help="Write the results as JSON to this file."),
    markdown: str = typer.Option(None, "--markdown", help="Write the tables as Markdown here."),
    url: str = typer.Option(
        None, "--url", help="serve: a running service on 127.0.0.1 (default: start one)."
    ),
    concurrency: str = typer.Option("1,8,32,64", help="Concurrent clients to measure."),
    bodies: str = typer.Option("json,npy", help="Request bodies: json, npy (application/x-npy)."),
    max_requests: int = typer.Option(4000, help="Per load point: stop after this many answers."),
    max_seconds: float = typer.Option(8.0, help="Per load point: stop after this many seconds."),
    client: str = typer.Option(
        "auto", help="Load generator: wrk (apt-get install wrk), httpx, or auto (wrk if found)."
    ),
    batch_sizes: str = typer.Option("1,2,4,8,16,32,64,128", help="engine: batch sizes."),
    engine_seconds: float = typer.Option(0.5, help="engine: seconds per measured point."),
    threads: str = typer.Option(None, help="engine: thread counts to try (default: 1,all)."),
    checkpoint: str = typer.Option(None, help="engine: checkpoint for the eager weights."),
    env: list[str] = typer.Option(
        None, "--env", help="serve: WAVEMAE_KEY=VALUE setting for the started service (repeat)."
    ),
    profile: str = typer.Option(
        None, "--profile", help="py-spy the started servers under 32-client load; stacks here."
    ),
    cube_shape: str = typer.Option(
        "200x200x256", "--cube-shape", help="cube: ROWSxCOLSxBANDS of the synthetic cube."
    ),
    servers: str = typer.Option(
        "serve,peer,baseline",
        help="baseline/all: servers to load side by side: serve (the service), peer (FastAPI "
        "def endpoint + one ONNX Runtime session), baseline (FastAPI + PyTorch eager).",
    ),
) -> None:
    """Benchmark the encoder in process, the service over HTTP, and the service side by side
    with the obvious ONNX Runtime server (peer) and a PyTorch eager one (baseline)."""
    if mode in ("search", "cluster"):
        _quality_bench(mode, out)
        return
    if mode == "cube":
        _cube_bench(model_dir, cube_shape, env, out)
        return
    from wavemae.bench import modes, peers
    from wavemae.bench.report import print_results, write_json

    if mode not in ("engine", "serve", "baseline", "all"):
        raise typer.BadParameter(
            f"mode={mode!r} must be engine, serve, baseline, all, search or cluster"
        )
    settings = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("WAVEMAE_"):
            raise typer.BadParameter(f"--env {item!r} must look like WAVEMAE_KEY=VALUE")
        settings[key] = value
    plan = modes.LoadPlan(
        concurrencies=_ints(concurrency, "concurrency"),
        bodies=[b.strip() for b in bodies.split(",") if b.strip()],
        max_requests=max_requests,
        max_seconds=max_seconds,
        client=client,
    )
    engine_args = {
        "batch_sizes": _ints(batch_sizes, "batch-sizes"),
        "thread_counts": _ints(threads, "threads") if threads else None,
        "checkpoint": checkpoint,
    }
    server_names = [s.strip() for s in servers.split(",") if s.strip()]
    if not server_names or set(server_names) - set(peers.SERVERS):
        raise typer.BadParameter(f"--servers {servers!r} must name some of {peers.SERVERS}")
    machine_before = modes.machine_info()
    if mode == "engine":
        results = {"engine": modes.engine_mode(model_dir, seconds=engine_seconds, **engine_args)}
    elif mode == "serve":
        results = {
            "serve": modes.serve_mode(
                model_dir,
                url=url,
                plan=plan,
                env=settings,
                profile_dir=profile,
                engine_seconds=engine_seconds,
            )
        }
    elif mode == "baseline":
        results = peers.baseline_mode(
            model_dir,
            plan=plan,
            env=settings,
            servers=server_names,
            profile_dir=profile,
            engine_seconds=engine_seconds,
        )
    else:
        results = peers.all_mode(
            model_dir,
            plan=plan,
            engine_seconds=engine_seconds,
            env=settings,
            servers=server_names,
            profile_dir=profile,
            **engine_args,
        )
    results.setdefault("targets", modes.evaluate_targets(results))
    results["machine"] = {**machine_before, "loadavg_after": modes.machine_info()["loadavg_1_5_15"]}
    print_results(results)
    if out:
        typer.echo(f"wrote {write_json(results, out)}")
    if markdown:
        from pathlib import Path

        from wavemae.bench.report import to_markdown

        Path(markdown).write_text(to_markdown(results), encoding="utf-8")
        typer.echo(f"wrote {markdown}")


def _cube_bench(model_dir: str | None, shape: str, env: list[str] | None, out: str | None) -> None:
    """``cube``: the server's resident memory while it embeds one cube of ``shape``."""
    import json
    from pathlib import Path

    from wavemae.bench.cube import cube_mode, format_cube

    dims = tuple(int(n) for n in shape.lower().split("x") if n.strip().isdigit())
    if len(dims) != 3 or min(dims) < 1:
        raise typer.BadParameter(f"--cube-shape {shape!r} must look like 200x200x256")
    settings = dict(item.partition("=")[::2] for item in env or [])
    if any(not key.startswith("WAVEMAE_") for key in settings):
        raise typer.BadParameter("--env items must look like WAVEMAE_KEY=VALUE")
    result = cube_mode(model_dir, shape=dims, env=settings)  # type: ignore[arg-type]
    typer.echo(format_cube(result))
    if out:
        Path(out).write_text(json.dumps(result, indent=2))
        typer.echo(f"wrote {out}")


def _quality_bench(mode: str, out: str | None) -> None:
    """``search``: HQI variants on the tablet k-NN task; ``cluster``: clustering and maps."""
    import json
    from pathlib import Path

    if mode == "search":
        from wavemae.bench.search import format_search, search_mode

        result = search_mode()
        text = format_search(result)
    else:
        from wavemae.bench.clustering import cluster_mode, format_cluster

        result = cluster_mode()
        text = format_cluster(result)
    typer.echo(text)
    if out:
        Path(out).write_text(json.dumps(result, indent=2, default=str))
        typer.echo(f"wrote {out}")


if __name__ == "__main__":  # pragma: no cover
    app()

"""``wavemae train``: a training run (or a fine-tune with ``--init``) from the command line."""

from __future__ import annotations

import typer


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

"""``wavemae bench``: engine and service speed, search and clustering quality, cube memory."""

from __future__ import annotations

import typer


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what}={text!r} must be comma-separated integers") from None


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

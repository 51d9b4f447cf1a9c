"""The ``wavemae`` command line.

This is the one place where the offline package and the service meet. Each subcommand
imports what it needs inside its own body (``train`` imports torch, ``serve`` the service),
so ``wavemae --help`` is fast and works with either extra installed.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="wavemae",
    help="WaveMAE: masked autoencoder for 1-D spectra — train, export, serve, benchmark.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
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
        None, "--quantize", help="'int8': also write encoder.int8.onnx if faster with "
        "retrieval intact on the held-out spectra."
    ),
    name: str = typer.Option(None, "--name", help="Model name (default: from the checkpoint)."),
    model_version: str = typer.Option(
        None, "--version", help="Model version (default: '<step>-<checkpoint sha256[:8]>')."
    ),
    data: str = typer.Option(
        "tablet:test", "--data", help="Held-out verification spectra as CORPUS[:SPLIT]."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Export a checkpoint to an ONNX + TorchScript artifact folder with a verified manifest."""
    import json
    import shlex
    import sys

    from wavemae.data import load_corpus
    from wavemae.export import export_checkpoint

    corpus, _, split = data.partition(":")
    spectra = load_corpus(corpus, split=split or None)
    folder = export_checkpoint(
        checkpoint, out, data=spectra, name=name, version=model_version, quantize=quantize,
        overwrite=overwrite, command=shlex.join(["wavemae", *sys.argv[1:]]),
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


@app.command("serve")
def serve_cmd(
    model_dir: str = typer.Option(
        None, "--model-dir", help="Artifact folder (default: WAVEMAE_MODEL_DIR, else shipped)."
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


if __name__ == "__main__":  # pragma: no cover
    app()

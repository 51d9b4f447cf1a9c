"""``wavemae export``: a training checkpoint to a verified ONNX + TorchScript artifact folder."""

from __future__ import annotations

import typer


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

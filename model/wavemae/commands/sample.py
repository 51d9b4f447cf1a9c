"""``wavemae sample``: small real sample files in every supported format."""

from __future__ import annotations

import typer


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

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


if __name__ == "__main__":  # pragma: no cover
    app()

"""The ``wavemae`` command line.

This is the one place where the offline package and the service meet. Each subcommand
imports what it needs inside its own body (``train`` imports torch, ``serve`` the service),
so ``wavemae --help`` is fast and works with either extra installed.

This module holds the app, its user-error handling and ``version``; each other command
lives in its own module under :mod:`wavemae.commands` and is registered here, in the
order ``wavemae --help`` lists them.
"""

from __future__ import annotations

import os

import click
import typer
from typer.core import TyperGroup

from wavemae.commands import bench, evaluate, export, sample, serve, train


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


app.command("export")(export.export_cmd)
app.command("train")(train.train_cmd)
app.command("evaluate")(evaluate.evaluate_cmd)
app.command("sample")(sample.sample_cmd)
app.command("serve")(serve.serve_cmd)
app.command("bench")(bench.bench_cmd)


if __name__ == "__main__":  # pragma: no cover
    app()

"""The ``yidai`` command line: one entry point for every job.

Each area registers its commands from ``yidai/cli/commands/<area>.py`` (a ``register(app)``
function); heavy libraries are imported inside the command bodies so ``--help`` stays fast.
User errors (:class:`yidai.core.errors.YidaiError`) print one line and exit with code 2.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from yidai.core.errors import YidaiError

COMMAND_MODULES = (
    "simulate",
    "ingest",
    "features",
    "train",
    "models",
    "serve",
    "limits",
    "monitor",
    "dashboard",
    "pipeline",
    "home",
)

app = typer.Typer(
    name="yidai",
    help="Yidai: credit decisioning and risk analytics for the bank's online ecosystem.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for _name in COMMAND_MODULES:
    importlib.import_module(f"yidai.cli.commands.{_name}").register(app)


def main() -> None:
    """Console entry point: run the app, turning user errors into one clear line."""
    try:
        app()
    except YidaiError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("aborted", err=True)
        sys.exit(130)

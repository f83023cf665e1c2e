"""CLI commands: home (moving or copying a YIDAI_HOME)."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``home`` command group to the root app."""
    group = typer.Typer(help="Move, copy or restore a YIDAI_HOME.", no_args_is_help=True)
    app.add_typer(group, name="home")

    @group.command("move")
    def move(
        old: Path = typer.Argument(..., help="Where the home was made (need not exist)."),
        new: Path = typer.Argument(..., help="Where it is now, or where to copy it."),
    ) -> None:
        """Re-point a home's MLflow store and MLmodel files from OLD to NEW.

        If NEW does not exist, OLD is copied there first; OLD itself is never changed
        (a backup restored elsewhere, a copied or re-mounted home: run it on NEW).
        """
        # deferred: loaded when the command runs, so `yidai --help` starts fast
        from models.registry import relocate_artifacts
        from yidai.core.errors import YidaiError
        from yidai.core.settings import Settings

        if not new.exists():
            if not old.is_dir():
                raise YidaiError(f"neither {new} nor {old} exists: nothing to move")
            shutil.copytree(old, new, symlinks=True)
            typer.echo(f"copied {old} to {new}")
        report = relocate_artifacts(old, Settings(home=new.resolve()))
        rows = sum(report.rows.values())
        typer.echo(
            f"{new}: {rows} artifact location(s) in {report.database} and "
            f"{report.mlmodel_files} MLmodel file(s) now point into this home"
        )

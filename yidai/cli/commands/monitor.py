"""CLI commands: monitor (registered by yidai.cli)."""

from __future__ import annotations

import datetime as dt

import typer

monitor_app = typer.Typer(
    help="Model and decision monitoring: drift, performance, decision rates.",
    no_args_is_help=True,
)


@monitor_app.command("run")
def run(
    as_of: str = typer.Option(..., "--as-of", help="Day (YYYY-MM-DD) to monitor as of."),
    recent_days: int = typer.Option(7, "--recent-days", min=1, help="Current window (days)."),
    threshold: float = typer.Option(0.25, "--threshold", min=0.0, help="PSI alarm level."),
    fail_on_drift: bool = typer.Option(
        True, "--fail-on-drift/--no-fail-on-drift", help="Exit 2 when a PSI passes the level."
    ),
) -> None:
    """Compute drift, performance and decision rates, publish them, and check drift.

    Refuses (nothing published) a missing warehouse or one without ingested rows for the day.
    """
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from rich.console import Console

    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from features.inputs import require_warehouse_day
    from yidai.core.errors import YidaiError
    from yidai.jobs.monitoring import check_drift, run_monitoring

    try:
        day = dt.date.fromisoformat(as_of)
    except ValueError:
        raise YidaiError(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)") from None
    require_warehouse_day(None, day)  # the active engine's tables
    console = Console()
    with console.status("computing monitoring tables"):
        report = run_monitoring(day, recent_days=recent_days, threshold=threshold)
    typer.echo(f"monitoring as of {day} published as {report.version}")
    for row in report.models.itertuples(index=False):
        if getattr(row, "status", "ok") != "ok":
            typer.echo(f"  {row.model}: {row.status}")
            continue
        typer.echo(
            f"  {row.model} v{row.version}: score PSI {row.score_psi:.3f}, "
            f"max feature PSI {row.max_feature_psi:.3f} ({row.n_current} recent vs "
            f"{row.n_reference} in {row.reference_window})"
        )
    for note in report.notes:
        typer.echo(f"  note: {note}")
    if fail_on_drift:
        check_drift(report.drift, threshold)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(monitor_app, name="monitor")

"""CLI commands: limits (registered by yidai.cli)."""

from __future__ import annotations

import datetime as dt

import typer

limits_app = typer.Typer(
    help="Merchant revolving lines: nightly refresh and the published limits.",
    no_args_is_help=True,
)


def _day(value: str) -> dt.date:
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from yidai.core.errors import YidaiError

    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise YidaiError(f"--as-of {value!r} is not a date (YYYY-MM-DD)") from None


@limits_app.command("refresh")
def refresh(
    as_of: str = typer.Option(..., "--as-of", help="Day (YYYY-MM-DD) to re-underwrite as of."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Publish even past the circuit breaker (YIDAI_LIMITS_MAX_CHANGE_SHARE); "
        "needs --reason.",
    ),
    reason: str | None = typer.Option(
        None, "--reason", help="Why the breaker is overridden (logged, recorded with the version)."
    ),
) -> None:
    """Re-underwrite every merchant's line, write a new limits version and publish it.

    Refuses (nothing published) on missing inputs and when the change set would move more of
    the book than the circuit breaker allows, unless --force --reason "...".
    """
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from yidai.core.errors import YidaiError
    from yidai.jobs.limits.refresh import refresh_limits

    if force and not (reason and reason.strip()):
        raise YidaiError('--force needs --reason "why" (it is logged and recorded)')
    if reason is not None and not force:
        raise YidaiError("--reason only goes with --force")
    result = refresh_limits(_day(as_of), progress=progress, force_reason=reason if force else None)
    s = result.summary
    state = "published" if result.published else "written, NOT published (a newer one is live)"
    if result.reused:
        state += " (same inputs: existing version reused)"
    typer.echo(f"limits {result.version} as of {result.as_of}: {state}")
    typer.echo(
        f"merchants {s['merchants']}: new {s['new']}, up {s['increase']}, kept {s['keep']}, "
        f"down {s['decrease']}, frozen {s['freeze']} ({s['newly_frozen']} newly), "
        f"no line {s['no_line']}"
    )
    typer.echo(
        f"committed exposure {s['exposure_before']:,.0f} -> {s['exposure_after']:,.0f} CNY "
        f"({s['exposure_change']:+,.0f})"
    )
    typer.echo(
        f"book moved {s['book_moved']:,} lines ({100 * s['book_change_share']:.1f}%, breaker at "
        f"{100 * s['book_change_limit']:.1f}%)"
        + ("" if s["breaker_applied"] else " - not applied: first publication or reused version")
        + (f"; FORCED past the breaker: {s['forced_reason']}" if s["forced_reason"] else "")
    )


@limits_app.command("show")
def show(
    merchant: str | None = typer.Option(None, "--merchant", "-m", help="One merchant's line."),
    changes: int = typer.Option(0, "--changes", help="Also list this many changes."),
    version: str | None = typer.Option(None, "--version", help="A version (default: live)."),
) -> None:
    """Show the published limits: run summary by grade, one merchant, or the changes."""
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from rich.console import Console
    from rich.table import Table

    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from yidai.core.errors import YidaiError
    from yidai.core.settings import get_settings
    from yidai.jobs.limits import load_published_limits, read_limits_summary, read_limits_table

    serving = get_settings().serving
    console = Console()
    if merchant is not None:
        record = load_published_limits(serving, version).get(merchant)
        if record is None:
            raise YidaiError(f"merchant {merchant!r} is not in the published limits")
        for key, value in record.as_dict().items():
            typer.echo(f"{key:>13}: {value}")
        return
    summary = read_limits_summary(serving, version)
    typer.echo(f"limits {summary['version']} as of {summary['as_of']} ({summary['model']})")
    by_grade = read_limits_table(serving, "summary_by_grade.parquet", version)
    table = Table("grade", "merchants", "lines", "exposure before", "after", "change")
    for row in by_grade.itertuples(index=False):
        table.add_row(
            str(row.grade),
            f"{row.merchants:,}",
            f"{row.lines_after:,}",
            f"{row.exposure_before:,.0f}",
            f"{row.exposure_after:,.0f}",
            f"{row.exposure_change:+,.0f}",
        )
    console.print(table)
    if changes > 0:
        log = read_limits_table(serving, "changes.parquet", version).head(changes)
        console.print(
            log[
                ["merchant_id", "decision", "previous_line", "credit_line", "reason_code"]
            ].to_string(index=False)
        )


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(limits_app, name="limits")

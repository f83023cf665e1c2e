"""CLI commands: pipeline (Airflow environment and scheduler-free DAG runs)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from time import monotonic

import typer

DAG_IDS = ("ingest_daily", "merchant_limits_daily", "train_weekly", "monitoring_daily")


def _day(value: str | None) -> date | None:
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from yidai.core.errors import YidaiError

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise YidaiError(f"--day {value!r} is not an ISO date (YYYY-MM-DD)") from exc


def register(app: typer.Typer) -> None:
    """Add the ``pipeline`` command group to the root app."""
    group = typer.Typer(
        help="Run Yidai's Airflow DAGs locally (project-local AIRFLOW_HOME, no scheduler).",
        no_args_is_help=True,
    )
    app.add_typer(group, name="pipeline")

    @group.command("setup")
    def setup() -> None:
        """Create/upgrade the Airflow metadata DB under AIRFLOW_HOME and the warehouse pool."""
        # deferred: loaded when the command runs, so `yidai --help` starts fast
        from yidai.cli.airflow_local import airflow_home, output_redirected, setup_airflow

        home = airflow_home()
        log_file = home / "setup.log"
        with output_redirected(log_file) as terminal:
            setup_airflow(home)
            print(f"Airflow ready: AIRFLOW_HOME={home} (log: {log_file})", file=terminal)

    @group.command("run")
    def run(
        dag_id: str = typer.Argument(..., help=f"One of: {', '.join(DAG_IDS)}."),
        day: str | None = typer.Option(None, "--day", help="Day to process (YYYY-MM-DD)."),
        history: bool = typer.Option(
            False, "--history", help="ingest_daily only: load every landing day up to --day."
        ),
        backfill_features: bool = typer.Option(
            False,
            "--backfill-features",
            help="ingest_daily only: also rebuild the feature tables of every earlier day.",
        ),
        keep_retries: bool = typer.Option(
            False, "--keep-retries", help="Honour the DAG's retries (default: fail fast)."
        ),
    ) -> None:
        """Run one DAG run in this process (dag.test); it shows in the Airflow UI."""
        # deferred: loaded when the command runs, so `yidai --help` starts fast
        from yidai.cli.airflow_local import run_dag
        from yidai.core.errors import YidaiError

        if dag_id not in DAG_IDS:
            raise YidaiError(f"unknown DAG {dag_id!r}; choose one of {', '.join(DAG_IDS)}")
        if (history or backfill_features) and dag_id != "ingest_daily":
            raise YidaiError("--history and --backfill-features apply to ingest_daily only")
        parsed = _day(day)
        conf: dict[str, object] = (
            {"history": history, "backfill_features": backfill_features}
            if dag_id == "ingest_daily"
            else {}
        )
        if parsed is not None:
            conf["day"] = parsed.isoformat()
        outcome = run_dag(dag_id, parsed, conf, fail_fast=not keep_retries)
        alerts = f" (alerts failed: {', '.join(outcome.alerts)})" if outcome.alerts else ""
        typer.echo(f"{dag_id} finished: run {outcome.run_id}{alerts}")

    @group.command("history")
    def history(
        daily_runs: int = typer.Option(
            3, "--daily-runs", min=0, help="Days left for the incremental daily runs."
        ),
        log_file: Path | None = typer.Option(
            None, "--log-file", help="Send Airflow's and the tasks' logs to this file."
        ),
        backfill_features: bool = typer.Option(
            False,
            "--backfill-features",
            help="The history run also rebuilds the feature tables of every earlier day.",
        ),
    ) -> None:
        """The whole landing history in one run, then a few daily runs (used by the demo)."""
        # deferred: loaded when the command runs, so `yidai --help` starts fast
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        # deferred: loaded when the command runs, so `yidai --help` starts fast
        from yidai.cli.airflow_local import demo_plan, output_redirected, run_dag
        from yidai.core.errors import YidaiError
        from yidai.jobs.pipeline import landing_days

        plan = demo_plan(landing_days(), daily_runs, backfill_features=backfill_features)
        with output_redirected(log_file) as terminal:
            console = Console(file=terminal)
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} runs"),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console) as progress:
                bar = progress.add_task("DAG runs", total=len(plan))
                for dag_id, day, conf in plan:
                    label = f"{dag_id} {day}{' (history)' if conf.get('history') else ''}"
                    progress.update(bar, description=label)
                    started = monotonic()
                    try:
                        outcome = run_dag(dag_id, day, conf)
                    except YidaiError as exc:
                        where = f"; full log: {log_file}" if log_file else ""
                        raise YidaiError(f"{exc}{where}") from exc
                    alerts = (
                        f" [yellow]alert: {', '.join(outcome.alerts)} failed (see the log)[/]"
                        if outcome.alerts
                        else ""
                    )
                    console.print(f"{label}: ok in {monotonic() - started:.1f} s{alerts}")
                    progress.advance(bar)

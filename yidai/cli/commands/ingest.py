"""CLI commands: contracts and ingestion (registered by yidai.cli)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``contracts`` and ``ingest`` to the root app."""

    @app.command("contracts")
    def contracts(
        write: Path | None = typer.Option(
            None, "--write", help="Write the Markdown catalog to this file."
        ),
    ) -> None:
        """Print (or write) the data contracts of every landing source as Markdown."""
        # deferred: loaded when the command runs, so `yidai --help` starts fast
        from yidai.core.contracts_doc import render_contracts_markdown

        text = render_contracts_markdown()
        if write is None:
            typer.echo(text)
        else:
            write.parent.mkdir(parents=True, exist_ok=True)
            write.write_text(text, encoding="utf-8")
            typer.echo(f"wrote {write}")

    @app.command("ingest")
    def ingest(
        landing: Path | None = typer.Option(
            None, "--landing", help="Landing zone (default: settings landing_dir)."
        ),
        warehouse: Path | None = typer.Option(
            None, "--warehouse", help="DuckDB warehouse file (default: settings warehouse_path)."
        ),
        source: list[str] | None = typer.Option(
            None, "--source", help="Only this source (repeatable). Default: every contract."
        ),
        day: list[str] | None = typer.Option(
            None, "--day", help="Only this delivery day YYYY-MM-DD (repeatable). Default: all."
        ),
        memory_limit: str = typer.Option("1GB", "--memory-limit", help="DuckDB memory limit."),
        batch_rows: int = typer.Option(
            2_000_000,
            "--batch-rows",
            min=1,
            help="Commit consecutive files of a source together up to this many rows.",
        ),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar."),
        max_lateness_days: int | None = typer.Option(
            None,
            "--max-lateness-days",
            min=0,
            help="Quarantine event rows more than this many days older than their delivery "
            "day (default: settings ingest_max_lateness_days, 365).",
        ),
    ) -> None:
        """Load new landing files into the warehouse, enforcing the data contracts.

        Bad rows go to the `quarantine` table with the reason; each file is recorded in
        `ingest_manifest` with its checksum and reconciled counts. Already ingested files
        are skipped. Exits non-zero, naming them, if any file failed.
        """
        # deferred: loaded when the command runs, so `yidai --help` starts fast
        from yidai.core.settings import get_settings
        from yidai.ingest import ingest_landing

        settings = get_settings()
        report = ingest_landing(
            landing or settings.landing,
            warehouse or settings.warehouse,
            sources=source or None,
            days=day or None,
            progress=progress,
            memory_limit=memory_limit,
            batch_rows=batch_rows,
            max_lateness_days=max_lateness_days,
        )
        _print_summary(report)
        report.raise_for_failures()


def _print_summary(report: object) -> None:
    """A table per source of files and rows, then every failed file on its own line."""
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from yidai.ingest import IngestReport

    assert isinstance(report, IngestReport)
    table = Table(title=f"ingest into {report.warehouse_path} ({report.seconds:.1f} s)")
    for header in (
        "source",
        "files",
        "skip",
        "fail",
        "landed",
        "loaded",
        "quarant.",
        "late",
    ):
        table.add_column(header, justify="left" if header == "source" else "right")
    for source, row in report.by_source().items():
        table.add_row(
            source,
            *(
                f"{row[k]:,}"
                for k in (
                    "loaded",
                    "skipped",
                    "failed",
                    "landed",
                    "rows_loaded",
                    "quarantined",
                    "late",
                )
            ),
        )
    console = Console(stderr=False)
    console.print(table)
    err = Console(stderr=True)
    if report.skipped_entries:
        err.print(
            f"{len(report.skipped_entries)} landing entr"
            f"{'y' if len(report.skipped_entries) == 1 else 'ies'} skipped for their names:",
            highlight=False,
        )
    for entry in report.skipped_entries:
        err.print(
            f"[yellow]skipped[/] {escape(entry.path)}: {escape(entry.reason)}",
            highlight=False,
            soft_wrap=True,
        )
    for failed in report.failed:
        err.print(f"[red]failed[/] {failed.describe_error()}", highlight=False, soft_wrap=True)

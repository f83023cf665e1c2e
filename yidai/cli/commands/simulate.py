"""CLI commands: simulate (registered by yidai.cli)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the root app."""

    @app.command("simulate")
    def simulate_command(
        preset: str = typer.Option("demo", "--preset", help="Size preset: tiny, demo or large."),
        seed: int | None = typer.Option(
            None, "--seed", help="Random seed (default: settings.seed)."
        ),
        customers: int | None = typer.Option(None, "--customers", help="Number of customers."),
        merchants: int | None = typer.Option(None, "--merchants", help="Number of merchants."),
        smes: int | None = typer.Option(None, "--smes", help="Number of SMEs."),
        sellers: int | None = typer.Option(None, "--sellers", help="Number of mall sellers."),
        months: int | None = typer.Option(None, "--months", help="Length of the period in months."),
        defect_rate: float | None = typer.Option(
            None, "--defect-rate", help="Share of rows with a data-quality defect (0 disables)."
        ),
        chunk_size: int | None = typer.Option(
            None, "--chunk-size", help="Entities simulated at a time (bounds memory)."
        ),
        landing: Path | None = typer.Option(
            None, "--landing", help="Landing zone folder (default: settings.landing)."
        ),
        truth: Path | None = typer.Option(
            None, "--truth", help="Truth folder (default: settings.truth)."
        ),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Replace the sources of a non-empty landing folder."
        ),
    ) -> None:
        """Simulate the bank's ecosystem into the landing zone, with the ground truth apart."""
        # deferred: loaded when the command runs, so `yidai --help` starts fast
        from rich.console import Console
        from rich.table import Table

        # deferred: loaded when the command runs, so `yidai --help` starts fast
        from simulator import SimConfig, simulate
        from simulator.core import prepare_output
        from yidai.core.settings import get_settings

        settings = get_settings()
        config = SimConfig.preset(
            preset,
            seed=seed if seed is not None else settings.seed,
            n_customers=customers,
            n_merchants=merchants,
            n_smes=smes,
            n_mall_sellers=sellers,
            months=months,
            defect_rate=defect_rate,
            chunk_size=chunk_size,
            performance_months=settings.performance_months,  # the truth on the label's window
        )
        landing_dir = landing or settings.landing
        truth_dir = truth or settings.truth
        prepare_output(landing_dir, truth_dir, overwrite)
        summary = simulate(config, landing_dir, truth_dir, progress=True, overwrite=overwrite)
        table = Table(title=f"simulated {preset} (seed {config.seed}) in {summary.seconds:.1f} s")
        table.add_column("source")
        table.add_column("rows", justify="right")
        table.add_column("files", justify="right")
        for source, rows in summary.rows.items():
            table.add_row(source, f"{rows:,}", f"{summary.files.get(source, 0):,}")
        table.add_row("total", f"{summary.total_rows:,}", f"{sum(summary.files.values()):,}")
        console = Console()
        console.print(table)
        truth_rows = ", ".join(f"{k} {v:,}" for k, v in summary.truth_rows.items())
        console.print(
            f"{summary.rows_per_second:,.0f} rows/s; landing: {summary.landing}; "
            f"truth: {summary.truth} ({truth_rows})"
        )

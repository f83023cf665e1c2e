"""CLI commands: features (registered by yidai.cli)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

features_app = typer.Typer(
    help="Feature store: build feature tables, publish the online snapshot, catalog.",
    no_args_is_help=True,
)


def _parse_day(value: str, option: str) -> dt.date:
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from yidai.core.errors import YidaiError

    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise YidaiError(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


def _sets(names: list[str] | None) -> list[str] | None:
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from features.definitions import get_feature_set

    if not names:
        return None
    return [get_feature_set(n).name for n in names]


@features_app.command("build")
def build(
    as_of: str = typer.Option(..., "--as-of", help="Day (YYYY-MM-DD) whose close to build."),
    from_day: str | None = typer.Option(
        None, "--from", help="Also build the point-in-time history from this day."
    ),
    feature_set: list[str] | None = typer.Option(
        None, "--feature-set", "-f", help="Only these feature sets (repeatable)."
    ),
) -> None:
    """Build the feature tables in the warehouse as of a day (re-running replaces it)."""
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from rich.progress import Progress

    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from features.engine import build_features, build_features_history
    from features.inputs import require_ingested_day
    from yidai.core.settings import get_settings
    from yidai.core.warehouse import connect_existing

    day = _parse_day(as_of, "--as-of")
    sets = _sets(feature_set)
    warehouse = get_settings().warehouse
    con = connect_existing(warehouse)
    try:
        require_ingested_day(con, day, warehouse)
        with Progress(transient=True) as progress:
            task = progress.add_task("building features", total=2 if from_day else 1)
            if from_day:
                start = _parse_day(from_day, "--from")
                rows = build_features_history(con, start, day - dt.timedelta(days=1), sets)
                typer.echo(f"history {start}..{day - dt.timedelta(days=1)}: {rows}")
                progress.advance(task)
            rows = build_features(con, day, sets)
            progress.advance(task)
        typer.echo(f"as of {day}: {rows}")
    finally:
        con.close()


@features_app.command("publish")
def publish(
    as_of: str = typer.Option(..., "--as-of", help="Built day to publish."),
    keep: int = typer.Option(3, help="Snapshots kept per feature set."),
) -> None:
    """Publish the online snapshot of every feature set (atomic pointer swap)."""
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from features.serving import publish_snapshot
    from yidai.core.settings import get_settings

    settings = get_settings()
    out = publish_snapshot(
        settings.warehouse, settings.serving, _parse_day(as_of, "--as-of"), keep=keep
    )
    for name, path in out.items():
        typer.echo(f"{name}: {path}")


@features_app.command("catalog")
def catalog(
    write: Path | None = typer.Option(None, "--write", help="Write the Markdown to this file."),
) -> None:
    """Print (or write) the feature catalog generated from the declarations."""
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from features.catalog import render_catalog

    text = render_catalog()
    if write is None:
        typer.echo(text)
    else:
        write.parent.mkdir(parents=True, exist_ok=True)
        write.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {write}")


@features_app.command("lock")
def lock() -> None:
    """Record the current fingerprints in features/feature_sets.lock.json (after a review)."""
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from features.declarations import LOCK_PATH, write_lock
    from features.definitions import FEATURE_SETS

    write_lock(FEATURE_SETS)
    typer.echo(f"wrote {LOCK_PATH}")


@features_app.command("training-set")
def training_set(
    feature_set: str = typer.Argument(..., help="e.g. personal_credit_v2, payment_fraud_v1."),
    as_of: str = typer.Option(..., "--as-of", help="Labels as known at the end of this day."),
    out: Path = typer.Option(..., "--out", help="Parquet file to write."),
    include_declined: bool = typer.Option(False, help="Credit: keep unlabelled applications."),
) -> None:
    """Write a point-in-time training set (spine + features) to Parquet."""
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from features.definitions import get_feature_set
    from features.inputs import require_ingested_day
    from features.training import CREDIT_FEATURE_SETS, build_training_set, credit_spine, fraud_spine
    from yidai.core.errors import YidaiError
    from yidai.core.settings import get_settings
    from yidai.core.warehouse import connect_existing

    fs = get_feature_set(feature_set)
    day = _parse_day(as_of, "--as-of")
    warehouse = get_settings().warehouse
    con = connect_existing(warehouse)
    try:
        require_ingested_day(con, day, warehouse)
        # any version of a credit product's set (v1 stays buildable to compare versions)
        bases = {get_feature_set(v).base_name: k for k, v in CREDIT_FEATURE_SETS.items()}
        product = bases.get(fs.base_name)
        if product is None:
            spine = fraud_spine(con, day)
        else:
            spine = credit_spine(con, product, day, include_declined=include_declined)
        if spine.empty:
            raise YidaiError(
                f"no {fs.name} training rows as of {day} in {warehouse} (no "
                f"{'applications' if product else 'events'} to label yet); {out} not written"
            )
        df = build_training_set(con, spine, fs.name)
    finally:
        con.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out, index=False)
    typer.echo(f"wrote {len(df)} rows x {len(fs.columns)} features to {out}")


@features_app.command("parity")
def parity_command(
    as_of: str = typer.Option(..., "--as-of", help="Day (YYYY-MM-DD) whose profiles to compare."),
    engine: str = typer.Option(
        "spark", "--engine", help="The engine to compare with DuckDB (spark)."
    ),
    feature_set: list[str] | None = typer.Option(
        None, "--feature-set", "-f", help="Only these feature sets (default: the active ones)."
    ),
    lake: Path | None = typer.Option(
        None,
        "--lake",
        help="Lake root to read (default: the lake_dir setting; if it holds "
        "no data, the DuckDB warehouse is exported to a temporary lake first).",
    ),
) -> None:
    """Build the feature sets with DuckDB and with ENGINE on the same data and compare: rows
    and the largest relative difference per feature; exits 0 only if every count matches and
    every value is within 1e-9 relative."""
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from rich.console import Console
    from rich.table import Table

    # deferred: loaded when the command runs (pyspark starts only here)
    from features.spark import PARITY_TOLERANCE, parity
    from yidai.core.errors import YidaiError

    if engine != "spark":
        raise YidaiError(f"--engine {engine!r}: only spark can be compared with duckdb")
    day = _parse_day(as_of, "--as-of")
    results = parity(day, _sets(feature_set), lake=lake)
    table = Table(title=f"feature parity duckdb vs spark as of {day}")
    for column in ("set/entity", "rows duckdb", "rows spark", "feature", "max rel diff", "ok"):
        table.add_column(column)
    for r in results:
        for i, (feature, diff) in enumerate(sorted(r.max_rel_diff.items())):
            first = i == 0
            table.add_row(
                r.name if first else "",
                str(r.rows_duckdb) if first else "",
                str(r.rows_spark) if first else "",
                feature,
                f"{diff:.3g}",
                "yes" if diff <= PARITY_TOLERANCE else "NO",
            )
        if r.rows_duckdb != r.rows_spark:
            table.add_row(r.name, str(r.rows_duckdb), str(r.rows_spark), "(row count)", "", "NO")
    Console().print(table)
    bad = [r.name for r in results if not r.ok]
    if bad:
        typer.echo(f"parity FAILED for {', '.join(bad)}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"parity ok: {len(results)} profile(s), counts equal, values within "
        f"{PARITY_TOLERANCE:g} relative"
    )


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(features_app, name="features")

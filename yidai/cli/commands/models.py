"""CLI commands: models (registered by yidai.cli)."""

from __future__ import annotations

import typer

from yidai.core.catalogue import MODEL_NAMES

models_app = typer.Typer(
    help="The model registry: versions with their aliases and metrics; manual promotion.",
    no_args_is_help=True,
)


@models_app.command("list")
def list_models(
    model: list[str] = typer.Option(
        [],
        "--model",
        "-m",
        help="Only this model (repeatable), with its scorecard challenger; default: all.",
    ),
    latest: int = typer.Option(3, "--latest", help="Versions per model, newest first."),
) -> None:
    """Show the registered versions: aliases, OOT metric, oracle gap and the gate's reason."""
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from rich.console import Console
    from rich.table import Table

    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from models.challengers import credit_models, scorecard_name
    from models.registry import list_versions
    from models.training import get_spec

    chosen = [get_spec(n).name for n in model] or list(MODEL_NAMES)
    names = [
        name for n in chosen for name in (n, *([scorecard_name(n)] if n in credit_models() else []))
    ]
    rows = list_versions(names, latest=latest)
    if not rows:
        typer.echo(f"no registered versions of {', '.join(names)} (train them: yidai train --all)")
        return
    table = Table("model", "version", "alias", "registered (UTC)", "OOT rows (event rate)",
                  "OOT metric", "oracle gap", "gate reason", title="Registered models")  # fmt: skip
    for row in rows:
        base = row.name.removesuffix("_scorecard")
        m, primary = row.metrics, get_spec(base).primary_metric
        value, gap = m.get(primary), m.get("oracle_gap")
        table.add_row(
            row.name,
            row.version,
            ", ".join(row.aliases) or "-",
            row.created.strftime("%Y-%m-%d %H:%M"),
            f"{m['oot_rows']:,.0f} ({m['oot_event_rate']:.2%})" if "oot_rows" in m else "-",
            "-" if value is None else f"{primary.removeprefix('oot_')} {value:.4f}",
            "-" if gap is None else f"{gap:+.4f}",
            row.gate_reason,
        )
    Console().print(table)


@models_app.command("promote")
def promote_version(
    model: str = typer.Argument(..., help="Registered model, e.g. merchant_pd."),
    version: str = typer.Argument(..., help="Version to make champion."),
    reason: str = typer.Option(..., "--reason", help="Why (kept on the version, audited)."),
) -> None:
    """Make a version the champion by hand (the previous champion becomes challenger)."""
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from models.registry import promote
    from models.training import get_spec

    promote(get_spec(model).name, version, reason=reason)
    typer.echo(f"{model} v{version} is now champion ({reason})")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(models_app, name="models")

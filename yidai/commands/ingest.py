"""CLI commands: contracts and ingestion (registered by yidai.cli)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``contracts`` (and, later, ``ingest``) to the root app."""

    @app.command("contracts")
    def contracts(
        write: Path | None = typer.Option(
            None, "--write", help="Write the Markdown catalog to this file."
        ),
    ) -> None:
        """Print (or write) the data contracts of every landing source as Markdown."""
        from yidai.contracts_doc import render_contracts_markdown

        text = render_contracts_markdown()
        if write is None:
            typer.echo(text)
        else:
            write.parent.mkdir(parents=True, exist_ok=True)
            write.write_text(text, encoding="utf-8")
            typer.echo(f"wrote {write}")

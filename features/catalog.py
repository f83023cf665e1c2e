"""The feature catalog (``docs/features.md``), generated from the declarations."""

from __future__ import annotations

from features.definitions import FEATURE_SETS
from features.sources import SOURCES

_MONOTONE = {1: "+1 (more never lowers risk)", -1: "-1 (more never raises risk)", 0: ""}


def render_catalog() -> str:
    """Markdown listing every feature set and feature with its description."""
    lines = [
        "# Feature catalog",
        "",
        "Generated from `features/definitions.py` by `yidai features catalog --write "
        "docs/features.md`; do not edit by hand.",
        "",
        "A profile feature as of day D covers events with `ts < D + 1 day`; a decision at time "
        "t reads the profile as of the day before t's day (the snapshot published at the "
        "previous close) plus request-time features (window `now`, or `1h`/`24h` velocity "
        "from the payer's recent events), computed by the same function online and offline.",
        "",
    ]
    for fs in FEATURE_SETS.values():
        lines += [
            f"## `{fs.name}`",
            "",
            f"{fs.description} Entity: `{fs.entity}`. Version {fs.version}, "
            f"fingerprint `{fs.fingerprint}`, {len(fs.columns)} columns.",
            "",
            "| # | feature | entity | source | window | monotone | reason group | description |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for i, f in enumerate(fs.features, 1):
            source = f.source
            if f.source in SOURCES:
                rel = SOURCES[f.source].relation.strip()
                source = f"{f.source} ({rel if ' ' not in rel else 'query'})"
            lines.append(
                f"| {i} | `{f.name}` | {f.entity} | {source} | {f.window} | "
                f"{_MONOTONE[f.monotone]} | {f.reason_group} | {f.description} |"
            )
        lines.append("")
    return "\n".join(lines)

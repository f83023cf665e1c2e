"""The dashboards' tables: publish and read an area's Parquet tables (``<serving>/portfolio``).

Layout of one area, through the publish store (:mod:`yidai.core.publishing`)::

    <area>/<version>/<table>.parquet, meta.json
    <area>/CURRENT            # plain text naming the current <version> (kept as deployed)

A writer fills a fresh version folder, then swaps ``CURRENT`` to it, so a reader sees the old
or the new version, never a mix.  Readers never touch the DuckDB warehouse and so keep working
while a pipeline run holds its write lock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from yidai.core import publishing
from yidai.core.errors import YidaiError

TABLES_LAYOUT = publishing.Layout(versions="", manifest="meta.json", pointer="text")
KEEP_VERSIONS = 3


def current_version(area: Path) -> str | None:
    """The version ``CURRENT`` names, or None when nothing was published (or it vanished)."""
    version = publishing.current_version(area, TABLES_LAYOUT)
    if version is None or not publishing.version_dir(area, version, TABLES_LAYOUT).is_dir():
        return None
    return version


def table_path(area: Path, name: str, version: str | None = None) -> Path | None:
    """Path of a published table in the given (default: current) version, if it exists."""
    version = version or current_version(area)
    if version is None:
        return None
    path = publishing.version_dir(area, version, TABLES_LAYOUT) / f"{name}.parquet"
    return path if path.exists() else None


def read_table(area: Path, name: str, version: str | None = None) -> pd.DataFrame | None:
    """A published table as a DataFrame, or None when it has not been published."""
    path = table_path(area, name, version)
    return None if path is None else pd.read_parquet(path)


def read_meta(area: Path, version: str | None = None) -> dict[str, object]:
    """The ``meta.json`` of a version (empty when absent)."""
    version = version or current_version(area)
    if version is None or not publishing.is_complete(area, version, TABLES_LAYOUT):
        return {}
    return publishing.read_manifest(area, version, TABLES_LAYOUT)


def _new_version(area: Path) -> str:
    """A fresh version name, ordered by time (``v<UTC timestamp to the microsecond>``)."""
    while True:
        version = "v" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        if not publishing.version_dir(area, version, TABLES_LAYOUT).exists():
            return version


def publish_tables(
    area: Path,
    tables: dict[str, pd.DataFrame],
    meta: dict[str, object] | None = None,
    *,
    keep: int = KEEP_VERSIONS,
) -> str:
    """Write ``tables`` as a new version of ``area`` and swap ``CURRENT`` to it; return the version.

    Nothing becomes visible until every file is written: a failure re-raises the writer's
    error (e.g. ``OSError``), leaves the old version current and removes the partial folder.
    The ``keep`` newest versions are retained.
    """
    if not tables:
        raise YidaiError(f"nothing to publish under {area}")
    area.mkdir(parents=True, exist_ok=True)
    version = _new_version(area)
    info: dict[str, object] = {"version": version, "tables": {n: len(f) for n, f in tables.items()}}
    info.update(meta or {})

    def fill(tmp: Path) -> None:
        for name, frame in tables.items():
            frame.to_parquet(tmp / f"{name}.parquet", index=False)

    try:
        publishing.write_version(area, version, info, fill, TABLES_LAYOUT)
    except YidaiError as exc:  # keep this module's contract: the writer's own error
        raise (exc.__cause__ or exc) from None
    publishing.publish(area, version, layout=TABLES_LAYOUT)
    if keep > 0:
        publishing.prune(area, keep, TABLES_LAYOUT)
    return version

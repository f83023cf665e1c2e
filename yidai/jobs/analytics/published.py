"""Published tables for online readers: versioned folders and an atomically swapped pointer.

Layout of one area (e.g. ``<serving>/portfolio``)::

    <area>/<version>/<table>.parquet
    <area>/CURRENT            # text file naming the current <version>

A writer fills a fresh version folder, then replaces ``CURRENT`` with :func:`os.replace`, so a
reader sees the old or the new version, never a mix.  Readers never touch the DuckDB warehouse
and so keep working while a pipeline run holds its write lock.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from yidai.core.errors import YidaiError

POINTER = "CURRENT"
KEEP_VERSIONS = 3


def current_version(area: Path) -> str | None:
    """The version ``CURRENT`` names, or None when nothing was published (or it vanished)."""
    pointer = area / POINTER
    try:
        version = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not version or not (area / version).is_dir():
        return None
    return version


def table_path(area: Path, name: str, version: str | None = None) -> Path | None:
    """Path of a published table in the given (default: current) version, if it exists."""
    version = version or current_version(area)
    if version is None:
        return None
    path = area / version / f"{name}.parquet"
    return path if path.exists() else None


def read_table(area: Path, name: str, version: str | None = None) -> pd.DataFrame | None:
    """A published table as a DataFrame, or None when it has not been published."""
    path = table_path(area, name, version)
    return None if path is None else pd.read_parquet(path)


def read_meta(area: Path, version: str | None = None) -> dict[str, object]:
    """The ``meta.json`` of a version (empty when absent)."""
    version = version or current_version(area)
    if version is None:
        return {}
    path = area / version / "meta.json"
    if not path.exists():
        return {}
    data: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return data


def publish_tables(
    area: Path,
    tables: dict[str, pd.DataFrame],
    meta: dict[str, object] | None = None,
    *,
    keep: int = KEEP_VERSIONS,
) -> str:
    """Write ``tables`` as a new version of ``area`` and swap ``CURRENT`` to it; return the version.

    Nothing becomes visible until every file is written: a failure leaves the old version
    current and removes the partial folder.  The ``keep`` newest versions are retained.
    """
    if not tables:
        raise YidaiError(f"nothing to publish under {area}")
    area.mkdir(parents=True, exist_ok=True)
    version = "v" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    staging = area / f".{version}.tmp"
    try:
        staging.mkdir()
        for name, frame in tables.items():
            frame.to_parquet(staging / f"{name}.parquet", index=False)
        info: dict[str, object] = {
            "version": version,
            "tables": {n: len(f) for n, f in tables.items()},
        }
        info.update(meta or {})
        (staging / "meta.json").write_text(json.dumps(info, default=str, indent=1), "utf-8")
        staging.rename(area / version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    tmp_pointer = area / f".{POINTER}.{version}.tmp"
    tmp_pointer.write_text(version, encoding="utf-8")
    os.replace(tmp_pointer, area / POINTER)
    _prune(area, keep)
    return version


def _prune(area: Path, keep: int) -> None:
    """Remove all but the ``keep`` newest versions (never the current one)."""
    current = current_version(area)
    versions = sorted(p.name for p in area.iterdir() if p.is_dir() and p.name.startswith("v"))
    for old in versions[:-keep] if keep > 0 else []:
        if old != current:
            shutil.rmtree(area / old, ignore_errors=True)

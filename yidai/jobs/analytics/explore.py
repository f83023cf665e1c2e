"""Exploration helpers for notebooks: query a landing zone with DuckDB without ingesting it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import duckdb

from yidai.core.contracts import CONTRACTS
from yidai.core.errors import YidaiError

log = logging.getLogger(__name__)
PARQUET_MAGIC = b"PAR1"


def _is_parquet(path: Path) -> bool:
    """True when the file starts and ends with Parquet's magic bytes (cheap sanity check)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
            fh.seek(-4, 2)
            return head == PARQUET_MAGIC and fh.read(4) == PARQUET_MAGIC
    except OSError:
        return False


def landing_views(landing: Path, sources: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per landing source, named like its warehouse table.

    For exploration only: the views read the raw daily files, so defects (duplicates, bad
    rows) are still in them; malformed files are left out with a warning.  The warehouse
    (``yidai ingest``) is the checked version.
    """
    con = duckdb.connect()
    for source in sources or CONTRACTS:
        folder = Path(landing) / source
        files = sorted(folder.glob("*/*.parquet"))
        good = [f for f in files if _is_parquet(f)]
        if len(good) < len(files):
            log.warning("%s: left out %d malformed file(s)", source, len(files) - len(good))
        if not good:
            raise YidaiError(f"no readable Parquet files for {source} under {folder}")
        listing = ", ".join(f"'{f}'" for f in good)
        con.execute(
            f"CREATE VIEW {source} AS SELECT * FROM read_parquet([{listing}], union_by_name = true)"
        )
    return con

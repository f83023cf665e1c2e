"""The lake: validated tables as Parquet, partitioned by source and event date, read by both
engines (the Spark engine writes it; DuckDB reads it with ``read_parquet`` and hive
partitioning), so a bank can move between engines without migrating data.

Layout under the lake root (``YIDAI_LAKE_DIR``, default ``<home>/lake``)::

    <source>/event_date=YYYY-MM-DD/<run>-<n>.parquet    contract columns + _batch_id, _ingested_at
    _quarantine/<source>/<run>-<n>.parquet               source, file, row_number, reason, ...
    _manifest/<source>-<run>.json                        the run's files (one record per file)
    _manifest/failed/<sha of path>.json                  a file that could not be loaded
    _staging/<run>/                                      a run being written (never read)

A run (the new files of one source) is written under ``_staging``, its files moved into the
partitions, and committed by writing its manifest (temporary file, fsync, rename): only data
files of a committed run are read (:func:`committed_files`), and a crashed run's leftovers are
removed by the next ingestion (:func:`clean_uncommitted`).  Re-ingesting a file whose path and
checksum are in a manifest is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb

from yidai.core.contracts import CONTRACTS, get_contract
from yidai.core.spark import SparkSql

MANIFEST = "_manifest"
QUARANTINE = "_quarantine"
STAGING = "_staging"
PARTITION = "event_date"
MANIFEST_COLUMNS = (
    "path",
    "source",
    "delivery_day",
    "checksum",
    "file_bytes",
    "rows_landed",
    "rows_loaded",
    "rows_quarantined",
    "rows_late",
    "status",
    "batch_id",
    "run_id",
    "started_at",
    "finished_at",
    "error",
)


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` whole or not at all (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def manifest_records(lake: Path) -> list[dict[str, Any]]:
    """Every manifest record (loaded files of committed runs, then failed files)."""
    out: list[dict[str, Any]] = []
    root = lake / MANIFEST
    if not root.exists():
        return out
    for path in sorted(root.glob("*.json")):
        out.extend(json.loads(path.read_text(encoding="utf-8")))
    for path in sorted((root / "failed").glob("*.json")):
        out.append(json.loads(path.read_text(encoding="utf-8")))
    return out


def failed_record_path(lake: Path, rel_path: str) -> Path:
    """Where the failure record of a landing file is kept."""
    return lake / MANIFEST / "failed" / f"{hashlib.sha256(rel_path.encode()).hexdigest()}.json"


def committed_runs(lake: Path) -> set[str]:
    """The run ids of the committed runs."""
    return {r["run_id"] for r in manifest_records(lake) if r["status"] == "loaded"}


def _run_of(path: Path) -> str:
    return path.name.rsplit("-", 1)[0]


def committed_files(lake: Path, source: str, runs: set[str] | None = None) -> list[Path]:
    """The data files of ``source`` written by committed runs."""
    runs = committed_runs(lake) if runs is None else runs
    table = lake / source
    if not table.exists():
        return []
    return sorted(p for p in table.glob(f"{PARTITION}=*/*.parquet") if _run_of(p) in runs)


def clean_uncommitted(lake: Path) -> list[Path]:
    """Remove what a crashed run left (staging, data and quarantine files of runs without a
    manifest); returns the removed data files."""
    shutil.rmtree(lake / STAGING, ignore_errors=True)
    runs = committed_runs(lake)
    removed = []
    for source in CONTRACTS:
        for root in (lake / source, lake / QUARANTINE / source):
            if root.exists():
                for path in root.rglob("*.parquet"):
                    if _run_of(path) not in runs:
                        path.unlink()
                        removed.append(path)
    return removed


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _sql_list(paths: Iterable[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def attach_duckdb(con: duckdb.DuckDBPyConnection, lake: Path) -> dict[str, int]:
    """Create a DuckDB view per contract over the lake's committed files (read_parquet with
    hive partitioning), plus ``quarantine`` and ``ingest_manifest``; rows per table."""
    runs = committed_runs(lake)
    counts: dict[str, int] = {}
    for name, contract in CONTRACTS.items():
        files = committed_files(lake, name, runs)
        cols = ", ".join(f'CAST(NULL AS {c.dtype}) AS "{c.name}"' for c in contract.columns)
        if files:
            body = (
                f"SELECT * EXCLUDE ({PARTITION}) FROM read_parquet({_sql_list(files)}, "
                "hive_partitioning = true)"
            )
        else:
            body = f"SELECT {cols}, CAST(NULL AS VARCHAR) AS _batch_id, "
            body += "CAST(NULL AS TIMESTAMP) AS _ingested_at WHERE false"
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {body}')
        row = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()
        counts[name] = int(row[0]) if row else 0
    quarantined = (
        [p for p in (lake / QUARANTINE).rglob("*.parquet") if _run_of(p) in runs]
        if (lake / QUARANTINE).exists()
        else []
    )
    if quarantined:
        con.execute(
            f"CREATE OR REPLACE VIEW quarantine AS SELECT * FROM read_parquet("
            f"{_sql_list(quarantined)}, union_by_name = true)"
        )
    else:
        con.execute(
            "CREATE OR REPLACE VIEW quarantine AS SELECT CAST(NULL AS VARCHAR) AS source, "
            "CAST(NULL AS VARCHAR) AS file, CAST(NULL AS BIGINT) AS row_number, "
            "CAST(NULL AS VARCHAR) AS reason, CAST(NULL AS VARCHAR) AS record_json, "
            "CAST(NULL AS VARCHAR) AS _batch_id, CAST(NULL AS TIMESTAMP) AS _ingested_at "
            "WHERE false"
        )
    return counts


#: What :func:`attach_spark` last attached per (session, view): the lake and the files read.
_attached: dict[tuple[int, str], tuple[str, tuple[Path, ...]]] = {}


def attach_spark(spark: Any, lake: Path, names: Iterable[str]) -> None:
    """Spark temporary views named like the contract tables over the lake's committed files
    (an empty typed view for a table without data yet).

    A view already attached in this session to the same files is kept (a committed run's
    files never change): the jobs of one process (ingestion runs, daily builds, training
    sets) re-attach the lake often, and reading thousands of file footers each time is most
    of a small job's cost."""
    runs = committed_runs(lake)
    for name in names:
        contract = get_contract(name)
        files = committed_files(lake, name, runs)
        key, state = (id(spark), name), (str(lake), tuple(files))
        if _attached.get(key) == state and spark.catalog.tableExists(name):
            continue
        if files:
            frame = (
                spark.read.option("basePath", str(lake / name))
                .parquet(*[str(p) for p in files])
                .drop(PARTITION)
            )
        else:
            cols = ", ".join(f"CAST(NULL AS {c.dtype}) AS {q(c.name)}" for c in contract.columns)
            frame = SparkSql(spark).sql(
                f"SELECT {cols}, CAST(NULL AS VARCHAR) AS _batch_id, "
                "CAST(NULL AS TIMESTAMP) AS _ingested_at WHERE false"
            )
        frame.createOrReplaceTempView(name)
        _attached[key] = state


def export_warehouse(warehouse: Path, lake: Path) -> dict[str, int]:
    """Write a DuckDB warehouse's contract tables into a lake in this layout (one committed
    run ``export-<n>``): how a bank moves from the DuckDB engine to Spark.  Rows per table."""
    run_id = "export-warehouse"
    con = duckdb.connect(str(warehouse), read_only=True)
    counts: dict[str, int] = {}
    records = []
    try:
        for name, contract in CONTRACTS.items():
            staged = lake / STAGING / run_id / name
            event = contract.event_time
            day = f"CAST({q(event)} AS DATE)" if event else "CAST(NULL AS DATE)"
            row = con.execute(f"SELECT count(*) FROM {q(name)}").fetchone()
            counts[name] = int(row[0]) if row else 0
            if counts[name]:
                staged.parent.mkdir(parents=True, exist_ok=True)
                con.execute(
                    f"COPY (SELECT *, {day} AS {PARTITION} FROM {q(name)}) TO "
                    f"'{staged}' (FORMAT parquet, PARTITION_BY ({PARTITION}))"
                )
                for n, path in enumerate(sorted(staged.rglob("*.parquet"))):
                    folder = lake / name / path.parent.relative_to(staged)
                    folder.mkdir(parents=True, exist_ok=True)
                    path.rename(folder / f"{run_id}-{n}.parquet")
            record = dict.fromkeys(MANIFEST_COLUMNS)
            record |= {"path": f"warehouse:{name}", "source": name, "status": "loaded"}
            record |= {"rows_loaded": counts[name], "run_id": run_id}
            records.append(record)
    finally:
        con.close()
    write_json_atomic(lake / MANIFEST / f"{run_id}.json", records)
    shutil.rmtree(lake / STAGING, ignore_errors=True)
    return counts

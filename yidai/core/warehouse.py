"""The DuckDB warehouse: connections and the tables declared by the data contracts.

Besides one table per contract (its columns plus ``_batch_id`` and ``_ingested_at``) the
warehouse holds the ingestion bookkeeping: ``quarantine`` (rows that broke their contract, with
the reason), ``ingest_manifest`` (one row per ingested or failed file, with its checksum and
reconciled row counts) and the view ``ingest_reconciliation`` (manifest counts against the rows
actually present per batch).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from yidai.core.contracts import CONTRACTS, Contract
from yidai.core.errors import YidaiError

if TYPE_CHECKING:
    from yidai.core.settings import Settings

LINEAGE_COLUMNS = (("_batch_id", "VARCHAR"), ("_ingested_at", "TIMESTAMP"))

QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS quarantine (
    source VARCHAR NOT NULL,
    file VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,
    reason VARCHAR NOT NULL,
    record_json VARCHAR,
    _batch_id VARCHAR NOT NULL,
    _ingested_at TIMESTAMP NOT NULL
)"""

MANIFEST_DDL = """
CREATE TABLE IF NOT EXISTS ingest_manifest (
    path VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    delivery_day DATE,
    checksum VARCHAR,
    file_bytes BIGINT,
    rows_landed BIGINT,
    rows_loaded BIGINT,
    rows_quarantined BIGINT,
    rows_late BIGINT,
    status VARCHAR NOT NULL,
    batch_id VARCHAR,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    error VARCHAR
)"""


def connect(
    path: Path | str,
    *,
    read_only: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file (created if missing, unless ``read_only``).

    ``memory_limit`` (e.g. ``"1GB"``) and ``threads`` bound what DuckDB may use; it spills to
    ``<warehouse>.tmp`` beyond the limit.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise YidaiError(f"warehouse {path} does not exist; run `yidai ingest` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | bool | int | float | list[str]] = {}
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if threads is not None:
        config["threads"] = threads
    try:
        return duckdb.connect(str(path), read_only=read_only, config=config)
    except (duckdb.IOException, duckdb.ConnectionException) as exc:
        raise YidaiError(f"cannot open warehouse {path}: {exc}") from exc


def connect_existing(
    path: Path | str,
    *,
    read_only: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open a warehouse that a job reads from: it must exist, it is never created.

    Batch jobs (feature builds, training sets, the limit refresh, monitoring) use this, so a
    missing warehouse is a clear error instead of a new empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise YidaiError(f"warehouse {path} does not exist; run `yidai ingest` first")
    return connect(path, read_only=read_only, memory_limit=memory_limit, threads=threads)


def table_ddl(contract: Contract) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for a contract's warehouse table."""
    cols = [f'"{c.name}" {c.dtype}' for c in contract.columns]
    cols += [f"{name} {dtype}" for name, dtype in LINEAGE_COLUMNS]
    return f"CREATE TABLE IF NOT EXISTS {contract.name} ({', '.join(cols)})"


def reconciliation_view_ddl() -> str:
    """View comparing each loaded file's manifest counts with the rows present per batch."""
    present = " UNION ALL ".join(
        f"SELECT _batch_id, count(*) AS n FROM {c.name} GROUP BY _batch_id"
        for c in CONTRACTS.values()
    )
    return f"""
CREATE OR REPLACE VIEW ingest_reconciliation AS
WITH loaded AS ({present}),
quarantined AS (SELECT _batch_id, count(*) AS n FROM quarantine GROUP BY _batch_id)
SELECT m.path, m.source, m.delivery_day, m.batch_id, m.rows_landed, m.rows_loaded,
       m.rows_quarantined,
       coalesce(l.n, 0) AS rows_in_table,
       coalesce(q.n, 0) AS rows_in_quarantine,
       m.rows_landed = m.rows_loaded + m.rows_quarantined
         AND m.rows_loaded = coalesce(l.n, 0)
         AND m.rows_quarantined = coalesce(q.n, 0) AS balanced
FROM ingest_manifest m
LEFT JOIN loaded l ON l._batch_id = m.batch_id
LEFT JOIN quarantined q ON q._batch_id = m.batch_id
WHERE m.status = 'loaded'"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create every contract's table and the ingestion bookkeeping if they do not exist yet.

    A no-op on a read-only connection (readers of a built warehouse cannot create tables).
    """
    read_only = con.execute(
        "SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    if read_only is not None and read_only[0]:
        return
    for contract in CONTRACTS.values():
        con.execute(table_ddl(contract))
    con.execute(QUARANTINE_DDL)
    con.execute(MANIFEST_DDL)
    con.execute(reconciliation_view_ddl())


# --- the batch tables of the active engine (issue 19) ---
def connect_tables(
    warehouse: Path | str | None = None,
    *,
    settings: Settings | None = None,
    read_only: bool = True,
    memory_limit: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """The ingested tables as a DuckDB connection, for the jobs that read them (training-set
    spines and labels, the loan book, monitoring, the dashboards' tables, the snapshot).

    ``warehouse`` given: that DuckDB file.  Otherwise the engine's of ``settings`` (default
    ``get_settings()``; ``YIDAI_ENGINE``):
    the warehouse file on DuckDB; on Spark the lake's committed Parquet read in place through
    one view per contract (an in-memory DuckDB: nothing is written to the lake, and it opens
    while Spark writes new runs, which readers see only once committed).
    """
    # deferred: settings are read at run time only; the lake imports the Spark ground
    from yidai.core import lake
    from yidai.core.settings import get_settings

    settings = settings or get_settings()
    if warehouse is not None or settings.engine == "duckdb":
        path = warehouse if warehouse is not None else settings.warehouse
        return connect_existing(path, read_only=read_only, memory_limit=memory_limit)
    root = settings.lake
    if not lake.committed_runs(root):
        raise YidaiError(f"the lake {root} holds no committed runs; run `yidai ingest` first")
    config: dict[str, str | bool | int | float | list[str]] = {}
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(config=config)
    con.execute("SET TimeZone = 'UTC'")
    lake.attach_duckdb(con, root)
    return con


def tables_location(
    warehouse: Path | str | None = None, *, settings: Settings | None = None
) -> str:
    """Where :func:`connect_tables` reads (for messages): the warehouse file or the lake."""
    # deferred: settings are read at run time only
    from yidai.core.settings import get_settings

    if warehouse is not None:
        return str(warehouse)
    settings = settings or get_settings()
    if settings.engine == "spark":
        return f"lake {settings.lake}"
    return str(settings.warehouse)

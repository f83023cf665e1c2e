"""The DuckDB warehouse: connections and the tables declared by the data contracts."""

from __future__ import annotations

from pathlib import Path

import duckdb

from yidai.contracts import CONTRACTS, Contract
from yidai.errors import YidaiError

LINEAGE_COLUMNS = (("_batch_id", "VARCHAR"), ("_ingested_at", "TIMESTAMP"))


def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file (created if missing, unless ``read_only``)."""
    path = Path(path)
    if read_only and not path.exists():
        raise YidaiError(f"warehouse {path} does not exist; run `yidai ingest` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        raise YidaiError(f"cannot open warehouse {path}: {exc}") from exc


def table_ddl(contract: Contract) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for a contract's warehouse table."""
    cols = [f'"{c.name}" {c.dtype}' for c in contract.columns]
    cols += [f"{name} {dtype}" for name, dtype in LINEAGE_COLUMNS]
    return f"CREATE TABLE IF NOT EXISTS {contract.name} ({', '.join(cols)})"


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create every contract's table if it does not exist yet."""
    for contract in CONTRACTS.values():
        con.execute(table_ddl(contract))

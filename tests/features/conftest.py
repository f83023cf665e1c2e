"""Shared fixtures of the feature-store tests: a small synthetic warehouse, built and published."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

import features
from tests.support.synthetic import synthetic_warehouse
from yidai.core.warehouse import ensure_tables

AS_OF = dt.date(2026, 6, 30)


@pytest.fixture(scope="session")
def built_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse file with synthetic data, every declared feature set built as of AS_OF."""
    path = tmp_path_factory.mktemp("feat_wh") / "wh.duckdb"
    con = duckdb.connect(str(path))
    synthetic_warehouse(con, n_pos=12_000, n_payments=4_000, n_orders=1_500, seed=11)
    features.build_features(con, AS_OF, list(features.FEATURE_SETS))
    con.close()
    return path


@pytest.fixture()
def wh(built_warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to the shared synthetic warehouse."""
    con = duckdb.connect(str(built_warehouse))
    yield con
    con.close()


@pytest.fixture()
def empty_wh(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An empty warehouse with every contract table, for hand-crafted rows."""
    con = duckdb.connect(str(tmp_path / "hand.duckdb"))
    ensure_tables(con)
    yield con
    con.close()


def insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert hand-crafted rows (missing columns are null)."""
    frame = pd.DataFrame(rows)
    con.register("__rows", frame)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM __rows")
    con.unregister("__rows")


@pytest.fixture()
def as_of() -> dt.date:
    """The day the shared warehouse is built for."""
    return AS_OF


@pytest.fixture()
def rows_into() -> Any:
    """``rows_into(con, table, rows)`` inserts hand-crafted rows."""
    return insert

"""Helpers of the tests that recompute declared features independently in pandas from the
warehouse rows and compare them with the built profiles."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

import features
from features.engine import profile_table


def profiles_at(
    con: duckdb.DuckDBPyConnection, fs_name: str, entity: str, day: dt.date
) -> pd.DataFrame:
    """The built profiles of ``fs_name`` for ``entity`` as of ``day``, by entity id."""
    table = profile_table(features.FEATURE_SETS[fs_name], entity)
    return con.execute(f"SELECT * FROM {table} WHERE as_of = ?", [day]).df().set_index("entity_id")


def event_window(frame: pd.DataFrame, day: dt.date, days: int) -> pd.DataFrame:
    """Rows with ``ts`` in the ``days``-day window ending with ``day`` (whole days)."""
    end = pd.Timestamp(day) + pd.Timedelta(days=1)
    return frame[(frame["ts"] >= end - pd.Timedelta(days=days)) & (frame["ts"] < end)]


def payments_of(con: duckdb.DuckDBPyConnection, payer_type: str) -> pd.DataFrame:
    """Every payment of one payer type."""
    return con.execute("SELECT * FROM payments WHERE payer_type = ?", [payer_type]).df()


def compare_feature(expected: pd.Series, built: pd.DataFrame, column: str) -> None:
    """Every entity with a value or NaN as expected; entities absent from ``expected`` NaN."""
    assert expected.notna().sum() >= 5, f"too few entities to test {column}"
    got = built[column].reindex(expected.index)
    np.testing.assert_allclose(got.to_numpy(float), expected.to_numpy(float), rtol=1e-6, atol=1e-6)
    others = built.index.difference(expected.index)
    assert built.loc[others, column].isna().all(), f"{column} should be NaN without rows"

"""The windowed twins of the ``sql`` features equal their declared queries on every key."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

import features
from features.declarations import Feature
from features.engine import build_features_history, profile_table
from features.sources import SOURCES

WINDOWED = [f for fs in features.FEATURE_SETS.values() for f in fs.profile_features if f.windowed]


def _values(con: duckdb.DuckDBPyConnection, template: str, source: str) -> pd.DataFrame:
    sql = template.replace("{keys}", "__wkeys").replace("{source}", source)
    return (
        con.execute(f"SELECT entity_id, as_of, value FROM ({sql}) ORDER BY entity_id, as_of")
        .df()
        .reset_index(drop=True)
    )


def test_every_sql_feature_has_a_windowed_twin() -> None:
    sql = {f.name for fs in features.FEATURE_SETS.values() for f in fs.features if f.kind == "sql"}
    assert sql and sql == {f.name for f in WINDOWED}


@pytest.mark.parametrize("feature", WINDOWED, ids=[f.name for f in WINDOWED])
def test_windowed_twin_equals_the_declared_query(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date, feature: Feature
) -> None:
    # every entity (and one without any rows) on every 2nd day of seven months, including
    # days without activity, duplicated keys and days before the data starts
    first = as_of - dt.timedelta(days=210)
    source = "__wsrc"
    wh.execute(
        f"CREATE OR REPLACE TEMP TABLE {source} AS "
        + SOURCES[feature.source].daily_sql(
            "TIMESTAMP '1900-01-01'", f"TIMESTAMP '{as_of + dt.timedelta(days=1)}'"
        )
    )
    wh.execute(
        "CREATE OR REPLACE TEMP TABLE __wkeys AS "
        f"SELECT entity_id, CAST(d AS DATE) AS as_of FROM "
        f"(SELECT DISTINCT entity_id FROM {source} UNION SELECT 'no-such-entity') e, "
        f"range(TIMESTAMP '{first}', TIMESTAMP '{as_of}', INTERVAL 2 DAY) t(d) "
        "UNION ALL SELECT entity_id, as_of FROM (SELECT * FROM "
        f"(SELECT DISTINCT entity_id FROM {source}) LIMIT 3), "
        f"(SELECT DATE '{as_of}' AS as_of)"
    )
    try:
        declared = _values(wh, feature.expr, source)
        windowed = _values(wh, feature.windowed, source)
    finally:
        wh.execute(f"DROP TABLE {source}")
        wh.execute("DROP TABLE __wkeys")
    declared = declared.dropna(subset=["value"]).reset_index(drop=True)
    windowed = windowed.dropna(subset=["value"]).reset_index(drop=True)
    assert len(declared) > 100 and declared["value"].nunique() > 10
    pd.testing.assert_frame_equal(declared, windowed, check_exact=True)


def test_history_over_two_months_equals_daily_builds_on_sampled_days(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date
) -> None:
    fs = features.FEATURE_SETS["merchant_credit_v1"]
    table = profile_table(fs, "merchant")
    start, end = as_of - dt.timedelta(days=64), as_of - dt.timedelta(days=5)
    build_features_history(wh, start, end, [fs.name])
    try:
        for day in (start, start + dt.timedelta(days=29), end):
            hist = wh.execute(
                f"SELECT * FROM {table} WHERE as_of = ? ORDER BY entity_id", [day]
            ).df()
            features.build_features(wh, day, [fs.name])
            daily = (
                wh.execute(f"SELECT * FROM {table} WHERE as_of = ? ORDER BY entity_id", [day])
                .df()
                .set_index("entity_id")
            )
            assert len(hist) > 0
            pd.testing.assert_frame_equal(
                hist.set_index("entity_id"), daily.loc[hist["entity_id"]], check_exact=True
            )
    finally:
        wh.execute(f"DELETE FROM {table} WHERE as_of BETWEEN ? AND ?", [start, end])
        wh.execute(
            "DELETE FROM feat.builds WHERE feature_set = ? AND as_of BETWEEN ? AND ?",
            [fs.name, start, end],
        )

"""The many-days path (one daily layer per entity, coverage runs for distinct counts) computes
exactly what the declared queries compute for one day at a time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pandas as pd
import pytest

import features
from features.engine import (
    SourceFacts,
    compute_profiles_for_keys,
    compute_profiles_sql,
    history_keys_sql,
    layer_plan,
    layer_query,
    profile_table,
    runs_tables_sql,
)

SETS = sorted(features.FEATURE_SETS)
T = dt.datetime


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    df = df.sort_values(["entity_id", "as_of"]).reset_index(drop=True)
    df["as_of"] = pd.to_datetime(df["as_of"]).astype("datetime64[us]")
    return df


@pytest.mark.parametrize("fs_name", SETS)
def test_many_keys_equal_the_declared_queries_day_by_day(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date, fs_name: str
) -> None:
    # every entity (and one without rows) on days with and without activity, from before the
    # first data to the last day; the one-day path runs the declared queries
    fs = features.FEATURE_SETS[fs_name]
    days = [as_of - dt.timedelta(days=n) for n in (300, 181, 90, 37, 1, 0)]
    for entity in fs.profile_entities:
        wh.execute(
            "CREATE OR REPLACE TEMP TABLE __lkeys AS SELECT entity_id, d AS as_of FROM "
            f"(SELECT DISTINCT entity_id FROM {profile_table(fs, entity)} "
            "UNION SELECT 'no-such-entity'), unnest(?) t(d)",
            [days],
        )
        many = _sorted(compute_profiles_for_keys(wh, fs, entity, "__lkeys").df())
        one = []
        for day in days:
            wh.execute(
                "CREATE OR REPLACE TEMP TABLE __lday AS SELECT * FROM __lkeys WHERE as_of = ?",
                [day],
            )
            one.append(wh.execute(compute_profiles_sql(wh, fs, entity, "__lday", day, day)).df())
        declared = _sorted(pd.concat(one))
        assert len(many) == len(declared) > 20
        assert many.drop(columns=["entity_id", "as_of"]).notna().sum().min() > 0
        pd.testing.assert_frame_equal(many, declared, check_exact=True)


@pytest.mark.parametrize("fs_name", SETS)
def test_history_equals_daily_builds_exactly(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date, fs_name: str
) -> None:
    fs = features.FEATURE_SETS[fs_name]
    start, end = as_of - dt.timedelta(days=100), as_of - dt.timedelta(days=1)
    features.build_features_history(wh, start, end, [fs_name])
    try:
        for day in (start, start + dt.timedelta(days=45), end):
            hist = {}
            for entity in fs.profile_entities:
                table = profile_table(fs, entity)
                hist[entity] = wh.execute(
                    f"SELECT * FROM {table} WHERE as_of = ? ORDER BY entity_id", [day]
                ).df()
            features.build_features(wh, day, [fs_name])
            for entity, h in hist.items():
                daily = (
                    wh.execute(
                        f"SELECT * FROM {profile_table(fs, entity)} WHERE as_of = ? "
                        "ORDER BY entity_id",
                        [day],
                    )
                    .df()
                    .set_index("entity_id")
                )
                assert len(h) > 0
                pd.testing.assert_frame_equal(
                    h.set_index("entity_id"), daily.loc[h["entity_id"]], check_exact=True
                )
    finally:
        for entity in fs.profile_entities:
            wh.execute(
                f"DELETE FROM {profile_table(fs, entity)} WHERE as_of BETWEEN ? AND ?",
                [start, end],
            )
        wh.execute(
            "DELETE FROM feat.builds WHERE feature_set = ? AND as_of BETWEEN ? AND ?",
            [fs_name, start, end],
        )
        features.build_features(wh, as_of, [fs_name])


def test_distinct_counts_at_the_window_edges(
    empty_wh: duckdb.DuckDBPyConnection, rows_into: Any
) -> None:
    # one customer, one MCC seen again exactly 89, 90 and 91 days later, another MCC twice on
    # a day, a row without MCC; every day's history equals that day's daily build
    con = empty_wh
    rows_into(
        con,
        "customers",
        [{"customer_id": "C1", "opened_at": T(2025, 1, 1), "age_band": "25-34",
          "city_tier": "1", "income_band": "mid"}],
    )  # fmt: skip
    base = T(2025, 2, 1, 12)
    visits = [(0, "5812"), (89, "5812"), (179, "5812"), (270, "5812"), (5, "5411")]
    visits += [(5, "5411"), (95, "5411"), (100, None), (271, "7995")]
    rows_into(
        con,
        "pos_transactions",
        [
            {"txn_id": f"t{i}", "ts": base + dt.timedelta(days=d), "card_token": "K1",
             "customer_id": "C1", "merchant_id": "M1", "terminal_id": "T1", "mcc": mcc,
             "amount": 10.0 + i, "entry_mode": "chip", "status": "approved"}
            for i, (d, mcc) in enumerate(visits)
        ],
    )  # fmt: skip
    fs = features.FEATURE_SETS["personal_credit_v1"]
    start, end = base.date(), base.date() + dt.timedelta(days=365)
    features.build_features_history(con, start, end, [fs.name])
    table = profile_table(fs, "customer")
    hist = con.execute(f"SELECT as_of, customer_mcc_diversity_90d AS n FROM {table}").df()
    assert sorted(hist["n"].unique()) == [1.0, 2.0]
    for i, day in enumerate(hist["as_of"].dt.date):
        keys = f"__one{i}"
        want = con.execute(
            compute_profiles_sql(con, fs, "customer", keys, day, day, all_entities=True)
        ).df()
        got = hist.loc[hist["as_of"].dt.date == day, "n"].item()
        assert got == want["customer_mcc_diversity_90d"].item(), day
    # training keys on days without activity go through the same runs
    con.execute(
        "CREATE TEMP TABLE __k AS SELECT 'C1' AS entity_id, CAST(d AS DATE) AS as_of "
        f"FROM range(TIMESTAMP '{start}', TIMESTAMP '{end}', INTERVAL 1 DAY) t(d)"
    )
    many = compute_profiles_for_keys(con, fs, "customer", "__k").df().set_index("as_of")
    counts = many["customer_mcc_diversity_90d"]
    assert counts.max() == 2.0 and (counts == 0).any()
    day = start + dt.timedelta(days=179)  # 5812 at 89 and 179: one MCC; 5411 at 95: two
    assert counts.loc[pd.Timestamp(day)] == 2.0
    assert counts.loc[pd.Timestamp(start + dt.timedelta(days=185))] == 1.0


def test_history_memory_limit_is_lowered_for_the_build_only(tmp_path: Any) -> None:
    from features.engine import _memory_limit

    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    con.execute("SET memory_limit = '8GB'")

    def limit() -> str:
        return str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])

    before = limit()
    with _memory_limit(con, 3 * 1024**3):
        assert limit() == "3.0 GiB"
    assert limit() == before
    con.execute("SET memory_limit = '1GB'")  # a lower limit is kept
    with _memory_limit(con, 3 * 1024**3):
        assert limit() == "953.6 MiB"
    con.close()


@pytest.mark.parametrize("fs_name", SETS)
def test_the_layer_query_is_built_without_a_database(fs_name: str) -> None:
    # the SQL builders are pure: source table names in, SQL naming them and the windows out
    fs = features.FEATURE_SETS[fs_name]
    first, last = dt.date(2026, 1, 1), dt.date(2026, 3, 31)
    for entity in fs.profile_entities:
        feats = [f for f in fs.profile_features if f.entity == entity]
        src_tables = {name: f"__src_{name}_t" for name in dict.fromkeys(f.source for f in feats)}
        plan = layer_plan(feats, src_tables)
        assert set(plan.exprs) | {f.name for f in plan.declared} == {f.name for f in feats}
        facts = SourceFacts(sparse=set(), narrow={})
        sql = layer_query(feats, plan, facts, src_tables, "__keys", first, last, history=False)
        assert sql.startswith(("SELECT entity_id, as_of", "WITH k AS (SELECT entity_id, as_of"))
        assert "FROM __keys" in sql  # the key rows mark the wanted profiles
        for f in feats:
            assert f'"{f.name}"' in sql
        for days in {f.window_days for f in feats if f.name in plan.exprs and f.window_days}:
            if f"OVER w{days}" in sql:
                assert f"w{days} AS (PARTITION BY entity_id" in sql
                assert f"RANGE BETWEEN {days - 1} PRECEDING AND CURRENT ROW" in sql
        runs = runs_tables_sql(plan, src_tables)
        assert len(runs) == len(plan.covers)
        for i, (source, column, _) in enumerate(plan.covers):
            assert runs[i].startswith(f"CREATE OR REPLACE TEMP TABLE __src_{source}_t_runs{i} ")
            assert f"PARTITION BY entity_id, {column} ORDER BY day" in runs[i]
            assert f"FROM __src_{source}_t_runs{i}" in sql


def test_history_keys_are_the_active_days_of_the_non_master_sources() -> None:
    sql = history_keys_sql(
        {"transactions": "__t", "customer_master": "__m"},
        "__keys",
        dt.date(2026, 1, 1),
        dt.date(2026, 1, 31),
    )
    assert sql.startswith("CREATE OR REPLACE TEMP TABLE __keys AS SELECT entity_id, day AS as_of")
    assert "FROM __t WHERE day BETWEEN DATE '2026-01-01' AND DATE '2026-01-31'" in sql
    assert "__m" not in sql  # a master table has no activity days

"""Offline build: daily replace, history = daily, warehouse fingerprint guard."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

import features
from features.engine import profile_table
from yidai.core.errors import YidaiError


def _rows(con: duckdb.DuckDBPyConnection, table: str, day: dt.date) -> pd.DataFrame:
    return (
        con.execute(f"SELECT * FROM {table} WHERE as_of = ? ORDER BY entity_id", [day])
        .df()
        .reset_index(drop=True)
    )


def test_rebuilding_a_day_replaces_it(wh: duckdb.DuckDBPyConnection, as_of: dt.date) -> None:
    fs = features.FEATURE_SETS["merchant_credit_v1"]
    table = profile_table(fs, "merchant")
    before = _rows(wh, table, as_of)
    assert len(before) > 0 and before["entity_id"].is_unique
    features.build_features(wh, as_of, ["merchant_credit_v1"])
    after = _rows(wh, table, as_of)
    pd.testing.assert_frame_equal(before, after)
    # every entity of the master table gets a vector, active or not
    n_merchants = wh.execute("SELECT count(*) FROM merchants").fetchall()[0][0]
    assert len(after) >= n_merchants


def test_a_row_landing_later_changes_only_later_days(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date
) -> None:
    fs = features.FEATURE_SETS["sme_credit_v1"]
    table = profile_table(fs, "sme")
    day = as_of - dt.timedelta(days=3)
    features.build_features(wh, day, ["sme_credit_v1"])
    before = _rows(wh, table, day).set_index("entity_id")
    wh.execute(
        "INSERT INTO payments (payment_id, ts, payer_type, payer_id, payment_type, amount, "
        "channel, status) VALUES ('late-1', ?, 'sme', 'S1', 'transfer_in', 1000, 'app', "
        "'success')",
        [dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0, 0))],
    )
    try:
        features.build_features(wh, day, ["sme_credit_v1"])
        same = _rows(wh, table, day).set_index("entity_id")
        pd.testing.assert_frame_equal(before, same)
        features.build_features(wh, day + dt.timedelta(days=1), ["sme_credit_v1"])
        nxt = _rows(wh, table, day + dt.timedelta(days=1)).set_index("entity_id")
        assert nxt.loc["S1", "sme_inflow_amount_30d"] >= 1000
    finally:
        wh.execute("DELETE FROM payments WHERE payment_id = 'late-1'")
        wh.execute(f"DELETE FROM {table} WHERE as_of > ?", [as_of - dt.timedelta(days=5)])
        features.build_features(wh, as_of, ["sme_credit_v1"])


@pytest.mark.parametrize("fs_name", sorted(features.FEATURE_SETS))
def test_history_build_equals_daily_builds(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date, fs_name: str
) -> None:
    fs = features.FEATURE_SETS[fs_name]
    start, end = as_of - dt.timedelta(days=3), as_of - dt.timedelta(days=1)
    written = features.build_features_history(wh, start, end, [fs_name])
    assert all(n > 0 for n in written.values())
    for entity in fs.profile_entities:
        table = profile_table(fs, entity)
        hist = _rows(wh, table, end).set_index("entity_id")
        features.build_features(wh, end, [fs_name])
        daily = _rows(wh, table, end).set_index("entity_id")
        assert set(hist.index) <= set(daily.index)
        pd.testing.assert_frame_equal(hist, daily.loc[hist.index])
    wh.execute(
        "DELETE FROM feat.builds WHERE feature_set = ? AND as_of BETWEEN ? AND ?",
        [fs_name, start, end],
    )


def test_warehouse_built_from_another_definition_is_refused(
    wh: duckdb.DuckDBPyConnection,
    as_of: dt.date,
) -> None:
    wh.execute(
        "UPDATE feat.registry SET fingerprint = 'deadbeef' WHERE feature_set = 'sme_credit_v1'"
    )
    try:
        with pytest.raises(YidaiError, match=r"fingerprint deadbeef.*new version"):
            features.build_features(wh, as_of, ["sme_credit_v1"])
    finally:
        fp = features.FEATURE_SETS["sme_credit_v1"].fingerprint
        wh.execute(
            "UPDATE feat.registry SET fingerprint = ? WHERE feature_set = 'sme_credit_v1'", [fp]
        )


def test_profiles_are_finite_where_a_fill_is_declared(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date
) -> None:
    for fs in features.FEATURE_SETS.values():
        for entity in fs.profile_entities:
            df = _rows(wh, profile_table(fs, entity), as_of)
            for col in fs.profile_columns(entity):
                if fs.feature(col).fill is not None:
                    assert np.isfinite(df[col].to_numpy()).all(), col

"""Online snapshot: atomic publish, fast lookups, and parity with the offline training rows."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import features
from features.online import OnlineStore, open_store
from features.online.redis_store import RedisStore
from features.sources import FRAUD_EVENTS_SQL
from tests.support.redis_local import RedisServer
from yidai.core.errors import YidaiError


def test_publish_swaps_the_pointer_and_prunes(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date, tmp_path: Path
) -> None:
    assert features.current_pointer(tmp_path, "sme_credit_v1") is None
    with pytest.raises(YidaiError, match="no published snapshot"):
        features.load_snapshot(tmp_path, "sme_credit_v1")
    paths = [
        features.publish_snapshot(wh, tmp_path, as_of, ["sme_credit_v1"], keep=2)["sme_credit_v1"]
        for _ in range(3)
    ]
    pointer = features.current_pointer(tmp_path, "sme_credit_v1")
    assert pointer is not None and pointer["snapshot_id"] == paths[-1].name
    live = [p for p in paths[-1].parent.iterdir() if p.is_dir()]
    assert sorted(live) == sorted(paths[-2:])  # the oldest was pruned, no temp folders left
    snap = features.load_snapshot(tmp_path, "sme_credit_v1")
    fs = features.FEATURE_SETS["sme_credit_v1"]
    assert (snap.version, snap.fingerprint, snap.as_of) == (fs.version, fs.fingerprint, as_of)
    assert snap.columns == fs.columns
    table = wh.execute(
        "SELECT * FROM feat.sme_credit_v1__sme WHERE as_of = ? ORDER BY entity_id", [as_of]
    ).df()
    assert len(snap.frame) == len(table)
    row = table.iloc[3]
    vec = snap.get(row["entity_id"])
    assert vec is not None and vec.dtype == np.float64
    np.testing.assert_array_equal(vec, row[snap.profile_columns()].to_numpy(float))
    assert snap.get("no-such-sme") is None


def test_unbuilt_day_and_changed_definition_are_refused(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date, tmp_path: Path
) -> None:
    with pytest.raises(YidaiError, match="no complete build as of 2026-01-01"):
        features.publish_snapshot(wh, tmp_path, dt.date(2026, 1, 1), ["sme_credit_v1"])
    features.publish_snapshot(wh, tmp_path, as_of, ["sme_credit_v1"])
    pointer = tmp_path / "features" / "sme_credit_v1" / "CURRENT"
    meta = json.loads(pointer.read_text())
    pointer.write_text(json.dumps({**meta, "fingerprint": "0000"}))
    with pytest.raises(YidaiError, match=r"fingerprint 0000.*republish"):
        features.load_snapshot(tmp_path, "sme_credit_v1")


def test_publish_from_the_warehouse_path_read_only(
    built_warehouse: Path, as_of: dt.date, tmp_path: Path
) -> None:
    out = features.publish_snapshot(built_warehouse, tmp_path, as_of)
    active = {*features.CREDIT_FEATURE_SETS.values(), features.FRAUD_FEATURE_SET}
    assert set(out) == active  # by default the sets the models use
    for name in active:
        assert features.load_snapshot(tmp_path, name).feature_set == name
    assert not (tmp_path / "features" / "personal_credit_v1").exists()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> OnlineStore:
    """Each online store, empty: the embedded one under ``tmp_path``, or a Redis database."""
    if request.param == "embedded":
        return open_store("embedded", tmp_path)
    server: RedisServer = request.getfixturevalue("redis_server")
    redis_store = RedisStore(server.url(3))
    redis_store.client.flushdb()
    return redis_store


@pytest.mark.parametrize(
    ("fs_name", "product"),
    [("personal_credit_v1", "C"), ("merchant_credit_v1", "M"), ("sme_credit_v1", "S")],
)
def test_credit_parity_online_equals_offline(
    wh: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    tmp_path: Path,
    fs_name: str,
    product: str,
    store: OnlineStore,
) -> None:
    features.publish_snapshot(wh, tmp_path, as_of, [fs_name], store=store)
    snap = features.load_snapshot(tmp_path, fs_name, store)
    rng = np.random.default_rng(3)
    known = list(snap.frame.index)
    ids = [*rng.choice(known, size=min(25, len(known)), replace=False), f"{product}new"]
    next_day = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    spine = pd.DataFrame({
        "entity_id": ids,
        "decision_ts": [next_day + pd.Timedelta(seconds=int(s))
                        for s in rng.integers(0, 86_399, len(ids))],
        "label": 0,
        "requested_amount": rng.uniform(1_000, 50_000, len(ids)).round(2),
    })  # fmt: skip
    offline = features.build_training_set(wh, spine, fs_name)
    for i, row in offline.iterrows():
        online = snap.vector({"entity_id": row["entity_id"], "requested_amount": row[
            "requested_amount"]})  # fmt: skip
        expected = row[snap.columns].to_numpy(np.float64)
        np.testing.assert_array_equal(online, expected, err_msg=f"row {i} {row['entity_id']}")


@pytest.mark.parametrize("fs_name", ["payment_fraud_v1", "payment_fraud_v2"])
def test_fraud_parity_online_equals_offline(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date, tmp_path: Path, store: OnlineStore, fs_name: str
) -> None:
    features.publish_snapshot(wh, tmp_path, as_of, [fs_name], store=store)
    snap = features.load_snapshot(tmp_path, fs_name, store)
    next_day = as_of + dt.timedelta(days=1)
    spine = features.fraud_spine(wh, next_day, label_delay_days=0, start=next_day)
    spine = spine.sample(n=min(60, len(spine)), random_state=5)
    offline = features.build_training_set(wh, spine, fs_name)
    events = wh.execute(
        f"SELECT payer_id, ts, amount, counterpart_id, device_id, channel "
        f"FROM ({FRAUD_EVENTS_SQL}) WHERE ts >= ?",
        [dt.datetime.combine(as_of, dt.time())],
    ).df()
    assert offline["event_type"].nunique() == 2
    if fs_name == "payment_fraud_v2":  # the new features carry values, not only blanks
        for col in (
            "payer_median_amount_30d",
            "payer_amount_zscore_30d",
            "payer_hours_since_previous_now",
            "counterpart_txn_count_7d",
        ):
            assert offline[col].notna().sum() > 5 and offline[col].nunique() > 3, col
    for i, row in offline.iterrows():
        t = row["decision_ts"]
        recent = events[
            (events["payer_id"] == row["payer_id"])
            & (events["ts"] < t)
            & (events["ts"] >= t - pd.Timedelta(hours=24))
        ]
        request = {k: (None if pd.isna(row[k]) else row[k]) for k in (
            "payer_id", "event_type", "amount", "counterpart_id", "merchant_id", "mcc",
            "entry_mode", "channel", "device_id", "payment_type")}  # fmt: skip
        request["ts"] = t.to_pydatetime()
        request["recent"] = recent.to_dict("records")
        online = snap.vector(request)
        expected = row[snap.columns].to_numpy(np.float64)
        np.testing.assert_array_equal(online, expected, err_msg=f"row {i}")


def test_request_features_errors_are_clear() -> None:
    with pytest.raises(YidaiError, match="request has no field 'requested_amount'"):
        features.request_features(features.get_feature_set("merchant_credit_v1"), None, {})
    with pytest.raises(YidaiError, match="profile has"):
        features.request_features(
            features.get_feature_set("merchant_credit_v1"), np.zeros(3), {"requested_amount": 1}
        )
    vec = features.request_features(
        features.get_feature_set("merchant_credit_v1"), None, {"requested_amount": 500.0}
    )
    fs = features.FEATURE_SETS["merchant_credit_v1"]
    assert vec.shape == (len(fs.columns),)
    assert vec[fs.columns.index("merchant_net_turnover_30d")] == 0.0
    assert vec[fs.columns.index("merchant_requested_to_turnover_now")] == 5.0

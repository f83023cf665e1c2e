"""Integration: the feature store on a small simulated and ingested warehouse."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pytest

import features

simulator = pytest.importorskip("simulator")
ingest = pytest.importorskip("yidai.ingest")


@pytest.fixture(scope="module")
def simulated_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("feat_sim")
    config = simulator.SimConfig.preset(
        "tiny", n_customers=250, n_merchants=25, n_smes=15, n_mall_sellers=10, months=8
    )
    simulator.simulate(config, root / "landing", root / "truth")
    ingest.ingest_landing(root / "landing", root / "wh.duckdb")
    return root / "wh.duckdb"


def test_build_train_publish_and_parity_on_simulated_data(
    simulated_warehouse: Path, tmp_path: Path
) -> None:
    con = duckdb.connect(str(simulated_warehouse))
    try:
        as_of = dt.date(2026, 4, 30)
        personal = features.CREDIT_FEATURE_SETS["personal"]  # the set the model trains on
        rows = features.build_features(con, as_of)
        # every customer whose relationship began by the as-of day (newcomers join until the
        # period's last day, so a few of the 250 are not customers yet)
        found = con.execute(
            "SELECT count(DISTINCT customer_id) FROM customers WHERE opened_at < ?",
            [as_of + dt.timedelta(days=1)],
        ).fetchone()
        assert found is not None
        opened = int(found[0])
        assert 240 <= opened <= 250
        assert rows[f"{personal}/customer"] == opened
        features.publish_snapshot(con, tmp_path, as_of)
        spine = features.credit_spine(con, "personal", dt.date(2026, 5, 31), 1)
        assert len(spine) > 0 and set(spine["label"].unique()) <= {0, 1}
        train = features.build_training_set(con, spine, personal)
        X = train[features.FEATURE_SETS[personal].columns]
        assert np.isfinite(X["customer_spend_amount_90d"]).all()
        assert (X["customer_spend_amount_90d"] > 0).mean() > 0.5  # real spending shows up
        assert X["customer_bill_days_early_180d"].notna().mean() > 0.5  # bills paid, with dues
        # parity for the applications decided the day after the snapshot's close
        next_day = as_of + dt.timedelta(days=1)
        everyone = features.credit_spine(con, "personal", next_day, 1, include_declined=True)
        today = everyone[everyone["decision_ts"].dt.date == next_day]
        snap = features.load_snapshot(tmp_path, personal)
        offline = features.build_training_set(con, today, personal)
        for _, row in offline.iterrows():
            online = snap.vector(
                {"entity_id": row["entity_id"], "requested_amount": row["requested_amount"]}
            )
            np.testing.assert_array_equal(online, row[snap.columns].to_numpy(np.float64))
        fraud = features.fraud_spine(con, dt.date(2026, 5, 31), 30, start=dt.date(2026, 3, 1))
        assert fraud["decision_ts"].max() < dt.datetime(2026, 5, 2)
        assert fraud["label"].sum() > 0  # reported frauds arrive as labels
        sample = fraud[(fraud["label"] == 1) | (fraud.index % 10 == 0)]
        ft = features.build_training_set(con, sample, "payment_fraud_v1")
        assert ft["payer_txn_count_30d"].gt(0).mean() > 0.5
    finally:
        con.close()

"""The scored payment events the fraud operations view reads: a real (small) fraud model,
registered in MLflow, scoring a synthetic warehouse's events with their features as known
at the time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pytest

from features import build_training_set, fraud_spine, get_feature_set
from models.estimator import GradientBoostedPD
from tests.support.sandbox import FAST_PARAMS
from tests.support.synthetic import synthetic_warehouse
from yidai.core.errors import YidaiError
from yidai.jobs.analytics.scored import score_payment_events

AS_OF = dt.date(2026, 6, 30)


@dataclass
class TrainedFraudModel:
    """A fraud model as ``score_payment_events`` uses a loaded one (name, version, feature
    set and names, ``predict_pd``): a real LightGBM estimator, not registered (loading from
    the registry is tested in tests/models/test_models_registry.py; MLflow's set-up would
    cost this test most of its time)."""

    estimator: GradientBoostedPD
    feature_set: str
    feature_names: list[str]
    name: str = "payment_fraud"
    version: str = "1"

    def predict_pd(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator.predict_pd(X[self.feature_names]))


@pytest.fixture(scope="module")
def fraud_home(tmp_path_factory):
    """A synthetic warehouse and a small fraud model trained on its labelled events."""
    home = tmp_path_factory.mktemp("scored_payments")
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    synthetic_warehouse(con, n_pos=6_000, n_payments=1_500, n_orders=600, seed=5)
    fs = get_feature_set("payment_fraud_v1")
    spine = fraud_spine(con, AS_OF, label_delay_days=0, start=dt.date(2026, 3, 1))
    frame = build_training_set(con, spine, fs.name)
    estimator = GradientBoostedPD(**FAST_PARAMS, random_state=5, n_jobs=1)  # type: ignore[arg-type]
    cut = int(len(frame) * 0.7)
    label = frame["label"].astype(int).to_numpy()
    X = frame[list(fs.columns)]
    estimator.fit(X.iloc[:cut], label[:cut], eval_set=(X.iloc[cut:], label[cut:]))
    yield con, TrainedFraudModel(estimator, fs.name, list(fs.columns))
    con.close()


def test_every_fraud_and_a_weighted_sample_of_the_rest_scored_by_the_model(fraud_home):
    con, model = fraud_home
    as_of = AS_OF
    events = score_payment_events(
        con, as_of, model, days=60, legit_share=0.25, label_delay_days=0, seed=3
    )
    start = as_of + dt.timedelta(days=1) - dt.timedelta(days=60)
    all_events = con.execute(
        """
        SELECT count(*) FILTER (WHERE r.ref_id IS NOT NULL), count(*)
        FROM (SELECT txn_id AS id, 'pos' AS kind, ts FROM pos_transactions
              WHERE status <> 'refund'
              UNION ALL SELECT payment_id, 'payment', ts FROM payments
              WHERE payment_type <> 'transfer_in') e
        LEFT JOIN fraud_reports r ON r.ref_id = e.id AND r.ref_type = e.kind
             AND r.reported_at < CAST(? AS TIMESTAMP)
        WHERE e.ts >= CAST(? AS TIMESTAMP) AND e.ts < CAST(? AS TIMESTAMP)
        """,
        [as_of + dt.timedelta(days=1), start, as_of + dt.timedelta(days=1)],
    ).fetchone()
    assert all_events is not None
    frauds, total = all_events
    assert frauds > 0 and int(events["label"].sum()) == frauds  # every known fraud is kept
    legit = events[events["label"] == 0]
    assert (legit["weight"] == 4.0).all() and (
        events.loc[events["label"] == 1, "weight"] == 1
    ).all()
    # the weights undo the sampling: the weighted count estimates the population
    assert events["weight"].sum() == pytest.approx(total, rel=0.1)
    assert events["fraud_prob"].between(0, 1).all()
    assert (events["model_version"] == f"payment_fraud v{model.version}").all()
    # the historical block: POS declined / payment failed
    pos = con.execute(
        "SELECT txn_id, status = 'declined' FROM pos_transactions WHERE ts >= CAST(? AS TIMESTAMP)",
        [start],
    ).df()
    blocked = dict(zip(pos.iloc[:, 0], pos.iloc[:, 1], strict=True))
    mine = events[events["event_type"] == "pos"]
    assert [blocked[i] for i in mine["event_id"]] == mine["rules_blocked"].tolist()
    # the probability is the model's on the features as known at the event
    row = events.iloc[[0]]
    spine = fraud_spine(con, as_of, label_delay_days=0, start=start)
    spine = spine[spine["event_id"] == row["event_id"].iloc[0]].reset_index(drop=True)
    frame = build_training_set(con, spine, model.feature_set)
    assert model.predict_pd(frame[model.feature_names])[0] == pytest.approx(
        row["fraud_prob"].iloc[0]
    )
    with pytest.raises(YidaiError, match="legit_share"):
        score_payment_events(con, as_of, model, legit_share=0)
    assert np.isfinite(events["amount"]).all()

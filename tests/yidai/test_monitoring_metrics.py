"""Monitoring: drift (PSI) and the drift alarm, cohort performance, decision rates, the audit
reader and the published tables (yidai.jobs.monitoring)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from yidai.jobs.analytics.dashboard_tables import current_version, read_table
from yidai.jobs.monitoring import (
    SCORE,
    DriftError,
    MonitoringReport,
    check_drift,
    cohort_performance,
    decision_rates,
    drift_table,
    monitor_model,
    publish_report,
    read_audit_decisions,
)

AS_OF = date(2026, 6, 30)
TIERS = (("small", 200.0), ("medium", 2_000.0), ("large", float("inf")))


@dataclass(frozen=True)
class RegisteredModel:
    """The attributes of a loaded champion that monitoring reads (name, version, features,
    and the training windows its MLflow metadata records)."""

    name: str
    version: str
    feature_names: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)


def scored_history(seed: int = 3, shift: float = 0.0) -> pd.DataFrame:
    """A year of decisions; the last 7 days' ``x_shifted`` moves by ``shift`` std devs."""
    rng = np.random.default_rng(seed)
    n = 12_000
    ts = pd.Timestamp("2025-07-01") + pd.to_timedelta(np.sort(rng.uniform(0, 365, n)), unit="D")
    x_stable = rng.normal(0, 1, n)
    x_shifted = rng.normal(0, 1, n)
    recent = ts >= pd.Timestamp(AS_OF) - pd.Timedelta(days=6)
    x_shifted = np.where(recent, x_shifted + shift, x_shifted)
    logit = -3 + 1.5 * x_stable
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    label[ts > pd.Timestamp("2026-01-01")] = np.nan  # not matured yet
    score = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.5, n))))
    return pd.DataFrame(
        {"ts": ts, "label": label, "score": score, "x_stable": x_stable, "x_shifted": x_shifted}
    )


def test_psi_flags_only_the_shifted_feature_and_check_drift_names_it() -> None:
    frame = scored_history(shift=1.5)
    recent = frame["ts"] >= pd.Timestamp(AS_OF) - pd.Timedelta(days=6)
    table = drift_table(frame[~recent], frame[recent], ["x_stable", "x_shifted"], model="m")
    psi = table.set_index("feature")["psi"]
    assert psi["x_stable"] < 0.1 and psi["x_shifted"] > 0.5
    assert list(table.set_index("feature")["status"]) == ["stable", "drift"]
    with pytest.raises(DriftError, match=r"m: x_shifted \d\.\d{3}") as err:
        check_drift(table, threshold=0.25)
    assert "x_stable" not in str(err.value)
    check_drift(table, threshold=50.0)  # nothing above a high threshold: no error
    check_drift(drift_table(frame[~recent], frame[~recent], ["x_stable"], model="m"))
    empty = drift_table(frame.iloc[:0], frame[recent], ["x_stable"], model="m")
    assert empty["status"].tolist() == ["unknown"]
    with pytest.raises(Exception, match="missing"):
        drift_table(frame, frame, ["nope"])


def test_monitor_model_uses_the_training_window_and_reports_performance() -> None:
    model = RegisteredModel(
        "merchant_pd",
        "3",
        ["x_stable", "x_shifted"],
        {"windows": {"train": "2025-07-01..2025-11-30", "test": "2025-12-01..2025-12-31"}},
    )
    history = scored_history(shift=2.0)
    drift, perf, info = monitor_model(model, history, as_of=AS_OF, recent_days=7, fraud=False)
    assert info["reference_window"] == "2025-07-01..2025-11-30"
    in_train = history["ts"].between("2025-07-01", "2025-12-01", inclusive="left")
    recent = history["ts"] >= pd.Timestamp(AS_OF) - pd.Timedelta(days=6)
    assert (info["n_reference"], info["n_current"]) == (in_train.sum(), recent.sum())
    assert set(drift["feature"]) == {SCORE, "x_stable", "x_shifted"}
    assert drift.set_index("feature").loc["x_shifted", "status"] == "drift"
    assert info["max_feature_psi"] == pytest.approx(drift["psi"].iloc[1:].max())
    # only matured cohorts (2025-07..2025-12) carry a label; the ranking is informative
    assert list(perf["cohort"]) == [date(2025, m, 1) for m in range(7, 13)]
    assert (perf["auc"] > 0.75).all() and (perf["ks"] > 0.3).all()
    assert perf["n"].sum() == scored_history()["label"].notna().sum()
    assert np.allclose(perf["positive_rate"] * perf["n"], perf["positives"])
    report = MonitoringReport(AS_OF, drift, perf, pd.DataFrame(), pd.DataFrame([info]))
    summary = report.summary()
    assert summary["drifted"] >= 1 and summary["max_psi"] == pytest.approx(drift["psi"].max())
    with pytest.raises(DriftError, match="merchant_pd: x_shifted"):
        check_drift(summary)


def test_fraud_cohorts_are_weekly_and_single_class_weeks_give_nan() -> None:
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2026-06-01", "2026-06-02", "2026-06-03", "2026-06-09"]),
            "label": [1.0, 0.0, 0.0, 0.0],
            "score": [0.9, 0.2, 0.1, 0.3],
        }
    )
    perf = cohort_performance(frame, model="payment_fraud", period="W", fraud=True)
    assert len(perf) == 2
    assert perf["auc"].iloc[0] == 1.0 and perf["average_precision"].iloc[0] == 1.0
    assert np.isnan(perf["auc"].iloc[1])


def test_decision_rates_by_product_and_amount_tier_sum_to_one() -> None:
    decisions = pd.DataFrame(
        {
            "product": ["payment"] * 6 + ["personal"] * 4,
            "outcome": [
                *("allow", "allow", "step_up", "decline", "allow", "step_up"),
                *("approve", "decline", "refer", "approve"),
            ],
            "amount": [50, 150, 1_000, 1_500, 10_000, np.nan, 3_000, 4_000, 50_000, 500_000],
        }
    )
    rates = decision_rates(decisions, TIERS)
    assert rates["n"].sum() == len(decisions)
    sums = rates.groupby(["product", "amount_tier"])["rate"].sum()
    assert np.allclose(sums, 1.0)
    small = rates[(rates["product"] == "payment") & (rates["amount_tier"] == "small")]
    assert small[["outcome", "n", "rate"]].values.tolist() == [["allow", 2, 1.0]]
    medium = rates[(rates["amount_tier"] == "medium")].set_index("outcome")["rate"]
    assert medium.to_dict() == {"decline": 0.5, "step_up": 0.5}
    assert "unknown" in set(rates["amount_tier"])
    assert set(rates.loc[rates["product"] == "personal", "amount_tier"]) == {
        "<=5k",
        "<=100k",
        ">100k",
    }
    assert decision_rates(decisions.iloc[:0], TIERS).empty


def test_audit_decisions_are_read_from_the_real_audit_store(tmp_path: Path) -> None:
    from yidai.audit import AuditStore, DecisionRow

    url = f"sqlite:///{tmp_path / 'audit' / 'decisions.db'}"
    store = AuditStore(url)
    try:
        for i, (product, outcome, request, day) in enumerate(
            [
                ("payment", "step_up", {"amount": 900.0, "payer_id": "C1"}, AS_OF),
                ("personal", "approve", {"requested_amount": 8_000.0}, AS_OF),
                ("payment", "allow", {"amount": 20.0}, AS_OF - timedelta(days=30)),
            ]
        ):
            store.record_decision(
                DecisionRow(
                    decision_id=f"d{i}",
                    module="test",
                    idempotency_key=None,
                    request_hash=f"h{i}",
                    product=product,
                    entity_id="E",
                    outcome=outcome,
                    arm="champion",
                    model_version="1",
                    policy_version="p",
                    response={"created_at": f"{day.isoformat()}T10:00:00+00:00"},
                    record={"request": request},
                )
            )
    finally:
        store.close()
    decisions = read_audit_decisions(url, AS_OF - timedelta(days=6), AS_OF)
    assert sorted(decisions["amount"].tolist()) == [900.0, 8_000.0]
    rates = decision_rates(decisions, TIERS)
    assert rates.set_index(["product", "outcome"])["amount_tier"].to_dict() == {
        ("payment", "step_up"): "medium",
        ("personal", "approve"): "<=20k",
    }


def test_published_tables_are_atomic_and_keep_a_drift_history(tmp_path: Path) -> None:
    model = RegisteredModel("merchant_pd", "1", ["x_stable", "x_shifted"])
    area = tmp_path / "monitoring"
    versions = []
    for day, shift in ((AS_OF, 0.0), (AS_OF + timedelta(days=1), 1.0), (AS_OF, 2.0)):
        drift, perf, info = monitor_model(
            model, scored_history(shift=shift), as_of=day, recent_days=7, fraud=False
        )
        report = MonitoringReport(day, drift, perf, pd.DataFrame(), pd.DataFrame([info]))
        versions.append(publish_report(report, tmp_path, 0.25))
    assert current_version(area) == versions[-1]
    history = read_table(area, "drift_history")
    assert history is not None
    # one set of rows per day; the re-run of AS_OF replaced that day's rows
    assert history.groupby("as_of").size().tolist() == [3, 3]
    rerun = history[history["as_of"] == pd.Timestamp(AS_OF)].set_index("feature")
    assert rerun.loc["x_shifted", "psi"] > 1.0
    for name in ("drift", "performance", "models"):
        assert read_table(area, name) is not None

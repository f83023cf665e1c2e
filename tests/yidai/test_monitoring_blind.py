"""Monitoring refuses to be blind: unknown drift, no performance, no champion, stale data."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from yidai.jobs.monitoring import (
    BlindMonitoringError,
    blind_spots,
    check_not_blind,
    performance_computable,
)

FRESH = {
    "pos_transactions": "2026-11-30",
    "payments": "2026-11-29",
    "loan_applications": "2026-11-30",
}


def _summary(*models: dict[str, Any]) -> dict[str, Any]:
    return {"as_of": "2026-11-30", "models": list(models), "drift": [], "max_psi": None}


def _model(name: str, psi: float | None, **extra: Any) -> dict[str, Any]:
    return {"model": name, "version": "3", "status": "ok", "score_psi": psi,
            "n_current": 120, "n_reference": 900, "current_window": "2026-11-24..2026-11-30",
            **extra}  # fmt: skip


def test_a_run_that_saw_everything_passes() -> None:
    summary = _summary(_model("merchant_pd", 0.02), _model("payment_fraud", 0.01))
    perf = {"merchant_pd": True, "payment_fraud": True}
    check_not_blind(summary, latest_days=FRESH, performance=perf, max_staleness_days=3)


def test_all_unknown_psi_and_no_data_fail_naming_what_was_missing() -> None:
    """The day without data of the issue: every PSI unknown, max_psi None."""
    summary = _summary(
        _model("merchant_pd", None, n_current=0),
        _model("payment_fraud", float("nan"), n_current=0),
        {"model": "sme_pd", "version": None, "status": "missing"},
    )  # fmt: skip
    latest = {**FRESH, "payments": "2026-11-20", "loan_applications": None}
    with pytest.raises(BlindMonitoringError) as caught:
        check_not_blind(
            summary, latest_days=latest, performance={"merchant_pd": True}, max_staleness_days=3
        )
    message = str(caught.value)
    assert "merchant_pd: score drift unknown (0 current rows in 2026-11-24..2026-11-30" in message
    assert "payment_fraud: score drift unknown" in message
    assert "payment_fraud: no performance metric" in message
    assert "sme_pd: no champion to monitor" in message
    assert "payments: newest data 2026-11-20 is 10 days before 2026-11-30 (limit 3)" in message
    assert "loan_applications: no data" in message
    assert "merchant_pd: no performance" not in message


def test_staleness_is_a_setting() -> None:
    summary = _summary(_model("merchant_pd", 0.02))
    latest = {"pos_transactions": "2026-11-25"}
    perf = {"merchant_pd": True}
    assert blind_spots(summary, latest_days=latest, performance=perf, max_staleness_days=5) == []
    assert (
        len(blind_spots(summary, latest_days=latest, performance=perf, max_staleness_days=4)) == 1
    )


def test_performance_needs_one_cohort_with_a_ranking_metric() -> None:
    table = pd.DataFrame(
        {"model": ["a", "a", "b"], "cohort": [1, 2, 1], "auc": [float("nan"), 0.7, float("nan")]}
    )
    assert performance_computable(table) == {"a": True, "b": False}
    assert performance_computable(pd.DataFrame(columns=["model", "auc"])) == {}


def test_the_dag_check_reports_blindness_and_drift_together() -> None:
    from yidai.jobs import pipeline

    summary = {
        **_summary(_model("merchant_pd", 0.4), _model("payment_fraud", None, n_current=0)),
        "threshold": 0.25,
        "drift": [{"model": "merchant_pd", "feature": "score", "psi": 0.4, "status": "drift"}],
        "latest_data_day": FRESH,
        "performance_computable": {"merchant_pd": True, "payment_fraud": True},
    }
    with pytest.raises(BlindMonitoringError) as caught:
        pipeline.check_monitoring(summary)
    assert "payment_fraud: score drift unknown" in str(caught.value)
    assert "merchant_pd: score 0.400" in str(caught.value)
    fine = {**summary, "models": [_model("merchant_pd", 0.02)], "drift": []}
    assert pipeline.check_monitoring(fine)["drifted"] == 0

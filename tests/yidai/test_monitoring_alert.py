"""An alert worth reading: a stable book with a tenure that grows with calendar time stays
silent, a planted shift alarms (naming the feature, its reference and the bin that moved);
the trend and the characteristic analysis are the alert's own numbers."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.metrics import psi
from tests.support.champions import Champion
from yidai.jobs.monitoring import (
    SCORE,
    DriftError,
    MonitoringReport,
    characteristics,
    check_drift,
    drift_table,
    drift_trend,
    monitor_model,
)

AS_OF = date(2026, 9, 30)
START = pd.Timestamp("2025-04-01")
TENURE = "customer_tenure_days_life"  # declared structural in models.drift


CHAMPION = Champion(
    "personal_pd",
    "3",
    ["customer_spend_amount_90d", TENURE],
    metadata={"windows": {"train": "2025-10-01..2026-03-31"}},
)


def book(seed: int = 11, *, shift: float = 0.0, tenure_jump: float = 0.0) -> pd.DataFrame:
    """18 months of decisions, 40 a day: spending stable; tenure = days since the customer
    joined (joined before the history began), so it grows by one a day with calendar time.
    ``shift`` moves the last 7 days' spending by that many standard deviations (log scale),
    ``tenure_jump`` adds days to their tenure (e.g. a master-data load gone wrong)."""
    rng = np.random.default_rng(seed)
    days = int((pd.Timestamp(AS_OF) - START).days) + 1
    n = 40 * days
    offset = np.sort(rng.uniform(0, days, n))
    ts = START + pd.to_timedelta(offset, unit="D")
    recent = np.asarray(ts >= pd.Timestamp(AS_OF) - pd.Timedelta(days=6))
    spend = rng.lognormal(8 + shift * recent, 1.0)
    tenure = rng.exponential(700, n) + 30 + offset + tenure_jump * recent
    score = 1 / (1 + np.exp(-(-3 - 0.2 * (np.log(spend) - 8) + rng.normal(0, 1, n))))
    return pd.DataFrame(
        {
            "ts": ts,
            "label": np.nan,
            "score": score,
            "customer_spend_amount_90d": spend,
            TENURE: tenure,
        }
    )


def run(history: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    drift, _, info = monitor_model(CHAMPION, history, as_of=AS_OF, recent_days=7, fraud=False)
    return drift, info


def test_a_stable_book_whose_tenure_grows_with_calendar_time_does_not_alarm() -> None:
    history = book()
    drift, _info = run(history)
    check_drift(drift)  # silent
    rows = drift.set_index("feature")
    assert rows.loc[TENURE, "reference"] == "rolling 28d" and rows.loc[TENURE, "structural"]
    assert rows.loc["customer_spend_amount_90d", "reference"] == "training"
    assert (rows["status"] == "stable").all(), rows[["psi", "status"]]
    # against the fixed training window the tenure's calendar growth alone would alarm:
    # the reason it is declared structural rather than silently dropped
    ts = pd.to_datetime(history["ts"])
    train = history[(ts >= "2025-10-01") & (ts < "2026-04-01")]
    fixed = drift_table(train, history[ts >= "2026-09-24"], [TENURE])
    assert fixed["psi"].iloc[0] >= 0.25
    # every day of a stable month is silent, not only the last one
    for day in pd.date_range("2026-09-01", "2026-09-29", freq="7D"):
        quiet, _, _ = monitor_model(CHAMPION, history, as_of=day.date(), recent_days=7, fraud=False)
        check_drift(quiet)


def test_a_planted_shift_alarms_naming_the_feature_and_its_reference() -> None:
    drift, _ = run(book(shift=0.8))
    days = r"\d{4}-\d\d-\d\d\.\.\d{4}-\d\d-\d\d"  # the reference's days, first..last
    with pytest.raises(
        DriftError, match=rf"customer_spend_amount_90d \d\.\d+ \(vs training {days}\)"
    ):
        check_drift(drift)
    rows = drift.set_index("feature")
    assert rows.loc["customer_spend_amount_90d", "status"] == "drift"
    assert rows.loc[TENURE, "status"] == "stable"


def test_a_sudden_jump_of_a_structural_feature_still_alarms() -> None:
    drift, _ = run(book(tenure_jump=1500))
    with pytest.raises(DriftError, match=rf"{TENURE} \d\.\d+ \(vs rolling 28d \S+\.\.\S+\)"):
        check_drift(drift)


def test_the_dag_summary_carries_what_the_alert_reads() -> None:
    drift, info = run(book(shift=0.8))
    report = MonitoringReport(
        as_of=AS_OF,
        drift=drift,
        performance=pd.DataFrame(),
        decision_rates=pd.DataFrame(),
        models=pd.DataFrame([info]),
    )
    summary = report.summary()
    assert summary["drifted"] >= 1
    assert {"reference", "reference_window", "structural"} <= set(summary["drift"][0])
    with pytest.raises(
        DriftError, match=r"customer_spend_amount_90d \S+ \(vs training \S+\.\.\S+\)"
    ):
        check_drift(summary)  # what check_thresholds in monitoring_daily does
    quiet, _quiet_info = run(book())
    check_drift(MonitoringReport(AS_OF, quiet, *(pd.DataFrame(),) * 2, pd.DataFrame()).summary())


def test_the_trend_and_the_characteristic_analysis_are_the_alerts_numbers() -> None:
    history = book(shift=0.8)
    drift, info = run(history)
    trend = drift_trend(CHAMPION, history, drift, info)
    months = sorted(trend["month"].unique())
    assert months[0] == pd.Timestamp("2025-10-01") and months[-1] == pd.Timestamp("2026-09-01")
    spend = trend[trend["feature"] == "customer_spend_amount_90d"].set_index("month")["psi"]
    assert (spend.drop(months[-1]) < 0.1).all()  # stable every month before the shift
    assert set(trend.loc[trend["feature"] == TENURE, "reference"]) == {"rolling 28d"}
    assert (trend.loc[trend["feature"] == TENURE, "status"] == "stable").all()

    chars = characteristics(CHAMPION, history, drift, info)
    by_feature = chars.groupby("feature")["contribution"].sum()
    psis = drift.set_index("feature")["psi"]
    for feature, total in by_feature.items():
        assert total == pytest.approx(psis[feature], rel=1e-9)
    assert SCORE not in set(chars["feature"])
    spend_bins = chars[chars["feature"] == "customer_spend_amount_90d"]
    assert spend_bins["reference_share"].sum() == pytest.approx(1, abs=1e-3)
    # the largest contribution is in the top bin: spending moved up
    top = spend_bins.loc[spend_bins["contribution"].idxmax()]
    assert top["label"].startswith(">") and top["current_share"] > top["reference_share"]


def test_characteristic_table_reproduces_the_psi() -> None:
    from yidai.jobs.analytics.model_monitoring import characteristic_table

    rng = np.random.default_rng(1)
    e = np.r_[rng.normal(size=3000), [np.nan] * 30]
    a = np.r_[rng.normal(0.4, 1.2, size=800), [np.nan] * 2]
    table = characteristic_table(e, a, 10)
    assert len(table) == 11 and table["label"].iloc[-1] == "missing"
    assert table["n_reference"].sum() == len(e) and table["n_current"].sum() == len(a)
    assert table["contribution"].sum() == pytest.approx(psi(e, a, 10), rel=1e-12)
    e2, a2 = np.r_[[0.0] * 80, [1.0] * 20], np.r_[[0.0] * 10, [1.0] * 90]
    binary = characteristic_table(e2, a2)  # repeated quantile edges merged
    assert binary["label"].iloc[0] == "≤ 0" and binary["label"].iloc[-1] == "missing"
    assert binary["contribution"].sum() == pytest.approx(psi(e2, a2), rel=1e-12)


def test_the_alert_says_which_bin_moved() -> None:
    from yidai.jobs.monitoring import explain_drift

    history = book(shift=0.8)
    drift, info = run(history)
    explained = explain_drift(drift, characteristics(CHAMPION, history, drift, info))
    moved = explained.set_index("feature")["moved"]
    assert moved["customer_spend_amount_90d"].startswith("bin > ")
    assert moved[SCORE] == ""  # the score has no characteristic analysis
    with pytest.raises(DriftError, match=r"\(vs training \S+; bin > \S+: \d+\.\d% -> \d+\.\d%\)"):
        check_drift(explained)


def test_the_dags_last_task_alarms_on_the_planted_shift_only() -> None:
    from yidai.jobs.pipeline import check_monitoring

    def summary(history: pd.DataFrame) -> dict[str, Any]:
        drift, info = run(history)
        report = MonitoringReport(AS_OF, drift, *(pd.DataFrame(),) * 2, pd.DataFrame([info]))
        return {
            **report.summary(),
            "performance_computable": {CHAMPION.name: True},
            "latest_data_day": {"loan_applications": AS_OF.isoformat()},
        }

    assert check_monitoring(summary(book()))["drifted"] == 0
    with pytest.raises(DriftError, match="customer_spend_amount_90d"):
        check_monitoring(summary(book(shift=0.8)))


def test_a_model_without_decisions_gives_empty_tables_not_a_crash() -> None:
    empty = book().iloc[0:0]
    drift, info = run(empty)
    assert drift["psi"].isna().all() and set(drift["status"]) == {"unknown"}
    trend = drift_trend(CHAMPION, empty, drift, info)
    assert trend.empty and {"month", "psi", "status"} <= set(trend.columns)
    assert characteristics(CHAMPION, empty, drift, info).empty
    check_drift(drift)  # unknown is for the blind-monitoring check, not a drift alarm

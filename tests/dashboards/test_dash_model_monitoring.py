"""The model monitoring page shows the monitoring job's own numbers: the drift table the DAG
alerts on, the characteristic analysis summing to the PSI, calibration over time and roll
rates recomputed by the analytics functions."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from tests.support.champions import Champion
from yidai.jobs.analytics import credit_risk as cr
from yidai.jobs.analytics.dashboard_tables import read_meta, read_table


def _monitor(home) -> None:
    """Publish ``serving/monitoring`` with the monitoring job's functions over the simulated
    home's scored personal applications (a planted shift in the last week of one feature)
    and the landing zone's performance tape."""
    from tests.dashboards.conftest import _landing_con
    from yidai.jobs.monitoring import (
        MAX_CURRENT_DAYS,
        MonitoringReport,
        characteristics,
        current_start,
        drift_trend,
        monitor_model,
        publish_report,
    )

    area = home / "serving" / "applications"
    as_of = date.fromisoformat(read_meta(area)["as_of"])
    scored = read_table(area, "personal")
    features = [
        c
        for c in read_meta(area)["features"]["personal"]
        if c in scored and scored[c].nunique() > 5
    ][:4]
    frame = (
        scored.drop(columns="score")
        .rename(columns={"decision_ts": "ts", "pd": "score"})[["ts", "label", "score", *features]]
        .copy()
    )
    frame["label"] = frame["label"].astype("Float64")
    frame["customer_tenure_days_life"] = (
        np.random.default_rng(3).exponential(600, len(frame))
        + (pd.to_datetime(frame["ts"]) - pd.to_datetime(frame["ts"]).min()).dt.days
    )
    # the planted shift covers the drift's whole current window: the last 14 days, widened
    # to 200 decisions (enough for 10 PSI bins) as monitor_model widens it
    ts = pd.to_datetime(frame["ts"])
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    recent = ts >= current_start(ts, end, 14, 200, MAX_CURRENT_DAYS)
    frame.loc[recent, features[0]] = frame.loc[recent, features[0]] * 3  # the planted shift
    champion = Champion("personal_pd", "1", [*features, "customer_tenure_days_life"])
    drift, perf, info = monitor_model(
        champion, frame, as_of=as_of, recent_days=14, fraud=False, min_current_rows=200
    )
    con = _landing_con(home / "landing")
    try:
        rolls = cr.roll_rates(cr.read_tape(con, as_of))
    finally:
        con.close()
    report = MonitoringReport(
        as_of=as_of,
        drift=drift,
        performance=perf,
        decision_rates=pd.DataFrame(columns=["product", "amount_tier", "outcome", "n"]),
        models=pd.DataFrame([info]),
        drift_trend=drift_trend(champion, frame, drift, info),
        characteristics=characteristics(champion, frame, drift, info),
        roll_rates=rolls,
    )
    publish_report(report, home / "serving", 0.25)


@pytest.fixture
def monitored_home(full_home):
    if not (full_home / "serving" / "monitoring" / "CURRENT").exists():
        _monitor(full_home)
    return full_home


def _table(app, column: str) -> pd.DataFrame:
    """The first data frame shown on the page with ``column``."""
    for frame in app.dataframe:
        value = frame.value
        value = value.data if hasattr(value, "data") else value
        if column in value.columns:
            return value.reset_index(drop=True)
    raise AssertionError(f"no table with {column!r} on the page")


def test_the_page_shows_the_drift_table_the_dag_alerts_on(monitored_home, run_page, metric_values):
    app = run_page("model_monitoring")
    monitoring = monitored_home / "serving" / "monitoring"
    drift = read_table(monitoring, "drift")
    mine = drift[drift["model"] == "personal_pd"]
    metrics = metric_values(app)
    assert metrics["Features in alert (PSI ≥ 0.25)"] == str((mine["status"] == "drift").sum())
    assert metrics["Features to watch (PSI ≥ 0.1)"] == str((mine["status"] == "shift").sum())
    assert metrics["Structural features (rolling reference)"] == "1"
    assert (mine["status"] == "drift").sum() >= 1  # the planted shift
    shown = _table(app, "reference").set_index("feature")
    expected = mine.set_index(mine["feature"].replace({"__score__": "score"}))["psi"]
    assert np.allclose(shown.loc[expected.index, "psi"], expected)
    assert shown.loc["customer_tenure_days_life", "reference"] == "rolling 28d"
    windows = mine.set_index(mine["feature"].replace({"__score__": "score"}))["reference_window"]
    assert (windows != "").all() and (shown.loc[windows.index, "reference_window"] == windows).all()
    assert set(shown["status"]) <= {"stable", "watch", "ALERT", "unknown"}

    chars = _table(app, "contribution")
    worst = mine.sort_values("psi", ascending=False)
    worst = worst[worst["feature"] != "__score__"].iloc[0]
    assert chars["contribution"].sum() == pytest.approx(worst["psi"], rel=1e-6)

    scored = read_table(monitored_home / "serving" / "applications", "personal")
    calib = cr.calibration_over_time(scored, "grade")
    shown_calib = _table(app, "observed_rate")
    assert shown_calib["n"].tolist() == calib["n"].tolist()
    assert np.allclose(shown_calib["observed_rate"], calib["observed_rate"])
    assert np.allclose(shown_calib["expected_rate"], calib["expected_rate"])
    app.radio(key="mm_calib_by").set_value("score band").run()
    banded = cr.calibration_over_time(
        scored.assign(score_band=cr.score_band(scored["score"])), "score_band"
    )
    assert _table(app, "observed_rate")["n"].tolist() == banded["n"].tolist()
    charts = {c.proto.id for c in app.get("plotly_chart")}
    assert len(charts) >= 7  # trend, 2 characteristic, calibration, 2 roll rate, AUC, deciles

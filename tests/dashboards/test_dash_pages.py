"""Every page renders with Streamlit's AppTest: empty states first, then published data."""

from __future__ import annotations

from datetime import date

import pytest

from yidai.core.settings import reset_settings_cache
from yidai.jobs.analytics.portfolio_tables import publish_portfolio

PAGES = (
    "portfolio",
    "model_monitoring",
    "fraud",
    "merchant_limits",
    "decision_explorer",
    "policy_simulator",
)


@pytest.mark.parametrize("page", PAGES)
def test_page_shows_an_empty_state_before_any_publication(empty_home, page, run_page):
    app = run_page(page)
    assert any("No data yet" in info.value for info in app.info)


@pytest.fixture
def handmade_home(tmp_path, monkeypatch, handmade_warehouse):
    monkeypatch.setenv("YIDAI_HOME", str(tmp_path))
    reset_settings_cache()
    publish_portfolio()
    yield tmp_path
    reset_settings_cache()


def test_portfolio_page_key_figures(handmade_home, run_page, metric_values):
    app = run_page("portfolio")
    metrics = metric_values(app)
    assert metrics["Applications"] == "4"
    assert metrics["Approval rate"] == "75.0%"
    assert metrics["Drawn"] == "¥4,900"
    # the product filter narrows every figure
    app.sidebar.multiselect(key="portfolio_product").set_value(["merchant"]).run()
    assert metric_values(app)["Applications"] == "1"
    assert metric_values(app)["Committed"] == "¥40.0k"


def test_fraud_page_key_figures(handmade_home, run_page, metric_values):
    app = run_page("fraud")
    metrics = metric_values(app)
    assert metrics["Known frauds"] == "4"
    assert metrics["Caught"] == "25.0%"
    app.sidebar.date_input(key="fr_asof").set_value(date(2025, 10, 16)).run()
    assert metric_values(app)["Known frauds"] == "1"  # only T4 was reported by then


# ------------------------------------------------------------ on a small simulation
def test_portfolio_page_on_simulated_data(full_home, run_page, metric_values):
    from yidai.jobs.analytics.dashboard_tables import read_table

    app = run_page("portfolio")
    apps = read_table(full_home / "serving" / "portfolio", "applications_daily")
    expected_rate = apps["approved"].sum() / apps["applications"].sum()
    assert metric_values(app)["Applications"] == f"{apps['applications'].sum():,.0f}"
    assert metric_values(app)["Approval rate"] == f"{expected_rate * 100:.1f}%"
    assert len(app.get("plotly_chart")) >= 5


def test_fraud_page_on_simulated_data(full_home, run_page, metric_values):
    from yidai.jobs.analytics.dashboard_tables import read_table

    app = run_page("fraud")
    events = read_table(full_home / "serving" / "portfolio", "fraud_events")
    assert metric_values(app)["Known frauds"] == f"{len(events):,.0f}"
    assert len(app.dataframe) >= 3  # tier table, risky terminals / merchants, suspects


def test_model_monitoring_page(full_home, run_page, metric_values):
    from models import metrics
    from yidai.jobs.analytics.dashboard_tables import read_table

    app = run_page("model_monitoring")
    scored = read_table(full_home / "serving" / "applications", "personal")
    done = scored[scored["label"].notna()]
    cohorts = [
        g for _, g in done.groupby("booking_month") if len(g) >= 30 and g["label"].nunique() == 2
    ]
    last = cohorts[-1]  # the latest matured cohort where AUC is defined
    expected = metrics.auc(last["label"].astype(int), last["pd"])
    assert metric_values(app)["AUC (latest matured cohort)"] == f"{expected:.3f}"
    arms = app.dataframe[-1].value
    assert arms["arm"].tolist() == ["champion", "challenger"]


def test_policy_simulator_page_compares_with_the_live_policy(full_home, run_page, metric_values):
    app = run_page("policy_simulator")
    table = app.dataframe[0].value.set_index("metric")
    assert table.loc["approval_rate", "change"] == 0  # candidate = live at first
    live_rate = table.loc["approval_rate", "live"]
    app.number_input(key="ps_approve").set_value(700.0).run()
    app.number_input(key="ps_refer").set_value(700.0).run()
    assert not app.exception
    table = app.dataframe[0].value.set_index("metric")
    assert table.loc["approval_rate", "candidate"] < live_rate  # a stricter cut-off
    truth = app.dataframe[1].value.set_index("cell")
    assert truth["applicants"].sum() == table.loc["applications", "live"]
    models = app.dataframe[2].value.set_index("model")
    assert "champion" in models.index and models["true_auc"].between(0.5, 1.0).all()


def test_merchant_limits_page(full_home, run_page, metric_values):
    app = run_page("merchant_limits")
    metrics_ = metric_values(app)
    assert metrics_["Active lines"] == "2" and metrics_["Frozen"] == "1"
    assert metrics_["Utilisation (active)"] == "71.7%"  # (2500 + 19000) / (10000 + 20000)


def test_decision_explorer_finds_a_decision_and_its_challenger(full_home, run_page, metric_values):
    app = run_page("decision_explorer")
    app.text_input(key="dx_id").set_value("d-credit-1").run()
    assert metric_values(app)["Outcome"] == "decline"
    assert metric_values(app)["Grade"] == "F"
    shown = " ".join(str(j.value) for j in app.json)
    assert "refer" in shown  # the challenger would have referred
    app.text_input(key="dx_id").set_value("nope").run()
    assert any("No decision matches" in w.value for w in app.warning)


def _bar_total(chart: object) -> float:
    """Sum of every bar of a rendered plotly chart (plotly may ship arrays as base64)."""
    import base64
    import json

    import numpy as np

    spec = json.loads(chart.proto.spec)  # type: ignore[attr-defined]
    total = 0.0
    for trace in spec["data"]:
        y = trace["y"]
        if isinstance(y, dict):
            y = np.frombuffer(base64.b64decode(y["bdata"]), dtype=np.dtype(y["dtype"]))
        total += float(np.sum(y))
    return total


def test_merchant_limits_tiles_and_bars_reconcile(full_home, run_page, metric_values):
    """Issue 16: the page's tiles and its exposure bars add up to each other (one set of
    definitions, yidai.decisioning.exposure)."""
    from dashboards import ui
    from yidai.jobs.analytics import merchant_lines as ml
    from yidai.jobs.limits import read_limits_table

    app = run_page("merchant_limits")
    shown = metric_values(app)
    limits = read_limits_table(full_home / "serving")
    kpis = ml.line_kpis(limits)
    assert kpis["exposure"] == pytest.approx(kpis["drawn"] + kpis["available"])
    assert shown["Exposure (drawn + available)"] == ui.fmt_money(kpis["exposure"])
    assert shown["Drawn (active + frozen)"] == ui.fmt_money(kpis["drawn"])
    assert shown["Available"] == ui.fmt_money(kpis["available"])
    assert shown["Committed (active lines)"] == ui.fmt_money(kpis["committed"])
    # committed = drawn on active lines + available (no active line is drawn past its line)
    active = limits[limits["status"] == "active"]
    over = (active["outstanding"] - active["credit_line"]).clip(lower=0).sum()
    on_active = active["outstanding"].sum()
    assert kpis["committed"] + over == pytest.approx(on_active + kpis["available"])
    bars = [c for c in app.get("plotly_chart") if "Exposure by grade" in c.proto.spec]
    assert len(bars) == 1
    assert _bar_total(bars[0]) == pytest.approx(kpis["exposure"])

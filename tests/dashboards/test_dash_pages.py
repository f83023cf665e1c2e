"""Every page renders with Streamlit's AppTest: empty states first, then published data."""

from __future__ import annotations

from datetime import date

import pytest

from yidai.core.settings import reset_settings_cache
from yidai.jobs.analytics.portfolio_tables import publish_portfolio

PAGES = (
    "overview",
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
    if page == "overview":  # links only: nothing to publish
        assert app.title[0].value == "Overview: Yidai risk dashboards"
        return
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
    from dashboards import ui
    from yidai.decisioning import load_credit_policy
    from yidai.jobs.analytics import policy_sim as ps
    from yidai.jobs.analytics.dashboard_tables import read_table

    app = run_page("policy_simulator")
    product = app.sidebar.selectbox(key="ps_product").value
    scored = read_table(full_home / "serving" / "applications", product)
    live = load_credit_policy(product)
    expected = ps.compare_policies(scored, live, live)[0].set_index("metric")
    shown = app.dataframe[0].value.set_index("Metric")
    assert shown.at["Approval rate", "Live"] == ui.fmt_pct(expected.at["approval_rate", "live"], 2)
    assert shown.at["Approval rate", "Change"] == "= 0"  # candidate = live at first
    assert shown.at["Applications", "Live"] == f"{len(scored):,}"
    app.number_input(key="ps_approve").set_value(700.0).run()
    app.number_input(key="ps_refer").set_value(700.0).run()
    assert not app.exception
    candidate = ps.candidate_policy(
        live, approve_min_score=700.0, refer_min_score=700.0,
        max_pd=float(live.cutoffs.max_pd or 1.0), limit_factor=1.0,
    )  # fmt: skip
    table = ps.compare_policies(scored, live, candidate)[0].set_index("metric")
    change = table.at["approval_rate", "change"]
    assert change < 0  # a stricter cut-off
    rate = next(m for m in app.metric if m.label == "Approval rate")
    assert rate.value == ui.fmt_pct(table.at["approval_rate", "candidate"])
    assert rate.delta == ui.fmt_delta(change, ui.fmt_pp) and rate.delta.startswith("-")
    shown = app.dataframe[0].value.set_index("Metric")
    assert shown.at["Approval rate", "Change"].startswith("▼ -")
    truth = app.dataframe[1].value.set_index("cell")
    assert truth["applicants"].sum() == len(scored)
    models = app.dataframe[2].value.set_index("model")
    assert "champion" in models.index and models["true_auc"].between(0.5, 1.0).all()


def test_policy_simulator_explains_bad_cutoffs_and_resets_on_product_change(full_home, run_page):
    from yidai.decisioning import load_credit_policy

    app = run_page("policy_simulator")
    first = app.sidebar.selectbox(key="ps_product").value
    approve = app.number_input(key="ps_approve").value
    app.number_input(key="ps_refer").set_value(approve + 50).run()
    assert not app.exception
    (warning,) = app.warning
    assert "refer cut-off" in warning.value and "above the approve cut-off" in warning.value
    assert "http" not in warning.value and "validation error" not in warning.value
    other = next(p for p in ("personal", "merchant", "sme") if p != first)
    app.sidebar.selectbox(key="ps_product").set_value(other).run()
    live = load_credit_policy(other)
    assert app.number_input(key="ps_refer").value == live.cutoffs.refer_min_score
    assert app.number_input(key="ps_approve").value == live.cutoffs.approve_min_score
    assert not app.warning


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
    assert metric_values(app)["PD"] == "21.00%"
    assert app.dataframe[1].value.set_index("")["Value"]["Product"] == "逸贷 personal"
    details = app.dataframe[1].value.set_index("")["Value"]
    assert details["Feature snapshot"] == "s1" and details["Model version"] == "personal_pd v3"
    (inputs,) = [d.value for d in app.dataframe if "percentile" in d.value.columns]
    assert inputs.columns.tolist() == ["feature", "value", "percentile", "contribution"]
    assert inputs.set_index("feature").at["customer_spend_amount_180d", "value"] == 1200.0
    shown = " ".join(str(j.value) for j in app.json)
    assert "refer" in shown  # the challenger would have referred
    app.text_input(key="dx_id").set_value("C000042").run()  # a customer: both decisions
    assert sorted(app.dataframe[0].value["decision_id"]) == ["d-credit-1", "d-pay-1"]
    app.text_input(key="dx_id").set_value("nope").run()
    assert any("No decision matches" in w.value for w in app.warning)


def test_fraud_page_catch_rate_is_the_recomputation_from_the_scored_events(
    full_home, run_page, metric_values
):
    """The model's catch rate on the page equals a recomputation from the scored events
    with the live policy's tier thresholds (written out here, not through the page's code)."""
    import numpy as np

    from dashboards import ui
    from yidai.decisioning import load_payment_policy
    from yidai.jobs.analytics import fraud as fr
    from yidai.jobs.analytics.dashboard_tables import read_table

    app = run_page("fraud")
    events = read_table(full_home / "serving" / "applications", "payment_events")
    policy = load_payment_policy()
    bounds = [t.max_amount for t in policy.tiers if t.max_amount is not None]
    tier = np.searchsorted(bounds, events["amount"].to_numpy(), side="left")
    step_up_at = np.array([t.step_up_at for t in policy.tiers])[tier]
    stopped = events["fraud_prob"].to_numpy() >= step_up_at
    fraud = events["label"].to_numpy() == 1
    w = events["weight"].to_numpy()
    catch = (w * (fraud & stopped)).sum() / (w * fraud).sum()
    amount = events["amount"].to_numpy()
    catch_amount = (amount * (fraud & stopped)).sum() / (amount * fraud).sum()
    shown = metric_values(app)
    assert fraud.sum() > 5 and 0 < catch < 1
    assert shown["Model catch (count)"] == ui.fmt_pct(catch)
    assert shown["Model catch (amount)"] == ui.fmt_pct(catch_amount)
    by_tier = app.dataframe[0].value
    totals = fr.model_vs_rules_by_tier(events, policy, fr.DEFAULT_TIERS)
    assert by_tier["frauds"].sum() == pytest.approx(totals["frauds"].sum())
    charts = [c for c in app.get("plotly_chart") if "live policy" in c.proto.spec]
    assert len(charts) == 1  # the trade-off curve with the live point marked
    # the channel filter applies to the model's figures too
    app.sidebar.multiselect(key="fr_channel").set_value(["payment"]).run()
    only = events[events["event_type"] == "payment"]
    expected = fr.model_totals(only, policy)["catch_rate"]
    assert metric_values(app)["Model catch (count)"] == ui.fmt_pct(expected)


def test_portfolio_period_filter_applies_to_exposure_and_vintages(
    full_home, run_page, metric_values
):
    from dashboards import ui
    from yidai.jobs.analytics import portfolio as pf
    from yidai.jobs.analytics.dashboard_tables import read_table

    app = run_page("portfolio")
    exposure = read_table(full_home / "serving" / "portfolio", "exposure_monthly")
    months = sorted(pd_dates(exposure["snapshot_date"]))
    end = months[len(months) // 2]
    start = min(
        pd_dates(read_table(full_home / "serving" / "portfolio", "applications_daily")["day"])
    )
    app.sidebar.date_input(key="portfolio_period").set_value((start, end)).run()
    kept = pf.filter_rows(exposure, start=start, end=end, date_column="snapshot_date")
    latest = kept[kept["snapshot_date"] == kept["snapshot_date"].max()]
    assert latest["snapshot_date"].max() < exposure["snapshot_date"].max()
    assert metric_values(app)["Committed"] == ui.fmt_money(latest["committed"].sum())
    assert metric_values(app)["Drawn"] == ui.fmt_money(latest["drawn"].sum())
    (vintage,) = [c for c in app.get("plotly_chart") if "months on book" in c.proto.spec]
    import json

    quarters = {t["name"] for t in json.loads(vintage.proto.spec)["data"]}
    last = f"{end.year}Q{(end.month - 1) // 3 + 1}"
    assert quarters and max(quarters) <= last  # no cohort booked after the period


def pd_dates(values) -> list:
    import pandas as pd

    return [d.date() for d in pd.to_datetime(values)]


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

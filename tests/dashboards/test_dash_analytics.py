"""Pure page computations: portfolio KPIs, vintages, spikes, fraud views."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from yidai.jobs.analytics import fraud as fr
from yidai.jobs.analytics import portfolio as pf
from yidai.jobs.analytics import portfolio_tables
from yidai.jobs.analytics.tiers import DEFAULT_TIERS, amount_tier


@pytest.fixture
def tables(handmade_con):
    return portfolio_tables.portfolio_tables(handmade_con, date(2025, 12, 31))


def test_kpis_use_the_latest_month_end(tables):
    kpis = pf.portfolio_kpis(tables["applications_daily"], tables["exposure_monthly"])
    assert kpis["applications"] == 4 and kpis["approval_rate"] == pytest.approx(0.75)
    assert kpis["booked_amount"] == 52000.0
    assert kpis["committed"] == 52000.0 and kpis["drawn"] == 4900.0
    assert kpis["dpd30_share"] == pytest.approx(3900.0 / 4900.0)  # A1 (900) + A4 (3000)


def test_filters_restrict_product_and_period(tables):
    daily = tables["applications_daily"]
    only = pf.filter_rows(
        daily, products=["personal"], start=date(2025, 10, 10), end=date(2025, 10, 31)
    )
    assert only["applications"].sum() == 2
    kpis = pf.portfolio_kpis(only, tables["exposure_monthly"].iloc[0:0])
    assert np.isnan(kpis["drawn"])


def test_vintage_curves_rates(tables):
    curves = pf.vintage_curves(tables["vintages"], 90)
    oct_cohort = curves[curves["cohort"] == "2025-10"]
    assert oct_cohort["bad_rate"].tolist() == [0.0, 0.0, 0.5]
    with pytest.raises(ValueError):
        pf.vintage_curves(tables["vintages"], 60)


def test_committed_vs_drawn_utilisation(tables):
    lines = pf.committed_vs_drawn(tables["exposure_monthly"])
    dec = lines[
        (lines["snapshot_date"] == pd.Timestamp("2025-12-31")) & (lines["product"] == "merchant")
    ]
    assert dec["utilisation"].iloc[0] == pytest.approx(3000 / 40000)
    assert dec["undrawn"].iloc[0] == 37000.0


def test_drawdown_spike_is_flagged_against_the_trailing_baseline():
    days = pd.date_range("2025-10-01", periods=40, freq="D")
    rng = np.random.default_rng(1)
    amount = 1000 + rng.normal(0, 30, size=40)
    amount[35] = 5000  # a run on the lines
    frame = pd.DataFrame({"day": days, "product": "sme", "amount": amount, "drawdowns": 10})
    spikes = pf.drawdown_spikes(frame, window=28, threshold=3.0)
    assert spikes.loc[spikes["spike"], "day"].tolist() == [days[35]]
    assert np.isnan(spikes["zscore"].iloc[0])  # no history yet


def test_amount_tiers_are_inclusive_upper_bounds():
    tiers = amount_tier(pd.Series([0.5, 200.0, 200.01, 20000.0, 1e9]), DEFAULT_TIERS)
    assert tiers.tolist() == [
        "small <=200",
        "small <=200",
        "medium <=2k",
        "large <=20k",
        "very large >20k",
    ]


def test_known_frauds_respect_the_report_date(tables):
    events = tables["fraud_events"]
    assert set(fr.known_frauds(events, date(2025, 10, 20))["ref_id"]) == {"T4", "T3"}
    weekly = fr.caught_vs_missed(events, date(2025, 11, 30))
    assert weekly["caught"].sum() == 1 and weekly["missed"].sum() == 3
    assert fr.caught_vs_missed(events, date(2025, 10, 1)).empty


def test_fraud_by_tier_rates(tables):
    labels = [label for label, _ in DEFAULT_TIERS]
    by_tier = fr.fraud_by_tier(tables["txn_tiers"], tables["fraud_events"], labels).set_index(
        "tier"
    )
    assert by_tier.loc["medium <=2k", "frauds"] == 2  # T4 (caught) and T6
    assert by_tier.loc["medium <=2k", "caught_rate"] == pytest.approx(0.5)
    assert by_tier.loc["very large >20k", "missed_amount"] == 25000.0
    assert by_tier.index.tolist() == labels


def test_tier_totals_add_the_tiers_up(tables):
    by_tier = fr.fraud_by_tier(tables["txn_tiers"], tables["fraud_events"])
    totals = fr.tier_totals(by_tier)
    assert totals["frauds"] == by_tier["frauds"].sum() > 0
    assert totals["caught_rate"] == pytest.approx(by_tier["caught"].sum() / totals["frauds"])
    assert totals["fraud_rate"] == pytest.approx(totals["frauds"] / by_tier["txns"].sum())
    assert totals["missed_amount"] == by_tier["missed_amount"].sum()
    none = fr.tier_totals(by_tier.iloc[0:0])
    assert none["frauds"] == 0 and np.isnan(none["caught_rate"]) and np.isnan(none["fraud_rate"])


def test_decision_outcomes_by_tier():
    decisions = pd.DataFrame(
        {"amount": [10, 20, 500, 50000], "action": ["allow", "step_up", "allow", "decline"]}
    )
    out = fr.decision_outcomes_by_tier(decisions).set_index("tier")
    assert out.loc["small <=200", "step_up_rate"] == 0.5
    assert out.loc["very large >20k", "decline_rate"] == 1.0
    assert np.isnan(out.loc["large <=20k", "allow_rate"])


def test_label_arrival_is_monotone(tables):
    arrival = fr.label_arrival(tables["fraud_events"], max_days=30)
    assert arrival["share_reported"].is_monotonic_increasing
    assert arrival["share_reported"].iloc[-1] == 1.0  # every report within 30 days here


def test_top_risky_terminals_rank_skimming_first(tables):
    top = fr.top_risky_terminals(tables["terminal_risk"], k=2, min_txns=1)
    assert top["terminal_id"].tolist()[0] == "TM1"
    merchants = fr.top_risky_merchants(tables["terminal_risk"], min_txns=1)
    assert merchants["merchant_id"].iloc[0] == "M2"  # 6500 CNY of fraud


def test_cash_out_suspects_rank(tables):
    suspects = fr.cash_out_suspects(tables["merchant_cashout"], min_txns=2)
    assert suspects["merchant_id"].iloc[0] == "M3"
    assert bool(suspects["confirmed"].iloc[0])
    assert fr.cash_out_suspects(tables["merchant_cashout"], min_txns=100).empty

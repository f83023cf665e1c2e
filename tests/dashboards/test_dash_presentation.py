"""Presentation helpers, the fraud model's operating figures and the explorer's inputs table
(pure functions with hand-worked answers)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dashboards import ui
from yidai.core.errors import YidaiError
from yidai.decisioning import PaymentPolicy, load_credit_policy
from yidai.jobs.analytics import explorer
from yidai.jobs.analytics import fraud as fr
from yidai.jobs.analytics import policy_sim as ps
from yidai.jobs.analytics import portfolio as pf

TIERS = (("small", 200.0), ("large", math.inf))


def test_product_labels_and_colours_cover_every_product():
    from yidai.core.catalogue import PRODUCTS

    assert [ui.product_label(p) for p in PRODUCTS] == [
        "逸贷 personal",
        "逸贷 merchant",
        "网贷通 SME",
        "e支付 payments",
    ]
    assert ui.product_label("other") == "other"
    for product in PRODUCTS:  # one colour per product, by key and by label
        assert ui.PRODUCT_COLOURS[product] == ui.PRODUCT_COLOURS[ui.product_label(product)]
    assert len({ui.PRODUCT_COLOURS[p] for p in PRODUCTS}) == len(PRODUCTS)
    for decision in ("approve", "refer", "decline", "allow", "step_up", "freeze", "increase"):
        assert decision in ui.DECISION_COLOURS


def test_number_formats():
    assert ui.fmt_cny(402988799.31) == "¥402,988,799"
    assert ui.fmt_cny(-1200.4) == "-¥1,200"
    assert ui.fmt_cny(float("nan")) == "—"
    assert ui.fmt_money(-979_000) == "-¥979.0k"
    assert ui.fmt_money(402988799.31) == "¥402.99M"
    assert ui.fmt_pct(0.0213) == "2.1%" and ui.fmt_pct(0.02, 2) == "2.00%"
    assert ui.fmt_pp(-0.012) == "-1.2 pp"


def test_deltas_put_the_sign_first_so_falls_point_down():
    assert ui.fmt_delta(-979_000) == "-¥979.0k"  # was "¥-979.0k" with an up arrow
    assert ui.fmt_delta(1_200_000) == "+¥1.20M"
    assert ui.fmt_delta(0.012, ui.fmt_pp) == "+1.2 pp"
    assert ui.fmt_delta(-3, ui.fmt_int, arrow=True) == "▼ -3"
    assert ui.fmt_delta(2, ui.fmt_int, arrow=True) == "▲ +2"
    assert ui.fmt_delta(0.00001, ui.fmt_pp) == "0"  # no arrow for a change that shows as 0
    assert ui.fmt_delta(float("nan")) is None


def test_policy_simulator_says_plainly_what_is_wrong():
    live = load_credit_policy("personal")
    approve = live.cutoffs.approve_min_score
    with pytest.raises(YidaiError) as err:
        ps.candidate_policy(live, approve_min_score=approve, refer_min_score=approve + 10)
    message = str(err.value)
    assert "refer cut-off" in message and "above the approve cut-off" in message
    assert "http" not in message and "pydantic" not in message.lower()
    with pytest.raises(YidaiError, match="maximum PD"):
        ps.candidate_policy(live, max_pd=1.5)


def test_vintages_by_product_and_quarter():
    vintages = pd.DataFrame(
        {
            "product": ["personal"] * 4 + ["sme"],
            "booking_month": pd.to_datetime(
                ["2025-04-01", "2025-04-01", "2025-05-01", "2025-07-01", "2025-04-01"]
            ),
            "mob": [1, 2, 1, 1, 1],
            "accounts": [100, 100, 300, 50, 10],
            "ever30": [2, 5, 10, 1, 1],
            "ever90": [0, 1, 2, 0, 0],
        }
    )
    curves = pf.vintage_curves_by_cohort(vintages, 30, "Q").set_index(["product", "cohort", "mob"])
    assert curves.loc[("personal", "2025Q2", 1), "bad_rate"] == pytest.approx(12 / 400)
    assert curves.loc[("personal", "2025Q2", 2), "bad_rate"] == pytest.approx(5 / 100)
    assert curves.loc[("personal", "2025Q3", 1), "bad_rate"] == pytest.approx(1 / 50)
    assert curves.loc[("sme", "2025Q2", 1), "bad_rate"] == pytest.approx(0.1)
    monthly = pf.vintage_curves_by_cohort(vintages, 90, "M")
    assert set(monthly["cohort"]) == {"2025-04", "2025-05", "2025-07"}


# ------------------------------------------------------------------ the fraud model's view
def _policy() -> PaymentPolicy:
    return PaymentPolicy.model_validate(
        {
            "product": "payment",
            "version": "t1",
            "model": "payment_fraud",
            "feature_set": "payment_fraud_v1",
            "tiers": [
                {"name": "small", "max_amount": 200, "step_up_at": 0.5, "decline_at": 0.9},
                {"name": "large", "step_up_at": 0.2, "decline_at": 0.6},
            ],
        }
    )


@pytest.fixture
def events() -> pd.DataFrame:
    """Six scored events: small 50 / 100 / 150, large 1000 / 2000 / 5000."""
    return pd.DataFrame(
        {
            "amount": [50.0, 100.0, 150.0, 1000.0, 2000.0, 5000.0],
            "fraud_prob": [0.95, 0.6, 0.1, 0.3, 0.7, 0.1],
            "label": [1, 0, 0, 1, 0, 1],
            "weight": [1.0, 10.0, 10.0, 1.0, 10.0, 1.0],
            "rules_blocked": [False, False, False, True, True, False],
            "payer_id": ["p1", "p2", "p3", "p4", "p5", "p6"],
        }
    )


def test_policy_actions_replay_the_tier_thresholds(events):
    actions = fr.policy_actions(events, _policy())
    assert actions.tolist() == ["decline", "step_up", "allow", "step_up", "decline", "allow"]
    stricter = fr.policy_actions(events, _policy(), scale=0.1)
    assert (stricter != "allow").all()
    with pytest.raises(YidaiError, match="scale"):
        fr.policy_actions(events, _policy(), scale=0)


def test_model_vs_rules_by_tier(events):
    table = fr.model_vs_rules_by_tier(events, _policy(), TIERS).set_index("tier")
    small, large = table.loc["small"], table.loc["large"]
    assert small["events"] == 21 and small["frauds"] == 1
    assert small["catch_rate"] == 1.0 and small["catch_rate_amount"] == 1.0
    assert small["step_up_rate"] == pytest.approx(10 / 21)
    assert small["false_positive_rate"] == 0.0  # the good 100 is stepped up, not declined
    assert small["friction"] == pytest.approx(10 / 20)
    assert small["rules_catch_rate"] == 0.0
    # large: frauds 1000 (stepped up) and 5000 (allowed); the good 2000 (weight 10) declined
    assert large["catch_rate"] == 0.5
    assert large["catch_rate_amount"] == pytest.approx(1000 / 6000)
    assert large["fraud_amount_stopped"] == 1000.0
    assert large["false_positive_rate"] == 1.0 and large["decline_rate"] == pytest.approx(10 / 12)
    assert large["rules_catch_rate_amount"] == pytest.approx(1000 / 6000)
    assert large["rules_false_positive_rate"] == 1.0


def test_model_totals_and_tradeoff_curve(events):
    totals = fr.model_totals(events, _policy())
    assert totals["catch_rate"] == pytest.approx(2 / 3)
    assert totals["catch_rate_amount"] == pytest.approx(1050 / 6050)
    assert totals["friction"] == pytest.approx(20 / 30)
    curve = fr.tradeoff_curve(events, _policy(), scales=(0.01, 0.5, 2.0, 100.0))
    assert curve["live"].sum() == 1  # scale 1 is always on the curve
    live = curve[curve["live"]].iloc[0]
    assert live["catch_rate"] == pytest.approx(totals["catch_rate"])
    assert live["friction"] == pytest.approx(totals["friction"])
    assert curve["catch_rate"].is_monotonic_decreasing  # stricter (smaller) first
    assert curve["friction"].is_monotonic_decreasing
    assert curve.iloc[0]["catch_rate"] == 1.0 and curve.iloc[-1]["friction"] == 0.0


# ------------------------------------------------------------------ explorer
def test_percentile_is_mid_rank():
    population = np.array([1.0, 2.0, 2.0, 3.0])
    assert explorer.percentile(2.0, population) == pytest.approx(0.5)
    assert explorer.percentile(0.0, population) == 0.0
    assert explorer.percentile(9.0, population) == 1.0
    assert math.isnan(explorer.percentile(None, population))
    assert math.isnan(explorer.percentile(1.0, None))


def test_inputs_table_orders_by_contribution():
    table = explorer.inputs_table(
        {"a": 1.0, "b": None, "c": 3.0},
        {"a": np.array([0.0, 2.0]), "c": np.array([1.0, 2.0, 3.0])},
        {"a": 0.1, "b": -0.5, "c": 0.0},
    )
    assert table["feature"].tolist() == ["b", "a", "c"]
    row = table.set_index("feature")
    assert row.loc["a", "percentile"] == 0.5 and row.loc["c", "percentile"] == pytest.approx(5 / 6)
    assert math.isnan(row.loc["b", "value"]) and math.isnan(row.loc["b", "percentile"])


def test_find_by_any_id(tmp_path):
    from yidai.audit import AuditStore, DecisionRow

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = AuditStore(url)
    store.record_decision(
        DecisionRow(
            decision_id="d1", module="m", idempotency_key=None, request_hash="h",
            product="merchant", entity_id="M00000012", outcome="refer", arm="champion",
            model_version="merchant_pd v1", policy_version="p",
            response={"decision": "refer", "account_id": "A0000000077"},
            record={"request": {"merchant_id": "M00000012"}, "features": {}},
        )
    )  # fmt: skip
    store.close()
    for text, how in (
        ("d1", "decision id"),
        ("M00000012", "customer / merchant / SME id"),
        ("A0000000077", "id in the request or response"),
    ):
        found, matched = explorer.find_by_any_id(url, text)
        assert found["decision_id"].tolist() == ["d1"] and matched == how
    found, _ = explorer.find_by_any_id(url, "A000000007")  # a prefix is not an id
    assert found.empty


def test_model_versions_as_the_service_and_the_tables_write_them():
    assert explorer.split_model_version("payment_fraud:1") == ("payment_fraud", "1")
    assert explorer.split_model_version("personal_pd v3") == ("personal_pd", "3")
    assert explorer.split_model_version("scorecard") == ("scorecard", "")

"""Credit and payment decisions: single-application and vectorised paths agree."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from yidai.decisioning import (
    CreditPolicy,
    PaymentPolicy,
    decide_credit,
    decide_credit_batch,
    decide_payment,
    decide_payment_batch,
    proposed_limit,
)
from yidai.decisioning.policy import load_product_policy
from yidai.decisioning.reasons import Reason

POLICY_DIR = Path(__file__).resolve().parents[2] / "yidai" / "policies"
GRADES = np.array(["A", "B", "C", "D", "E", "F", "G", "Z"], dtype=object)


def _credit(product: str) -> CreditPolicy:
    policy = load_product_policy(product, POLICY_DIR)
    assert isinstance(policy, CreditPolicy)
    return policy.model_copy(update={"blocklist": ("blocked-1",)})


def _random_applications(policy: CreditPolicy, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(index=range(n))
    for name in policy.feature_names:
        values = rng.lognormal(8, 2, n)
        if "dpd" in name:  # days past due
            values = rng.choice([0.0, 0.0, 0.0, 5.0, 40.0], n)
        elif "tenure" in name:
            values = rng.integers(0, 800, n).astype(float)
        elif "rate" in name or "volatility" in name:
            values = rng.uniform(0, 1.5, n) * (0.05 if "rate" in name else 1)
        values[rng.random(n) < 0.08] = np.nan
        frame[name] = values
    frame["pd"] = rng.beta(1, 20, n)
    frame["score"] = rng.normal(590, 30, n)
    frame["grade"] = rng.choice(GRADES, n)
    frame["has"] = rng.random(n) > 0.05
    frame["applicant"] = np.where(rng.random(n) < 0.03, "blocked-1", "ok")
    frame["requested"] = rng.uniform(100, 80_000, n)
    return frame


@pytest.mark.parametrize("product", ["personal", "merchant", "sme"])
@pytest.mark.parametrize("challenger", [False, True])
def test_single_and_batch_credit_decisions_agree(product: str, challenger: bool) -> None:
    policy = _credit(product)
    if challenger:
        policy = policy.challenger_policy()
    apps = _random_applications(policy, 3000, seed=len(product))
    feats = apps[list(policy.feature_names)]
    batch = decide_credit_batch(
        policy,
        feats,
        apps["pd"],
        apps["score"],
        apps["grade"],
        requested_amount=apps["requested"],
        applicant_ids=apps["applicant"],
        has_features=apps["has"],
    )
    outcomes = set()
    for i in range(len(apps)):
        row = apps.iloc[i]
        single = decide_credit(
            policy,
            feats.iloc[i].to_dict() if row["has"] else None,
            float(row["pd"]),
            float(row["score"]),
            str(row["grade"]),
            requested_amount=float(row["requested"]),
            applicant_id=str(row["applicant"]),
        )
        got = batch.iloc[i]
        outcomes.add(single.decision)
        assert single.decision == got["decision"], i
        assert single.policy_reason_codes == got["reason_codes"], i
        assert single.limit == pytest.approx(got["limit"]), i
        assert single.approved_amount == pytest.approx(got["approved_amount"]), i
        assert single.proposed_limit == pytest.approx(got["proposed_limit"]), i
        if single.annual_rate is None:
            assert math.isnan(got["annual_rate"])
        else:
            assert single.annual_rate == got["annual_rate"]
    assert outcomes == {"approve", "refer", "decline"}


def test_every_decline_and_refer_has_reasons() -> None:
    policy = _credit("personal")
    apps = _random_applications(policy, 500, seed=7)
    batch = decide_credit_batch(
        policy, apps[list(policy.feature_names)], apps["pd"], apps["score"], apps["grade"],
        has_features=apps["has"], applicant_ids=apps["applicant"],
    )  # fmt: skip
    not_approved = batch["decision"] != "approve"
    assert not_approved.any()
    assert batch.loc[not_approved, "reason_codes"].map(len).gt(0).all()
    assert batch.loc[~not_approved, "reason_codes"].map(len).eq(0).all()
    assert (batch.loc[not_approved, "limit"] == 0).all()


def _good_personal(policy: CreditPolicy) -> dict[str, float]:
    return {
        "customer_max_dpd_180d": 0.0,
        "customer_tenure_days_life": 400.0,
        "customer_spend_amount_180d": 60_000.0,
    }


def test_personal_limit_is_spend_multiple_capped_by_expected_loss() -> None:
    policy = _credit("personal")
    lim = policy.limit
    feats = _good_personal(policy)
    low_pd = decide_credit(policy, feats, 0.001, 650, "A")
    expected = math.floor(lim.multiple * 60_000 / 6 / lim.round_to) * lim.round_to
    assert low_pd.decision == "approve"
    assert low_pd.limit == expected
    high_pd = decide_credit(policy, feats, 0.06, 650, "A")
    assert lim.max_expected_loss is not None
    assert high_pd.limit <= lim.max_expected_loss / (0.06 * lim.lgd)
    assert high_pd.limit < low_pd.limit
    # approved amount is the order amount when it fits, and terms are priced by grade
    order = decide_credit(policy, feats, 0.001, 650, "B", requested_amount=1234.0)
    assert order.approved_amount == 1234.0
    assert {t.months for t in order.term_options} == set(policy.terms_months)
    assert all(t.annual_rate == policy.pricing["B"] for t in order.term_options)
    twelve = next(t for t in order.term_options if t.months == 12)
    assert 1234.0 / 12 < twelve.monthly_payment < 1234.0 * (1 + policy.pricing["B"]) / 12


def test_merchant_volatility_haircut_lowers_the_line() -> None:
    policy = _credit("merchant")
    lim = policy.limit
    steady = {"merchant_net_turnover_90d": 300_000.0, "merchant_turnover_volatility_180d": 0.1}
    shaky = {**steady, "merchant_turnover_volatility_180d": 0.6}
    a = proposed_limit(lim, lambda k: steady[k], 0.001)
    b = proposed_limit(lim, lambda k: shaky[k], 0.001)
    assert 0 < b < a


def test_sme_cash_flow_limit_is_zero_without_net_inflow() -> None:
    policy = _credit("sme")
    flows = {"sme_inflow_amount_90d": 100_000.0, "sme_outflow_amount_90d": 120_000.0}
    assert proposed_limit(policy.limit, lambda k: flows[k], 0.01) == 0.0


def test_hard_rules_decline_with_their_reason_and_model_reasons() -> None:
    policy = _credit("personal")
    feats = {**_good_personal(policy), "customer_max_dpd_180d": 45.0}
    model = (Reason("R01", "model", "Past delinquency"),)
    out = decide_credit(policy, feats, 0.001, 700, "A", model_reasons=model)
    assert out.decision == "decline"
    assert [r.code for r in out.reasons] == ["HR_DELINQUENCY", "R01"]
    assert out.limit == 0 and out.annual_rate is None
    good = _good_personal(policy)
    blocked = decide_credit(policy, good, 0.001, 700, "A", applicant_id="blocked-1")
    assert blocked.decision == "decline" and blocked.reasons[0].code == "HR_BLOCKLIST"


def _payment() -> PaymentPolicy:
    policy = load_product_policy("payment", POLICY_DIR)
    assert isinstance(policy, PaymentPolicy)
    return policy.model_copy(update={"blocklist": ("bad-payer",)})


def test_payment_small_amounts_favour_convenience_large_favour_security() -> None:
    policy = _payment()
    prob = 0.3
    assert decide_payment(policy, 50, prob).action == "allow"
    assert decide_payment(policy, 50_000, prob).action == "decline"
    medium = decide_payment(policy, 5_000, 0.1)
    assert medium.action == "step_up" and medium.reasons[0].code == "PF_FRAUD_STEP_UP"
    assert decide_payment(policy, 1500, 0.0, new_device=True).action == "step_up"
    assert decide_payment(policy, 10, 0.0, payer_id="bad-payer").action == "decline"


def test_single_and_batch_payment_decisions_agree() -> None:
    policy = _payment()
    rng = np.random.default_rng(3)
    n = 4000
    amount = np.round(rng.lognormal(6, 2, n), 2)
    amount[:4] = [t.max_amount or 1e9 for t in policy.tiers]  # exactly on tier bounds
    prob = rng.beta(0.5, 5, n)
    new_device = rng.random(n) < 0.2
    payers = np.where(rng.random(n) < 0.02, "bad-payer", "p")
    batch = decide_payment_batch(policy, amount, prob, payer_ids=payers, new_device=new_device)
    for i in range(n):
        one = decide_payment(
            policy, float(amount[i]), float(prob[i]), payer_id=str(payers[i]),
            new_device=bool(new_device[i]),
        )  # fmt: skip
        assert (one.action, one.tier, one.policy_reason_codes) == (
            batch["action"][i], batch["tier"][i], batch["reason_codes"][i],
        ), i  # fmt: skip
    assert set(batch["action"]) == {"allow", "step_up", "decline"}

"""The merchant line-change policy: pure, vectorised rules (yidai.decisioning.merchant_limits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from yidai.core.errors import YidaiError
from yidai.decisioning.merchant_limits import (
    DECISIONS,
    REASONS,
    STATUSES,
    MerchantLimitPolicy,
    capped_move,
    first_line,
    load_merchant_limit_policy,
    merchant_arrays,
    propose_line_changes,
    reason_text,
    target_line,
)

POLICY_FILE = Path(__file__).resolve().parents[2] / "yidai" / "policies" / "merchant_limits.yaml"


@pytest.fixture(scope="module")
def policy() -> MerchantLimitPolicy:
    return load_merchant_limit_policy(POLICY_FILE)


def one(policy: MerchantLimitPolicy, **values: object) -> pd.Series:
    """Decide a single merchant; unspecified inputs are a healthy, approved merchant."""
    row: dict[str, object] = {
        "current_line": 100_000.0,
        "outstanding": 0.0,
        "dpd": 0,
        "was_frozen": False,
        "has_features": True,
        "monthly_turnover": 100_000.0,
        "recent_turnover": 100_000.0,
        "underwriting_decision": "approve",
        "underwriting_limit": 100_000.0,
    }
    row.update(values)
    out = propose_line_changes(pd.DataFrame([row]), policy)
    return out.iloc[0]


def random_book(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    current = np.where(rng.random(n) < 0.7, rng.choice([0, 5_000, 37_500, 120_000], n), 0.0)
    current = current * rng.uniform(0.5, 2.0, n)
    outstanding = current * rng.uniform(0, 1.4, n) * (rng.random(n) < 0.8)
    monthly = rng.lognormal(11, 1, n)
    monthly[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "current_line": current,
            "outstanding": outstanding,
            "dpd": np.where(rng.random(n) < 0.08, rng.integers(1, 120, n), 0),
            "was_frozen": rng.random(n) < 0.1,
            "has_features": rng.random(n) < 0.9,
            "monthly_turnover": monthly,
            "recent_turnover": monthly * rng.uniform(0, 1.5, n),
            "underwriting_decision": rng.choice(["approve", "refer", "decline", None], n),
            "underwriting_limit": np.where(rng.random(n) < 0.03, np.nan, rng.uniform(0, 4e5, n)),
        }
    )


def test_policy_file_loads_and_bad_files_name_the_problem(tmp_path: Path) -> None:
    policy = load_merchant_limit_policy(POLICY_FILE)
    assert policy.max_increase == pytest.approx(0.30)
    assert policy.max_decrease == pytest.approx(0.50)
    bad = tmp_path / "bad.yaml"
    bad.write_text("merchant_limits:\n  version: x\n  max_decrease: 1.5\n", encoding="utf-8")
    with pytest.raises(YidaiError, match=r"max_decrease.*turnover|turnover.*max_decrease"):
        load_merchant_limit_policy(bad)
    with pytest.raises(YidaiError, match="cannot read"):
        load_merchant_limit_policy(tmp_path / "missing.yaml")
    assert policy.digest() == load_merchant_limit_policy(POLICY_FILE).digest()
    assert policy.digest() != policy.model_copy(update={"max_increase": 0.2}).digest()


def test_changes_are_bounded_per_cycle(policy: MerchantLimitPolicy) -> None:
    up = one(policy, underwriting_limit=400_000.0)
    assert (up.decision, up.new_line, up.reason_code) == (
        "increase",
        130_000.0,
        "INCREASE_TURNOVER_GROWTH",
    )
    assert up.change_capped
    down = one(policy, underwriting_limit=10_000.0)
    assert (down.decision, down.new_line, down.reason_code) == (
        "decrease",
        50_000.0,
        "DECREASE_TURNOVER_DECLINE",
    )
    declined = one(policy, underwriting_decision="decline", underwriting_limit=90_000.0)
    assert declined.new_line == 50_000.0
    assert declined.reason_code == "DECREASE_UNDERWRITING_DECLINE"
    small = one(policy, underwriting_limit=103_000.0)
    assert (small.decision, small.new_line, small.reason_code) == (
        "keep",
        100_000.0,
        "KEEP_WITHIN_TOLERANCE",
    )
    refer = one(policy, underwriting_decision="refer", underwriting_limit=300_000.0)
    assert (refer.decision, refer.new_line, refer.reason_code) == (
        "keep",
        100_000.0,
        "KEEP_WITHIN_TOLERANCE",
    )


def test_bounds_hold_on_a_random_book(policy: MerchantLimitPolicy) -> None:
    book = random_book(20_000, seed=7)
    out = propose_line_changes(book, policy)
    current = book["current_line"].to_numpy()
    moved = (current > 0) & (out["status"] != "frozen").to_numpy()
    new = out["new_line"].to_numpy()
    assert moved.sum() > 5_000
    assert np.all(new[moved] <= current[moved] * (1 + policy.max_increase) + 1e-6)
    assert np.all(new[moved] >= current[moved] * (1 - policy.max_decrease) - 1e-6)
    was_frozen = book["was_frozen"].to_numpy()
    assert np.all(new[moved & was_frozen] <= current[moved & was_frozen])
    assert set(out["decision"]) <= set(DECISIONS) and set(out["status"]) <= set(STATUSES)
    assert set(out["reason_code"]) <= set(REASONS)
    assert np.isfinite(new).all() and np.isfinite(out["target_line"]).all()
    # every change carries a reason consistent with its direction
    prefix = {"increase": "INCREASE", "decrease": "DECREASE", "freeze": "FREEZE", "new": "NEW"}
    for decision, group in out.groupby("decision"):
        if decision in prefix:
            lifted = group["reason_code"] == "FREEZE_LIFTED"
            assert group.loc[~lifted, "reason_code"].str.startswith(prefix[decision]).all()


def test_never_below_outstanding_without_a_freeze(policy: MerchantLimitPolicy) -> None:
    floored = one(policy, outstanding=80_500.0, underwriting_limit=10_000.0)
    assert (floored.decision, floored.new_line, floored.status) == (
        "decrease",
        80_500.0,
        "active",
    )
    assert floored.floored_at_outstanding
    book = random_book(20_000, seed=11)
    out = propose_line_changes(book, policy)
    current = book["current_line"].to_numpy()
    new = out["new_line"].to_numpy()
    outstanding = book["outstanding"].to_numpy()
    active = (out["status"] == "active").to_numpy()
    # an active line is never cut below the balance: it ends at or above it, or is held
    assert np.all((new[active] >= outstanding[active]) | (new[active] == current[active]))
    held = active & (current > 0) & (outstanding > current)
    assert held.sum() > 100
    assert np.all(new[held] == current[held])


def test_a_balance_above_a_lowered_line_holds_the_line_instead_of_freezing(
    policy: MerchantLimitPolicy,
) -> None:
    """A line review can set the line under the balance: hold it, no increase, no freeze."""
    for target in (10_000.0, 100_000.0, 400_000.0):
        over = one(policy, outstanding=150_000.0, underwriting_limit=target)
        assert (over.decision, over.status, over.reason_code, over.new_line) == (
            "keep",
            "active",
            "KEEP_OVER_LIMIT",
            100_000.0,
        )
        assert not over.floored_at_outstanding
    # the same balance with 30+ days past due is frozen
    late = one(policy, outstanding=150_000.0, dpd=45)
    assert (late.status, late.reason_code) == ("frozen", "FREEZE_DELINQUENT")
    # a balance within the line never raises it (no increase to cover the balance)
    within = one(policy, outstanding=95_000.0, underwriting_limit=10_000.0)
    assert (within.decision, within.new_line) == ("decrease", 95_000.0)


def test_immediate_freeze_on_delinquency_and_turnover_collapse(
    policy: MerchantLimitPolicy,
) -> None:
    late = one(policy, dpd=policy.freeze_dpd, underwriting_limit=400_000.0)
    assert (late.decision, late.status, late.reason_code, late.new_line) == (
        "freeze",
        "frozen",
        "FREEZE_DELINQUENT",
        100_000.0,
    )
    collapse = one(policy, recent_turnover=15_000.0, underwriting_limit=400_000.0)
    assert (collapse.status, collapse.reason_code) == ("frozen", "FREEZE_TURNOVER_COLLAPSE")
    seasonal = one(policy, seasonal_decline=0.7)
    assert (seasonal.status, seasonal.reason_code) == ("frozen", "FREEZE_TURNOVER_COLLAPSE")
    festival_dip = one(policy, recent_turnover=40_000.0, seasonal_decline=0.1)
    assert festival_dip.status == "active"
    zero = one(policy, monthly_turnover=0.0, recent_turnover=0.0)
    assert zero.reason_code == "FREEZE_TURNOVER_COLLAPSE"
    new_collapsed = one(policy, current_line=0.0, recent_turnover=1_000.0)
    assert (new_collapsed.decision, new_collapsed.reason_code) == (
        "none",
        "NONE_TURNOVER_COLLAPSE",
    )
    lifted = one(policy, was_frozen=True, underwriting_limit=300_000.0)
    assert (lifted.decision, lifted.status, lifted.reason_code, lifted.new_line) == (
        "keep",
        "active",
        "FREEZE_LIFTED",
        100_000.0,
    )


def test_early_arrears_hold_increases_and_30_dpd_freezes(policy: MerchantLimitPolicy) -> None:
    """Bank practice: 1-29 days past due stops increases (decreases still apply), 30+ freezes."""
    assert (policy.hold_dpd, policy.freeze_dpd) == (1, 30)
    for dpd in (1, 12, 29):
        held = one(policy, dpd=dpd, underwriting_limit=400_000.0)
        assert (held.decision, held.status, held.reason_code, held.new_line) == (
            "keep",
            "active",
            "KEEP_PAST_DUE",
            100_000.0,
        )
        cut = one(policy, dpd=dpd, underwriting_limit=10_000.0)
        assert (cut.decision, cut.new_line) == ("decrease", 50_000.0)
        assert one(policy, dpd=dpd, current_line=0.0).reason_code == "NONE_DELINQUENT"
    for dpd in (30, 90, 200):
        assert one(policy, dpd=dpd).reason_code == "FREEZE_DELINQUENT"
    on_time = one(policy, dpd=0, underwriting_limit=400_000.0)
    assert on_time.decision == "increase"
    book = random_book(20_000, seed=3)
    out = propose_line_changes(book, policy)
    dpd = book["dpd"].to_numpy()
    early = (dpd >= 1) & (dpd < 30) & (book["current_line"] > 0).to_numpy()
    assert early.sum() > 100
    assert not out["decision"].to_numpy()[early].astype(str).tolist().count("increase")
    assert (out.loc[dpd >= 30, "decision"].astype(str) != "increase").all()


def test_hold_threshold_cannot_exceed_the_freeze_threshold(tmp_path: Path) -> None:
    text = POLICY_FILE.read_text(encoding="utf-8").replace("hold_dpd: 1 ", "hold_dpd: 45 ")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(YidaiError, match="hold_dpd 45 exceeds freeze_dpd 30"):
        load_merchant_limit_policy(bad)


def test_missing_features_get_a_rule_based_outcome_never_nan(
    policy: MerchantLimitPolicy,
) -> None:
    nan = float("nan")
    unknown = {
        "has_features": False,
        "monthly_turnover": nan,
        "recent_turnover": nan,
        "underwriting_decision": None,
        "underwriting_limit": nan,
    }
    existing = one(policy, **unknown)
    assert (existing.decision, existing.reason_code, existing.new_line) == (
        "freeze",
        "FREEZE_NO_TURNOVER",
        100_000.0,
    )
    newcomer = one(policy, current_line=nan, outstanding=nan, dpd=nan, **unknown)
    assert (newcomer.decision, newcomer.status, newcomer.reason_code, newcomer.new_line) == (
        "none",
        "none",
        "NONE_NO_TURNOVER_HISTORY",
        0.0,
    )
    # only the identifying columns: still a full, finite answer
    out = propose_line_changes({"current_line": np.array([0.0, 5e4])}, policy)
    assert list(out["reason_code"]) == ["NONE_NO_TURNOVER_HISTORY", "FREEZE_NO_TURNOVER"]
    assert np.isfinite(out["new_line"]).all()


def test_new_lines_are_capped_and_need_approval(policy: MerchantLimitPolicy) -> None:
    big = one(policy, current_line=0.0, underwriting_limit=450_000.0)
    assert (big.decision, big.status, big.new_line, big.reason_code) == (
        "new",
        "active",
        policy.initial_line_cap,
        "NEW_LINE",
    )
    referred = one(policy, current_line=0.0, underwriting_decision="refer")
    assert (referred.decision, referred.reason_code) == ("none", "NONE_NOT_APPROVED")
    late = one(policy, current_line=0.0, dpd=40)
    assert late.reason_code == "NONE_DELINQUENT"
    assert reason_text("NEW_LINE", "zh") and reason_text("FREEZE_DELINQUENT")


def test_the_opening_minimum_does_not_cut_an_existing_line_to_zero(
    policy: MerchantLimitPolicy,
) -> None:
    """A merchant declined only because its formula line is under the minimum for a new line
    keeps moving towards the formula's limit; any other objection still aims at 0."""
    small = one(
        policy,
        underwriting_decision="decline",
        underwriting_limit=80_000.0,
        underwriting_codes="LM_BELOW_MINIMUM",
    )
    assert (small.target_line, small.new_line) == (80_000.0, 80_000.0)
    risky = one(
        policy,
        underwriting_decision="decline",
        underwriting_limit=80_000.0,
        underwriting_codes="SC_SCORE_BELOW_CUTOFF;LM_BELOW_MINIMUM",
    )
    assert risky.target_line == 0.0
    assert risky.reason_code == "DECREASE_UNDERWRITING_DECLINE"
    newcomer = one(
        policy,
        current_line=0.0,
        underwriting_decision="decline",
        underwriting_limit=3_000.0,
        underwriting_codes="LM_BELOW_MINIMUM",
    )
    assert (newcomer.decision, newcomer.new_line) == ("none", 0.0)


def test_target_line_rules_each_underwriting_outcome() -> None:
    m = merchant_arrays(
        {
            "current_line": [50_000.0, 50_000.0, 50_000.0, 50_000.0],
            "underwriting_limit": [80_000.0, 80_000.0, 80_000.0, 80_000.0],
            "underwriting_decision": ["approve", "refer", "decline", "approve"],
            "has_features": [True, True, True, False],
        }
    )
    # approve: the formula's limit; refer: no increase; decline or no features: 0
    assert target_line(m).tolist() == [80_000.0, 50_000.0, 0.0, 0.0]


def test_cap_rule_bounds_one_cycle_and_rounds_towards_the_current_line(
    policy: MerchantLimitPolicy,
) -> None:
    m = merchant_arrays(
        {
            "current_line": [100_000.0, 100_000.0, 100_000.0],
            "outstanding": [0.0, 0.0, 70_000.0],
            "has_features": [True, True, True],
        }
    )
    target = np.array([500_000.0, 0.0, 0.0])
    move = capped_move(m, target, np.zeros(3, dtype=bool), policy)
    # +30% and -50% per cycle at most, and never below the outstanding balance
    assert move.proposed.tolist() == [130_000.0, 50_000.0, 70_000.0]
    assert move.capped.tolist() == [True, True, True]
    assert move.floored.tolist() == [False, False, True]


def test_first_line_is_capped_rounded_down_and_needs_approval(
    policy: MerchantLimitPolicy,
) -> None:
    m = merchant_arrays(
        {
            "current_line": [0.0, 0.0, 0.0],
            "underwriting_limit": [900_000.0, 12_345.0, 900_000.0],
            "underwriting_decision": ["approve", "approve", "refer"],
            "has_features": [True, True, True],
        }
    )
    none = np.zeros(3, dtype=bool)
    line, reason = first_line(m, target_line(m), none, none, policy)
    assert line[:2].tolist() == [200_000.0, 12_000.0]
    assert [list(REASONS)[r] for r in reason] == ["NEW_LINE", "NEW_LINE", "NONE_NOT_APPROVED"]

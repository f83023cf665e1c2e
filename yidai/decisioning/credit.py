"""Credit decisions as pure functions: one application (service) or many (batch, simulator).

Both paths share the same rule definitions: the comparison table :data:`OPS`, the hard rules
and cut-offs of the :class:`~yidai.decisioning.policy.CreditPolicy`, and
:func:`proposed_limit`, which is written with numpy ufuncs so that it takes floats or arrays.
Order of evaluation (the worst outcome wins, every triggered rule adds its reason):
no history -> blocklist -> hard rules -> PD / score cut-offs -> limit minimum -> pricing.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from yidai.decisioning.policy import (
    CashFlowLimit,
    CreditPolicy,
    HardRule,
    LimitFormula,
    Outcome,
    SpendMultipleLimit,
    TurnoverShareLimit,
)
from yidai.decisioning.reasons import Reason, policy_reason

if TYPE_CHECKING:
    import pandas as pd

OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
SEVERITY: dict[str, int] = {"approve": 0, "refer": 1, "decline": 2}
OUTCOMES: tuple[Outcome, ...] = ("approve", "refer", "decline")

X = TypeVar("X", float, np.ndarray)


@dataclass(frozen=True, slots=True)
class TermOption:
    """One repayment option: term, annual rate and the level monthly instalment."""

    months: int
    annual_rate: float
    monthly_payment: float


@dataclass(frozen=True, slots=True)
class CreditDecision:
    """The outcome of one credit application under one policy."""

    decision: Outcome
    limit: float
    approved_amount: float
    proposed_limit: float
    annual_rate: float | None
    term_options: tuple[TermOption, ...]
    reasons: tuple[Reason, ...]
    policy_version: str
    policy_reason_codes: tuple[str, ...] = field(default=())


class _Ops:
    """min / max / floor for arrays (numpy, NaN-propagating) or for floats (math, fast)."""

    def __init__(self, vector: bool) -> None:
        self.vector = vector
        self.minimum: Callable[[Any, Any], Any] = np.minimum if vector else min
        self.maximum: Callable[[Any, Any], Any] = np.maximum if vector else max
        self.floor: Callable[[Any], Any] = np.floor if vector else math.floor


_VECTOR, _SCALAR = _Ops(True), _Ops(False)


def proposed_limit(formula: LimitFormula, get: Callable[[str], X], pd_: X) -> X:
    """The formula's limit (before the minimum check); floats in, float out; arrays likewise.

    * spend_multiple: ``multiple * spend / window_months``
    * turnover_share: ``share * turnover / window_months * (1 - min(max_haircut, haircut * cv))``
    * cash_flow: ``min(net_flow_months * max(0, in - out), max_inflow_share * in)`` per month
    then capped by expected loss ``max_expected_loss / (PD * LGD)`` and ``max_limit``, rounded
    down to ``round_to``; a missing (NaN) input gives 0.
    """
    names: tuple[str, ...]
    if isinstance(formula, SpendMultipleLimit):
        names = (formula.spend_feature,)
    elif isinstance(formula, TurnoverShareLimit):
        names = (formula.turnover_feature, formula.volatility_feature)
    elif isinstance(formula, CashFlowLimit):
        names = (formula.inflow_feature, formula.outflow_feature)
    else:  # pragma: no cover - the discriminated union is exhaustive
        raise TypeError(f"unknown limit formula {formula!r}")
    values = [get(n) for n in names]
    ops = _VECTOR if isinstance(pd_, np.ndarray) else _SCALAR
    if not ops.vector and any(math.isnan(v) for v in values):
        return 0.0  # type: ignore[return-value]
    base = _formula_base(formula, values, ops)
    if ops.vector:
        base = np.nan_to_num(base, nan=0.0)
    limit = ops.minimum(ops.maximum(base, 0.0), formula.max_limit)
    if formula.max_expected_loss is not None:
        el_cap = formula.max_expected_loss / (ops.maximum(pd_, 1e-6) * formula.lgd)
        limit = ops.minimum(limit, el_cap)
    rounded = ops.floor(limit / formula.round_to + 1e-9) * formula.round_to
    return rounded if ops.vector else float(rounded)  # type: ignore[return-value]


def _formula_base(formula: LimitFormula, values: list[Any], ops: _Ops) -> Any:
    """The formula before caps, from its inputs (see :func:`proposed_limit`)."""
    if isinstance(formula, SpendMultipleLimit):
        return formula.multiple * values[0] / formula.window_months
    if isinstance(formula, TurnoverShareLimit):
        turnover, volatility = values
        haircut = ops.minimum(
            formula.max_haircut, formula.volatility_haircut * ops.maximum(volatility, 0.0)
        )
        return formula.share * turnover / formula.window_months * (1.0 - haircut)
    inflow, outflow = (v / formula.window_months for v in values)
    return ops.minimum(
        formula.net_flow_months * ops.maximum(inflow - outflow, 0.0),
        formula.max_inflow_share * inflow,
    )


def monthly_payment(amount: float, annual_rate: float, months: int) -> float:
    """Level (annuity) instalment: ``A r / (1 - (1 + r)^-n)`` with ``r = annual_rate / 12``."""
    r = annual_rate / 12.0
    if r == 0:
        return round(amount / months, 2)
    return round(amount * r / (1.0 - (1.0 + r) ** -months), 2)


def _rule_outcome(rule: HardRule, value: float) -> str | None:
    if math.isnan(value):
        return None if rule.on_missing == "pass" else rule.on_missing
    return rule.outcome if OPS[rule.op](value, rule.value) else None


def decide_credit(
    policy: CreditPolicy,
    features: Mapping[str, float] | None,
    pd_: float,
    score: float,
    grade: str,
    *,
    requested_amount: float | None = None,
    applicant_id: str | None = None,
    model_reasons: Sequence[Reason] = (),
) -> CreditDecision:
    """Decide one application; ``features=None`` means the applicant has no feature row."""
    worst = 0
    reasons: list[Reason] = []

    def hit(code: str, outcome: str, text: str = "", text_zh: str = "") -> None:
        nonlocal worst
        worst = max(worst, SEVERITY[outcome])
        reasons.append(policy_reason(code, text, text_zh))

    if features is None:
        hit("HR_NO_HISTORY", policy.no_history_outcome)
        features = {}
    if applicant_id is not None and applicant_id in policy.blocklist:
        hit("HR_BLOCKLIST", "decline")
    for rule in policy.hard_rules:
        outcome = _rule_outcome(rule, float(features.get(rule.feature, math.nan)))
        if outcome is not None:
            hit(rule.code, outcome, rule.description, rule.description_zh)
    cut = policy.cutoffs
    if cut.max_pd is not None and pd_ > cut.max_pd:
        hit("SC_PD_ABOVE_MAX", "decline")
    if score < cut.refer_min_score:
        hit("SC_SCORE_BELOW_CUTOFF", "decline")
    elif score < cut.approve_min_score:
        hit("SC_SCORE_REFER_BAND", "refer")
    limit = proposed_limit(
        policy.limit, lambda name: float(features.get(name, math.nan)), float(pd_)
    )
    if limit < policy.limit.min_limit or limit <= 0:
        hit("LM_BELOW_MINIMUM", "decline")
    rate = policy.pricing.get(grade)
    if rate is None:
        hit("PR_GRADE_NOT_PRICED", "refer")

    decision = OUTCOMES[worst]
    policy_codes = tuple(r.code for r in reasons)
    if decision != "approve":
        top = tuple(model_reasons[: policy.reason_codes_top_k])
        return CreditDecision(
            decision, 0.0, 0.0, limit, None, (), (*reasons, *top), policy.policy_version,
            policy_codes,
        )  # fmt: skip
    assert rate is not None
    amount = limit if requested_amount is None else min(float(requested_amount), limit)
    cut_reasons: tuple[Reason, ...] = ()
    if requested_amount is not None and float(requested_amount) > limit:
        cut_reasons = (policy_reason("LM_CAPPED_BY_LIMIT"),)  # a partial approval says so
    terms = tuple(
        TermOption(m, rate, monthly_payment(amount, rate, m)) for m in policy.terms_months
    )
    return CreditDecision(
        decision, limit, amount, limit, rate, terms, cut_reasons, policy.policy_version,
        (*policy_codes, *(r.code for r in cut_reasons)),
    )  # fmt: skip


def decide_credit_batch(
    policy: CreditPolicy,
    features: pd.DataFrame,
    pd_: np.ndarray | Sequence[float],
    score: np.ndarray | Sequence[float],
    grade: np.ndarray | Sequence[str],
    *,
    requested_amount: np.ndarray | Sequence[float] | None = None,
    applicant_ids: np.ndarray | Sequence[str] | None = None,
    has_features: np.ndarray | Sequence[bool] | None = None,
) -> pd.DataFrame:
    """Decide many applications at once (vectorised); same rules as :func:`decide_credit`.

    ``features`` has one row per application (missing columns count as NaN); ``has_features``
    False marks applicants without a feature row.  Returns a frame aligned with the input:
    ``decision, limit, approved_amount, proposed_limit, annual_rate, reason_codes`` (the
    policy's reason codes, a tuple per row, in the order :func:`decide_credit` gives them).
    """
    # heavy: pandas, for the vectorised (batch) path only; one decision needs none
    import pandas as pd

    n = len(features)
    pd_arr = np.asarray(pd_, dtype=float)
    score_arr = np.asarray(score, dtype=float)
    grade_arr = np.asarray(grade, dtype=object)
    if not (len(pd_arr) == len(score_arr) == len(grade_arr) == n):
        raise ValueError("features, pd, score and grade must have the same length")

    def col(name: str) -> np.ndarray:
        if name not in features.columns:
            return np.full(n, np.nan)
        return features[name].to_numpy(dtype=float, na_value=np.nan)

    severity = np.zeros(n, dtype=np.int8)
    checks: list[tuple[str, np.ndarray]] = []

    def hit(code: str, mask: np.ndarray, sev: np.ndarray | int) -> None:
        nonlocal severity
        severity = np.where(mask, np.maximum(severity, sev), severity)
        checks.append((code, mask))

    known = np.ones(n, bool) if has_features is None else np.asarray(has_features, dtype=bool)
    hit("HR_NO_HISTORY", ~known, SEVERITY[policy.no_history_outcome])
    if applicant_ids is not None and policy.blocklist:
        hit("HR_BLOCKLIST", np.isin(np.asarray(applicant_ids), policy.blocklist), 2)
    for rule in policy.hard_rules:
        value = np.where(known, col(rule.feature), np.nan)
        missing = np.isnan(value)
        triggered = ~missing & OPS[rule.op](value, rule.value)
        sev = np.where(triggered, SEVERITY[rule.outcome], 0)
        if rule.on_missing != "pass":
            sev = np.where(missing, SEVERITY[rule.on_missing], sev)
            triggered = triggered | missing
        hit(rule.code, triggered, sev)
    cut = policy.cutoffs
    if cut.max_pd is not None:
        hit("SC_PD_ABOVE_MAX", pd_arr > cut.max_pd, 2)
    below = score_arr < cut.refer_min_score
    hit("SC_SCORE_BELOW_CUTOFF", below, 2)
    hit("SC_SCORE_REFER_BAND", ~below & (score_arr < cut.approve_min_score), 1)
    limit = proposed_limit(policy.limit, lambda name: np.where(known, col(name), np.nan), pd_arr)
    hit("LM_BELOW_MINIMUM", (limit < policy.limit.min_limit) | (limit <= 0), 2)
    rates = np.array([policy.pricing.get(g, np.nan) for g in grade_arr], dtype=float)
    hit("PR_GRADE_NOT_PRICED", np.isnan(rates), 1)

    approved = severity == 0
    if requested_amount is None:
        amount = limit
    else:
        asked = np.asarray(requested_amount, dtype=float)
        amount = np.minimum(asked, limit)
        checks.append(("LM_CAPPED_BY_LIMIT", approved & (asked > limit)))
    codes: list[tuple[str, ...]] = [() for _ in range(n)]
    for code, mask in checks:
        for i in np.flatnonzero(mask):
            codes[i] = (*codes[i], code)
    return pd.DataFrame(
        {
            "decision": np.asarray(OUTCOMES, dtype=object)[severity],
            "limit": np.where(approved, limit, 0.0),
            "approved_amount": np.where(approved, amount, 0.0),
            "proposed_limit": limit,
            "annual_rate": np.where(approved, rates, np.nan),
            "reason_codes": codes,
        },
        index=features.index,
    )

"""Payment risk decisions: allow / step-up / decline by amount tier (pure functions).

Small amounts favour convenience (high thresholds), large amounts favour security (low
thresholds); the tiers and their thresholds live in the payment policy.  A payment of
``amount`` falls in the first tier with ``amount <= max_amount``.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from yidai.decisioning.policy import PaymentPolicy
from yidai.decisioning.reasons import Reason, policy_reason

if TYPE_CHECKING:
    import pandas as pd

Action = Literal["allow", "step_up", "decline"]
ACTIONS: tuple[Action, ...] = ("allow", "step_up", "decline")


@dataclass(frozen=True, slots=True)
class PaymentDecision:
    """Outcome of one payment under the payment policy."""

    action: Action
    tier: str
    step_up_at: float
    decline_at: float
    reasons: tuple[Reason, ...]
    policy_version: str
    policy_reason_codes: tuple[str, ...] = ()


def _bounds(policy: PaymentPolicy) -> list[float]:
    return [t.max_amount for t in policy.tiers if t.max_amount is not None]


def decide_payment(
    policy: PaymentPolicy,
    amount: float,
    fraud_prob: float,
    *,
    payer_id: str | None = None,
    device_id: str | None = None,
    new_device: bool = False,
    model_reasons: Sequence[Reason] = (),
) -> PaymentDecision:
    """Decide one payment from its amount and fraud probability."""
    tier = policy.tiers[bisect.bisect_left(_bounds(policy), amount)]
    worst = 0
    reasons: list[Reason] = []
    if (payer_id is not None and payer_id in policy.blocklist) or (
        device_id is not None and device_id in policy.blocklist
    ):
        worst = 2
        reasons.append(policy_reason("HR_BLOCKLIST"))
    if fraud_prob >= tier.decline_at:
        worst = 2
        reasons.append(policy_reason("PF_FRAUD_DECLINE"))
    elif fraud_prob >= tier.step_up_at:
        worst = max(worst, 1)
        reasons.append(policy_reason("PF_FRAUD_STEP_UP"))
    threshold = policy.new_device_step_up_min_amount
    if new_device and threshold is not None and amount >= threshold:
        worst = max(worst, 1)
        reasons.append(policy_reason("PF_NEW_DEVICE"))
    codes = tuple(r.code for r in reasons)
    if worst:
        reasons.extend(model_reasons[: policy.reason_codes_top_k])
    return PaymentDecision(
        ACTIONS[worst],
        tier.name,
        tier.step_up_at,
        tier.decline_at,
        tuple(reasons),
        policy.policy_version,
        codes,
    )


def decide_payment_batch(
    policy: PaymentPolicy,
    amount: np.ndarray | Sequence[float],
    fraud_prob: np.ndarray | Sequence[float],
    *,
    payer_ids: np.ndarray | Sequence[str] | None = None,
    new_device: np.ndarray | Sequence[bool] | None = None,
) -> pd.DataFrame:
    """Vectorised :func:`decide_payment`: ``action, tier, reason_codes`` per payment."""
    # heavy: pandas, for the vectorised (batch) path only; one decision needs none
    import pandas as pd

    amount_arr = np.asarray(amount, dtype=float)
    prob = np.asarray(fraud_prob, dtype=float)
    n = len(amount_arr)
    idx = np.searchsorted(np.asarray(_bounds(policy), dtype=float), amount_arr, side="left")
    step_up_at = np.array([t.step_up_at for t in policy.tiers])[idx]
    decline_at = np.array([t.decline_at for t in policy.tiers])[idx]
    checks: list[tuple[str, np.ndarray]] = []
    severity = np.zeros(n, dtype=np.int8)
    if payer_ids is not None and policy.blocklist:
        blocked = np.isin(np.asarray(payer_ids), policy.blocklist)
        severity[blocked] = 2
        checks.append(("HR_BLOCKLIST", blocked))
    decline = prob >= decline_at
    step_up = ~decline & (prob >= step_up_at)
    severity = np.where(decline, 2, np.where(step_up, np.maximum(severity, 1), severity))
    checks += [("PF_FRAUD_DECLINE", decline), ("PF_FRAUD_STEP_UP", step_up)]
    threshold = policy.new_device_step_up_min_amount
    if new_device is not None and threshold is not None:
        flagged = np.asarray(new_device, dtype=bool) & (amount_arr >= threshold)
        severity = np.where(flagged, np.maximum(severity, 1), severity)
        checks.append(("PF_NEW_DEVICE", flagged))
    codes: list[tuple[str, ...]] = [() for _ in range(n)]
    for code, mask in checks:
        for i in np.flatnonzero(mask):
            codes[i] = (*codes[i], code)
    return pd.DataFrame(
        {
            "action": np.asarray(ACTIONS, dtype=object)[severity],
            "tier": np.asarray([t.name for t in policy.tiers], dtype=object)[idx],
            "reason_codes": codes,
        }
    )

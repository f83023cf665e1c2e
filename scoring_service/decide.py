"""The service side of a decision: features, champion and shadow challenger, policy, audit.

Routes call these functions; the rules themselves live in :mod:`yidai.decisioning`, and
the revolving lines (drawdowns, repayments) in :mod:`scoring_service.ledger`.
Every decision is appended to the audit store before its response is returned; a request
with an ``Idempotency-Key`` already seen from the same module gets the stored response back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from features.request import US_PER_DAY, to_us
from scoring_service.resources import ModelSlot, Resources
from yidai.audit import AuditStore, DecisionRow, PaymentEvent, utc_now
from yidai.decisioning import (
    CreditDecision,
    CreditPolicy,
    PaymentPolicy,
    decide_credit,
    decide_payment,
    model_reasons,
)

CREDIT_ENTITY_FIELD = {"personal": "customer_id", "merchant": "merchant_id", "sme": "sme_id"}
REVOLVING = ("merchant", "sme")


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated calling module and its idempotency key (if any)."""

    module: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """The response JSON to send; ``outcome`` and ``arm`` are None for an idempotent replay."""

    json: str
    outcome: str | None = None
    arm: str | None = None


@dataclass(frozen=True, slots=True)
class Scored:
    pd: float
    score: float
    grade: str
    model: str
    inputs: np.ndarray


def request_hash(product: str, body: dict[str, Any]) -> str:
    """Fingerprint of a request body (an idempotency key must not be reused for another)."""
    payload = json.dumps([product, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def challenger_arm(product: str, entity_id: str, share: float) -> bool:
    """Sticky assignment: the same applicant always lands in the same arm."""
    if share <= 0:
        return False
    digest = hashlib.blake2b(f"{product}:{entity_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


def _inputs(slot: ModelSlot, full: np.ndarray) -> np.ndarray:
    return full[slot.full_columns].reshape(1, -1)


def _score(slot: ModelSlot, X: np.ndarray) -> Scored:
    model = slot.model
    if slot.margin is not None:  # same margin as the booster's predict, without its overhead
        margin = np.array([slot.margin(X[0])])
        pd_ = float(model.calibrator.predict(margin)[0])  # type: ignore[attr-defined]
    else:
        pd_ = float(model.predict_pd(X)[0])
    score = float(np.asarray(model.score_points(pd_)))
    grade = str(np.asarray(model.grade(pd_)).reshape(-1)[0])
    return Scored(pd_, score, grade, slot.label, X)


def _reasons(slot: ModelSlot, X: np.ndarray, top_k: int) -> tuple[Any, ...]:
    """The model's top adverse reasons for the row ``X`` (``ModelLike.reason_codes``), from
    the fast single-row contributions when the booster has them."""
    coder = getattr(slot.model, "reason_coder", None)
    if slot.margin is not None and coder is not None:
        contrib = slot.margin.contributions(X[0])
        return model_reasons(coder.reasons(contrib[None, :-1], top_k=top_k, values=X[:1])[0])
    return model_reasons(slot.model.reason_codes(X, top_k=top_k)[0])


def _feature_record(names: list[str], X: np.ndarray) -> dict[str, float | None]:
    """The model inputs by name, NaN (missing) as None."""
    return {n: v if v == v else None for n, v in zip(names, X[0].tolist(), strict=True)}


# ---------------------------------------------------------------------------- credit
def credit_decision(
    resources: Resources,
    audit: AuditStore,
    product: str,
    body: dict[str, Any],
    caller: Caller,
) -> Answer:
    """Decide one credit application (personal, merchant or SME) and audit it."""
    fingerprint = request_hash(product, body)
    if caller.idempotency_key is not None:
        earlier = audit.find_idempotent(caller.module, caller.idempotency_key, fingerprint)
        if earlier is not None:
            return Answer(earlier)
    bundle = resources.bundle(product)
    entity_id = str(body[CREDIT_ENTITY_FIELD[product]])
    requested = body.get("requested_amount")
    profile = bundle.snapshot.get(entity_id)
    assert isinstance(bundle.policy, CreditPolicy)
    # No amount asked: the applicant asks for a line, scored as asking for the maximum.
    asked = requested if requested is not None else bundle.policy.limit.max_limit
    full = bundle.vectorizer.vector(profile, {"requested_amount": asked}, entity_id)

    use_challenger = challenger_arm(
        product, entity_id, bundle.policy.challenger.traffic_share
    ) and (bundle.challenger is not None or bundle.policy.challenger.overrides)
    champ_slot = bundle.champion
    chall_slot = bundle.challenger or bundle.champion
    champ = _score(champ_slot, _inputs(champ_slot, full))
    chall = _score(chall_slot, _inputs(chall_slot, full)) if bundle.challenger else champ
    arms = {
        "champion": (bundle.policy, champ_slot, champ),
        "challenger": (bundle.challenger_policy, chall_slot, chall),
    }
    acting = "challenger" if use_challenger else "champion"
    shadow = "champion" if use_challenger else "challenger"

    decisions: dict[str, CreditDecision] = {}
    policy_features: dict[str, float] | None = None
    if profile is not None:
        policy_features = {f: float(profile[i]) for f, i in bundle.policy_columns.items()}
    for arm, (policy, _, scored) in arms.items():
        assert isinstance(policy, CreditPolicy)
        decisions[arm] = decide_credit(
            policy,
            policy_features,
            scored.pd,
            scored.score,
            scored.grade,
            requested_amount=requested,
            applicant_id=entity_id,
        )
    policy, slot, scored = arms[acting]
    decision = decisions[acting]
    if decision.decision != "approve":
        assert isinstance(policy, CreditPolicy)
        reasons = _reasons(slot, scored.inputs, policy.reason_codes_top_k)
        decision = replace(decision, reasons=decision.reasons + reasons)

    decision_id = uuid.uuid4().hex
    now = utc_now()
    opens_line = product in REVOLVING and decision.decision == "approve"
    response = {
        "decision_id": decision_id,
        "created_at": now,
        "product": product,
        "applicant_id": entity_id,
        "decision": decision.decision,
        "currency": "CNY",
        "requested_amount": requested,
        "approved_amount": decision.approved_amount,
        "limit": decision.limit,
        "annual_rate": decision.annual_rate,
        "term_options": [
            {"months": t.months, "annual_rate": t.annual_rate, "monthly_payment": t.monthly_payment}
            for t in decision.term_options
        ],
        "pd": round(scored.pd, 6),
        "score": round(scored.score, 1),
        "grade": scored.grade,
        "reason_codes": [r.as_dict() for r in decision.reasons],
        "model_version": scored.model,
        "policy_version": decision.policy_version,
        "arm": acting,
        "account_id": decision_id if opens_line else None,
    }
    other = decisions[shadow]
    other_scored = arms[shadow][2]
    record = {
        "request": body,
        "features": _feature_record(list(slot.model.feature_names), scored.inputs),
        "has_history": profile is not None,
        "snapshot": bundle.snapshot.snapshot_id,
        "policy_reason_codes": list(decision.policy_reason_codes),
        "proposed_limit": decision.proposed_limit,
        "shadow": {
            "arm": shadow,
            "model_version": other_scored.model,
            "policy_version": other.policy_version,
            "pd": round(other_scored.pd, 6),
            "score": round(other_scored.score, 1),
            "grade": other_scored.grade,
            "decision": other.decision,
            "limit": other.limit,
            "policy_reason_codes": list(other.policy_reason_codes),
        },
    }
    sent = audit.record_decision(
        DecisionRow(
            decision_id=decision_id,
            module=caller.module,
            idempotency_key=caller.idempotency_key,
            request_hash=fingerprint,
            product=product,
            entity_id=entity_id,
            outcome=decision.decision,
            arm=acting,
            model_version=scored.model,
            policy_version=decision.policy_version,
            response=response,
            record=record,
            open_line=(entity_id, decision.limit) if opens_line else None,
        )
    )
    return Answer(sent, decision.decision, acting)


# ---------------------------------------------------------------------------- payments
def payment_decision(
    resources: Resources, audit: AuditStore, body: dict[str, Any], caller: Caller
) -> Answer:
    """Allow / step-up / decline one payment by amount tier, and audit it.

    The payer's scored payments of the 24 h before ``ts`` (audit store) are the request's
    ``recent`` events (velocity, new payee/device/channel today); this payment is appended
    to them in the same transaction as its decision row.
    """
    product = "payment"
    fingerprint = request_hash(product, body)
    if caller.idempotency_key is not None:
        earlier = audit.find_idempotent(caller.module, caller.idempotency_key, fingerprint)
        if earlier is not None:
            return Answer(earlier)
    bundle = resources.bundle(product)
    payer_id = str(body["payer_id"])
    profile = bundle.snapshot.get(payer_id)
    ts = payment_ts(body.get("ts"))
    ts_us = int(to_us(np.array([ts], dtype=object))[0])
    recent = audit.recent_payments(payer_id, ts_us - US_PER_DAY, ts_us)
    request = {**body, "payer_id": payer_id, "ts": ts, "recent": recent}
    full = bundle.vectorizer.vector(profile, request, payer_id)
    use_challenger = challenger_arm(product, payer_id, bundle.policy.challenger.traffic_share)
    champ = _score(bundle.champion, _inputs(bundle.champion, full))
    chall_slot = bundle.challenger
    chall = _score(chall_slot, _inputs(chall_slot, full)) if chall_slot is not None else None
    acting = "challenger" if use_challenger and chall is not None else "champion"
    policy = bundle.challenger_policy if acting == "challenger" else bundle.policy
    slot = chall_slot if acting == "challenger" and chall_slot is not None else bundle.champion
    scored = chall if acting == "challenger" and chall is not None else champ
    assert isinstance(policy, PaymentPolicy)
    new_device = bool(body.get("new_device", False))
    decision = decide_payment(
        policy,
        float(body["amount"]),
        scored.pd,
        payer_id=payer_id,
        device_id=body.get("device_id"),
        new_device=new_device,
    )
    if decision.action != "allow":
        reasons = _reasons(slot, scored.inputs, policy.reason_codes_top_k)
        decision = replace(decision, reasons=decision.reasons + reasons)
    decision_id = uuid.uuid4().hex
    response = {
        "decision_id": decision_id,
        "created_at": utc_now(),
        "product": product,
        "action": decision.action,
        "amount_tier": decision.tier,
        "step_up_at": decision.step_up_at,
        "decline_at": decision.decline_at,
        "fraud_probability": round(scored.pd, 6),
        "score": round(scored.score, 1),
        "reason_codes": [r.as_dict() for r in decision.reasons],
        "model_version": scored.model,
        "policy_version": decision.policy_version,
        "arm": acting,
    }
    shadow_scored = champ if acting == "challenger" else chall
    record = {
        "request": {k: v for k, v in body.items() if k != "card_token"},
        "features": _feature_record(list(slot.model.feature_names), scored.inputs),
        "has_history": profile is not None,
        "recent_events": len(recent),
        "snapshot": bundle.snapshot.snapshot_id,
        "shadow": None
        if shadow_scored is None
        else {
            "model_version": shadow_scored.model,
            "fraud_probability": round(shadow_scored.pd, 6),
            "action": decide_payment(
                bundle.policy if acting == "challenger" else bundle.challenger_policy,  # type: ignore[arg-type]
                float(body["amount"]),
                shadow_scored.pd,
                payer_id=payer_id,
                new_device=new_device,
            ).action,
        },
    }
    sent = audit.record_decision(
        DecisionRow(
            decision_id=decision_id,
            module=caller.module,
            idempotency_key=caller.idempotency_key,
            request_hash=fingerprint,
            product=product,
            entity_id=payer_id,
            outcome=decision.action,
            arm=acting,
            model_version=scored.model,
            policy_version=decision.policy_version,
            response=response,
            record=record,
            payment_event=PaymentEvent(
                payer_id=payer_id,
                ts_us=ts_us,
                amount=float(body["amount"]),
                counterpart_id=body.get("counterpart_id"),
                merchant_id=body.get("merchant_id"),
                device_id=body.get("device_id"),
                channel=body.get("channel"),
            ),
        )
    )
    return Answer(sent, decision.action, acting)


def payment_ts(raw: str | None) -> str:
    """The payment time as naive UTC ISO text (what the feature store reads); now if absent."""
    if raw is None:
        return utc_now()[:26]
    stamp = dt.datetime.fromisoformat(raw)
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
    return stamp.isoformat(timespec="microseconds")

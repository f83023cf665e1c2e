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
from typing import Any, TypeVar

import numpy as np

from features.request import US_PER_DAY, to_us
from scoring_service.resources import ModelSlot, Resources
from yidai.audit import AuditStore, DecisionRow, PaymentEvent, utc_now
from yidai.decisioning import (
    CreditDecision,
    CreditPolicy,
    PaymentDecision,
    PaymentPolicy,
    decide_credit,
    decide_payment,
    model_reasons,
    monthly_payment,
)
from yidai.decisioning.credit import Outcome
from yidai.decisioning.reasons import policy_reason

_D = TypeVar("_D", CreditDecision, PaymentDecision)

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
        margin = model.blended_margin(np.array([slot.margin(X[0])]), X)  # type: ignore[attr-defined]
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
        trees = slot.margin.contributions(X[0])[None, :-1]
        contrib = slot.model.blended_contributions(trees, X[:1])  # type: ignore[attr-defined]
        return model_reasons(coder.reasons(contrib, top_k=top_k, values=X[:1])[0])
    return model_reasons(slot.model.reason_codes(X, top_k=top_k)[0])


def _feature_record(names: list[str], X: np.ndarray) -> dict[str, float | None]:
    """The model inputs by name, NaN (missing) as None."""
    return {n: v if v == v else None for n, v in zip(names, X[0].tolist(), strict=True)}


# ---------------------------------------------------------------------------- shared steps
def _replay(audit: AuditStore, caller: Caller, fingerprint: str) -> Answer | None:
    """The stored response of a request already seen under the caller's idempotency key."""
    if caller.idempotency_key is None:
        return None
    earlier = audit.find_idempotent(caller.module, caller.idempotency_key, fingerprint)
    return None if earlier is None else Answer(earlier)


def _score_arms(bundle: Any, full: np.ndarray) -> tuple[Scored, Scored | None]:
    """The champion's score and the challenger model's (None without a challenger model)."""
    champ = _score(bundle.champion, _inputs(bundle.champion, full))
    slot = bundle.challenger
    return champ, (_score(slot, _inputs(slot, full)) if slot is not None else None)


def _explained(decision: _D, adverse: bool, slot: ModelSlot, scored: Scored, top_k: int) -> _D:
    """An adverse decision with the model's top reasons appended to the policy's."""
    if not adverse:
        return decision
    return replace(decision, reasons=decision.reasons + _reasons(slot, scored.inputs, top_k))


def _base_record(
    request: dict[str, Any], slot: ModelSlot, scored: Scored, profile: Any
) -> dict[str, Any]:
    """The audit record's fields common to every product: the request, the model inputs."""
    return {
        "request": request,
        "features": _feature_record(list(slot.model.feature_names), scored.inputs),
        "has_history": profile is not None,
    }


def _audited(
    audit: AuditStore,
    caller: Caller,
    fingerprint: str,
    decided: tuple[str, str, str, str, str],
    scored: Scored,
    response: dict[str, Any],
    record: dict[str, Any],
    *,
    open_line: tuple[str, float] | None = None,
    payment_event: PaymentEvent | None = None,
) -> Answer:
    """Append the decision to the audit store; the answer is the response it stored.

    ``decided`` is (decision id, product, entity id, outcome, acting arm)."""
    decision_id, product, entity_id, outcome, arm = decided
    row = DecisionRow(
        decision_id=decision_id,
        module=caller.module,
        idempotency_key=caller.idempotency_key,
        request_hash=fingerprint,
        product=product,
        entity_id=entity_id,
        outcome=outcome,
        arm=arm,
        model_version=scored.model,
        policy_version=response["policy_version"],
        response=response,
        record=record,
        open_line=open_line,
        payment_event=payment_event,
    )
    return Answer(audit.record_decision(row), outcome, arm)


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
    replay = _replay(audit, caller, fingerprint)
    if replay is not None:
        return replay
    bundle = resources.bundle(product)
    entity_id = str(body[CREDIT_ENTITY_FIELD[product]])
    requested = body.get("requested_amount")
    profile = bundle.snapshot.get(entity_id)
    assert isinstance(bundle.policy, CreditPolicy)
    # No amount asked: the applicant asks for a line, scored as asking for the maximum.
    asked = requested if requested is not None else bundle.policy.limit.max_limit
    full = bundle.vectorizer.vector(profile, {"requested_amount": asked}, entity_id)
    arms, acting, shadow = _credit_arms(product, entity_id, bundle, *_score_arms(bundle, full))
    decisions = _credit_decisions(bundle, profile, arms, requested, entity_id)
    policy, slot, scored = arms[acting]
    assert isinstance(policy, CreditPolicy)
    existing = _existing_line(resources, audit, product, entity_id)
    decision = _within_exposure(decisions[acting], policy, audit, product, existing)
    decision = _explained(
        decision, decision.decision != "approve", slot, scored, policy.reason_codes_top_k
    )
    decision_id = uuid.uuid4().hex
    opens_line = product in REVOLVING and decision.decision == "approve"
    response = _credit_response(
        decision_id, product, entity_id, requested, decision, scored, acting, opens_line
    )
    if existing is not None:
        response["account_id"] = existing  # the line to review: the one account it has
    record = _base_record(body, slot, scored, profile)
    record["snapshot"] = bundle.snapshot.snapshot_id
    record["policy_reason_codes"] = list(decision.policy_reason_codes)
    record["proposed_limit"] = decision.proposed_limit
    record["shadow"] = _credit_shadow(shadow, decisions[shadow], arms[shadow][2])
    decided = (decision_id, product, entity_id, decision.decision, acting)
    return _audited(
        audit,
        caller,
        fingerprint,
        decided,
        scored,
        response,
        record,
        open_line=(entity_id, decision.limit) if opens_line else None,
    )


def _existing_line(
    resources: Resources, audit: AuditStore, product: str, borrower_id: str
) -> str | None:
    """The account of the borrower's line of a revolving product: the ledger's, else (for a
    merchant) the live published nightly limit's; None if it has none."""
    if product not in REVOLVING:
        return None
    account = audit.line_of(product, borrower_id)
    limits = resources.limits if product == "merchant" else None
    if account is None and limits is not None:
        published = limits.get(borrower_id)
        if published is not None and published.account_id and published.status != "none":
            account = published.account_id
    return account


def _within_exposure(
    decision: CreditDecision,
    policy: CreditPolicy,
    audit: AuditStore,
    product: str,
    existing: str | None,
) -> CreditDecision:
    """The one-line rule and the policy's exposure caps (:class:`ExposureCaps`).

    A borrower with a line is referred to a review of it (``EX_EXISTING_LINE``): no second
    line, nothing committed.  Otherwise an approval is cut to the borrower cap
    (``EX_CAPPED_BY_BORROWER_CAP``) and declined if the product's committed lines plus this
    one would pass the product cap (``EX_PRODUCT_CAP``)."""
    caps = policy.exposure
    if existing is not None:
        outcome: Outcome = "decline" if decision.decision == "decline" else "refer"
        return _adjusted(decision, outcome, 0.0, "EX_EXISTING_LINE")
    if decision.decision != "approve":
        return decision
    if caps.max_product_exposure is not None and product in REVOLVING:
        committed, _ = audit.committed(product)
        if committed + decision.limit > caps.max_product_exposure:
            return _adjusted(decision, "decline", 0.0, "EX_PRODUCT_CAP")
    cap = caps.max_borrower_exposure
    if cap is not None and decision.limit > cap:
        return _adjusted(decision, "approve", cap, "EX_CAPPED_BY_BORROWER_CAP")
    return decision


def _adjusted(
    decision: CreditDecision, outcome: Outcome, limit: float, code: str
) -> CreditDecision:
    """``decision`` with a new outcome / limit and the reason code saying why."""
    reason = policy_reason(code)
    if outcome != "approve":
        return replace(
            decision, decision=outcome, limit=0.0, approved_amount=0.0, annual_rate=None,
            term_options=(), reasons=(reason, *decision.reasons),
            policy_reason_codes=(code, *decision.policy_reason_codes),
        )  # fmt: skip
    amount = min(decision.approved_amount, limit)
    rate = decision.annual_rate or 0.0
    return replace(
        decision, limit=limit, approved_amount=amount,
        term_options=tuple(
            replace(t, monthly_payment=monthly_payment(amount, rate, t.months))
            for t in decision.term_options
        ),
        reasons=(*decision.reasons, reason),
        policy_reason_codes=(*decision.policy_reason_codes, code),
    )  # fmt: skip


def _credit_arms(
    product: str, entity_id: str, bundle: Any, champ: Scored, chall: Scored | None
) -> tuple[dict[str, tuple[Any, ModelSlot, Scored]], str, str]:
    """Both arms' (policy, model, score), the acting arm and the shadow one.  Without a
    challenger model, the challenger arm is the champion model under the challenger policy
    (acting only if that policy overrides something)."""
    use_challenger = challenger_arm(
        product, entity_id, bundle.policy.challenger.traffic_share
    ) and (bundle.challenger is not None or bundle.policy.challenger.overrides)
    arms = {
        "champion": (bundle.policy, bundle.champion, champ),
        "challenger": (
            bundle.challenger_policy,
            bundle.challenger or bundle.champion,
            chall or champ,
        ),
    }
    if use_challenger:
        return arms, "challenger", "champion"
    return arms, "champion", "challenger"


def _credit_decisions(
    bundle: Any,
    profile: Any,
    arms: dict[str, tuple[Any, ModelSlot, Scored]],
    requested: float | None,
    entity_id: str,
) -> dict[str, CreditDecision]:
    """Each arm's policy applied to its own score (the acting one and the shadow)."""
    policy_features: dict[str, float] | None = None
    if profile is not None:
        policy_features = {f: float(profile[i]) for f, i in bundle.policy_columns.items()}
    decisions: dict[str, CreditDecision] = {}
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
    return decisions


def _credit_response(
    decision_id: str,
    product: str,
    entity_id: str,
    requested: float | None,
    decision: CreditDecision,
    scored: Scored,
    acting: str,
    opens_line: bool,
) -> dict[str, Any]:
    """The credit decision's response body."""
    return {
        "decision_id": decision_id,
        "created_at": utc_now(),
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


def _credit_shadow(arm: str, decision: CreditDecision, scored: Scored) -> dict[str, Any]:
    """What the shadow arm would have decided (audit only)."""
    return {
        "arm": arm,
        "model_version": scored.model,
        "policy_version": decision.policy_version,
        "pd": round(scored.pd, 6),
        "score": round(scored.score, 1),
        "grade": scored.grade,
        "decision": decision.decision,
        "limit": decision.limit,
        "policy_reason_codes": list(decision.policy_reason_codes),
    }


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
    replay = _replay(audit, caller, fingerprint)
    if replay is not None:
        return replay
    bundle = resources.bundle(product)
    payer_id = str(body["payer_id"])
    request, ts_us = _with_recent_payments(audit, body, payer_id)
    full, profile = bundle.vectorizer.read(request, payer_id)
    champ, chall = _score_arms(bundle, full)
    use_challenger = challenger_arm(product, payer_id, bundle.policy.challenger.traffic_share)
    on_challenger = use_challenger and chall is not None
    acting = "challenger" if on_challenger else "champion"
    policy = bundle.challenger_policy if on_challenger else bundle.policy
    slot = bundle.challenger if on_challenger else bundle.champion
    scored = chall if on_challenger else champ
    assert isinstance(policy, PaymentPolicy) and slot is not None and scored is not None
    amount = float(body["amount"])
    new_device = bool(body.get("new_device", False))
    decision = decide_payment(
        policy,
        amount,
        scored.pd,
        payer_id=payer_id,
        device_id=body.get("device_id"),
        new_device=new_device,
    )
    decision = _explained(
        decision, decision.action != "allow", slot, scored, policy.reason_codes_top_k
    )
    decision_id = uuid.uuid4().hex
    response = _payment_response(decision_id, product, decision, scored, acting)
    shadow_policy = bundle.policy if on_challenger else bundle.challenger_policy
    shadow_scored = champ if on_challenger else chall
    request_kept = {k: v for k, v in body.items() if k != "card_token"}
    record = _base_record(request_kept, slot, scored, profile)
    record["recent_events"] = len(request["recent"])
    record["snapshot"] = bundle.snapshot.snapshot_id
    record["shadow"] = _payment_shadow(shadow_policy, shadow_scored, amount, payer_id, new_device)
    decided = (decision_id, product, payer_id, decision.action, acting)
    event = _payment_event(body, payer_id, ts_us, amount)
    return _audited(
        audit, caller, fingerprint, decided, scored, response, record, payment_event=event
    )


def _with_recent_payments(
    audit: AuditStore, body: dict[str, Any], payer_id: str
) -> tuple[dict[str, Any], int]:
    """The request with its time and the payer's payments of the 24 h before it (audit
    store); the time in microseconds."""
    ts = payment_ts(body.get("ts"))
    ts_us = int(to_us(np.array([ts], dtype=object))[0])
    recent = audit.recent_payments(payer_id, ts_us - US_PER_DAY, ts_us)
    return {**body, "payer_id": payer_id, "ts": ts, "recent": recent}, ts_us


def _payment_response(
    decision_id: str, product: str, decision: PaymentDecision, scored: Scored, acting: str
) -> dict[str, Any]:
    """The payment decision's response body."""
    return {
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


def _payment_shadow(
    policy: Any, scored: Scored | None, amount: float, payer_id: str, new_device: bool
) -> dict[str, Any] | None:
    """What the other model would have scored and done (audit only); None without one."""
    if scored is None:
        return None
    return {
        "model_version": scored.model,
        "fraud_probability": round(scored.pd, 6),
        "action": decide_payment(
            policy, amount, scored.pd, payer_id=payer_id, new_device=new_device
        ).action,
    }


def _payment_event(body: dict[str, Any], payer_id: str, ts_us: int, amount: float) -> PaymentEvent:
    """The payment as an event of the payer's recent history (velocity features)."""
    return PaymentEvent(
        payer_id=payer_id,
        ts_us=ts_us,
        amount=amount,
        counterpart_id=body.get("counterpart_id"),
        merchant_id=body.get("merchant_id"),
        device_id=body.get("device_id"),
        channel=body.get("channel"),
    )


def payment_ts(raw: str | None) -> str:
    """The payment time as naive UTC ISO text (what the feature store reads); now if absent."""
    if raw is None:
        return utc_now()[:26]
    stamp = dt.datetime.fromisoformat(raw)
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
    return stamp.isoformat(timespec="microseconds")

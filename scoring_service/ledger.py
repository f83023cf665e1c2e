"""The service side of revolving lines (merchant and SME): the limit in force, drawdowns,
repayments and the live state of a line.

A line's outstanding balance is its accepted drawdowns minus its accepted repayments, both
booked atomically in the audit store (:mod:`yidai.audit`).  A repayment larger than
the outstanding balance is rejected (HTTP 409, reason ``RP_EXCEEDS_OUTSTANDING``), not capped:
the bank does not take money it is not owed, and taking part of a payment would leave the
caller's books and the bank's disagreeing.  A repayment is accepted on a frozen line too (it
only lowers the bank's exposure); a frozen line's available amount stays zero.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from typing import Any

from scoring_service.decide import Answer, Caller, request_hash
from scoring_service.resources import Resources
from yidai.audit import AuditStore, Line, to_fen, utc_now
from yidai.decisioning.reasons import policy_reason

# Rejected repayments: the HTTP status they are answered with (and replayed with).
REPAYMENT_REJECTIONS: dict[str, int] = {
    "RP_UNKNOWN_ACCOUNT": 404,
    "RP_EXCEEDS_OUTSTANDING": 409,
}


@dataclass(frozen=True, slots=True)
class LedgerAnswer:
    """The HTTP status and response JSON of a ledger call."""

    status_code: int
    json: str


def line_limit(resources: Resources, line: Line) -> tuple[float, str | None]:
    """The limit in force on a line and the reason it blocks drawdowns (None: it does not).

    A merchant line follows the live nightly published limits (a frozen line has no limit
    in force); until they are loaded the call raises ``NotReady`` (HTTP 503), so no merchant
    answer rests on a guessed limit.  A merchant line that is not in them yet (approved
    since the last refresh) keeps the limit of its approval, as an SME line does.
    """
    if line.product == "merchant":
        published = resources.limits_in_force().get(line.borrower_id)
        if published is not None:
            if published.status != "active":
                return 0.0, "DD_LINE_FROZEN"
            return published.credit_line, None
    return line.credit_limit, None


def drawdown(
    resources: Resources, audit: AuditStore, body: dict[str, Any], caller: Caller
) -> Answer:
    """Draw on a revolving line: accepted only if it fits in limit minus outstanding.

    A merchant line follows the nightly published limits (a frozen line accepts nothing).
    """
    amount = float(body["amount"])
    term = int(body["term_months"])
    drawdown_id = uuid.uuid4().hex

    def respond(
        line: Line | None, limit: float, outstanding: float, reject: str | None
    ) -> dict[str, Any]:
        accepted = reject is None
        after = outstanding + (amount if accepted else 0.0)
        return {
            "drawdown_id": drawdown_id,
            "created_at": utc_now(),
            "account_id": body["account_id"],
            "product": line.product if line else None,
            "status": "accepted" if accepted else "rejected",
            "amount": amount,
            "term_months": term,
            "credit_limit": limit,
            "outstanding_before": outstanding,
            "available_after": max(limit - after, 0.0),
            "reason_codes": [] if accepted else [policy_reason_dict(reject)],
        }

    sent = audit.drawdown(
        drawdown_id=drawdown_id,
        account_id=str(body["account_id"]),
        amount=amount,
        term_months=term,
        module=caller.module,
        idempotency_key=caller.idempotency_key,
        request_hash=request_hash("drawdown", body),
        effective_limit=functools.partial(line_limit, resources),
        respond=respond,
    )
    return Answer(sent)


# Rejected drawdowns: their reason texts (English, Chinese).
DRAWDOWN_REASONS = {
    "DD_INSUFFICIENT_LIMIT": ("Amount exceeds the available limit", "金额超过可用额度"),
    "DD_LINE_FROZEN": ("The credit line is frozen", "额度已冻结"),
    "DD_UNKNOWN_ACCOUNT": ("No approved credit line with this account id", "无此授信账户"),
}


def policy_reason_dict(code: str | None) -> dict[str, str]:
    """A drawdown rejection as a reason-code dict (the decisions' reason shape)."""
    en, zh = DRAWDOWN_REASONS.get(code or "", (code or "", ""))
    return policy_reason(code or "", en, zh).as_dict()


def repayment(
    resources: Resources, audit: AuditStore, body: dict[str, Any], caller: Caller
) -> LedgerAnswer:
    """Book a repayment on a revolving line: it lowers the outstanding balance, never below 0.

    Accepted: 200 with the new outstanding and available amounts.  Unknown account: 404;
    more than the outstanding balance: 409.  Every answer is appended to the audit store
    before it is returned, and a retry with the same idempotency key gets it back.
    """
    account_id = str(body["account_id"])
    amount = to_fen(body["amount"])
    repayment_id = uuid.uuid4().hex

    def respond(line: Line | None, outstanding: float, reject: str | None) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "repayment_id": repayment_id,
            "created_at": utc_now(),
            "account_id": account_id,
            "amount": amount,
        }
        if line is None:
            detail = f"no revolving line with account id {account_id!r}"
            return {**answer, "reason_code": reject, "detail": detail}
        if reject is not None:
            detail = (
                f"repayment {amount:.2f} exceeds the outstanding balance {outstanding:.2f} "
                f"of account {account_id!r}; repay at most {outstanding:.2f}"
            )
            return {
                **answer,
                "product": line.product,
                "outstanding": outstanding,
                "reason_code": reject,
                "detail": detail,
            }
        limit, _ = line_limit(resources, line)
        after = to_fen(outstanding - amount)
        return {
            **answer,
            "product": line.product,
            "credit_limit": limit,
            "outstanding_before": outstanding,
            "outstanding_after": after,
            "available_after": max(to_fen(limit - after), 0.0),
        }

    booked = audit.repay(
        repayment_id=repayment_id,
        account_id=account_id,
        amount=amount,
        module=caller.module,
        idempotency_key=caller.idempotency_key,
        request_hash=request_hash("repayment", body),
        respond=respond,
    )
    if booked.status == "accepted":
        return LedgerAnswer(200, booked.json)
    code = json.loads(booked.json).get("reason_code", "")
    return LedgerAnswer(REPAYMENT_REJECTIONS.get(code, 409), booked.json)


def line_view(resources: Resources, audit: AuditStore, account_id: str) -> dict[str, Any] | None:
    """A line as the ledger sees it now (None if there is no such account)."""
    found = audit.line_state(account_id)
    if found is None:
        return None
    line, outstanding = found
    limit, block = line_limit(resources, line)
    return {
        "account_id": line.account_id,
        "product": line.product,
        "borrower_id": line.borrower_id,
        "status": "frozen" if block == "DD_LINE_FROZEN" else "active",
        "credit_limit": limit,
        "outstanding": outstanding,
        "available": max(to_fen(limit - outstanding), 0.0),
    }

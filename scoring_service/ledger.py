"""The service side of revolving lines (merchant and SME): the limit in force, drawdowns,
repayments and the live state of a line.

A line's outstanding balance is its accepted drawdowns minus its accepted repayments, both
booked atomically in the audit store (:mod:`yidai.audit`).  A repayment larger than
the outstanding balance is refused (HTTP 200, ``status: "rejected"``, reason
``RP_EXCEEDS_OUTSTANDING``), not capped:
the bank does not take money it is not owed, and taking part of a payment would leave the
caller's books and the bank's disagreeing.  A repayment is accepted on a frozen line too (it
only lowers the bank's exposure); a frozen line's available amount stays zero.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException

from scoring_service.decide import Answer, Caller, request_hash
from scoring_service.resources import Resources
from yidai.audit import AuditStore, Line, to_fen, utc_now
from yidai.decisioning import exposure as book
from yidai.decisioning.reasons import policy_reason

# Refused repayments: their reason texts (English, Chinese).  A refusal is a business
# answer: HTTP 200 with ``status: "rejected"`` and the reason codes (see the README's
# "Calling the service": the one refusal convention of every endpoint).
REPAYMENT_REASONS = {
    "RP_UNKNOWN_ACCOUNT": ("No revolving line with this account id", "无此授信账户"),
    "RP_EXCEEDS_OUTSTANDING": ("Amount exceeds the outstanding balance", "还款金额超过未偿余额"),
}


@dataclass(frozen=True, slots=True)
class LedgerAnswer:
    """The HTTP status and response JSON of a ledger call."""

    status_code: int
    json: str


def adopt_book_line(resources: Resources, audit: AuditStore, account_id: str) -> None:
    """Make a loan-book account the service can act on: if ``account_id`` names a line of the
    live published merchant limits that the ledger does not know yet, the ledger registers it
    under that same account id, with the book's outstanding balance as its opening balance.
    So ``GET /v1/merchants/{id}/limit``, ``GET /v1/lines/{account_id}``, drawdowns and
    repayments all name one account.  Nothing happens while the limits are loading."""
    if audit.line_state(account_id) is not None:
        return
    limits = resources.limits
    if limits is None:
        return
    found = limits.by_account(account_id)
    if found is None or found.status == "none":
        return
    audit.adopt_line(
        account_id,
        "merchant",
        found.merchant_id,
        found.credit_line,
        found.outstanding,
        f"limits:{limits.version}",
    )


def merchant_account(resources: Resources, audit: AuditStore, merchant_id: str) -> str | None:
    """The account id of the merchant's one line: the ledger's, else the published one
    (adopted into the ledger on the way), else None."""
    account = audit.line_of("merchant", merchant_id)
    if account is not None:
        return account
    published = resources.limits_in_force().get(merchant_id)
    if published is None or published.account_id is None or published.status == "none":
        return None
    adopt_book_line(resources, audit, published.account_id)
    return published.account_id


def merchant_limit_view(
    resources: Resources, audit: AuditStore, merchant_id: str
) -> dict[str, Any] | None:
    """The merchant's line in the live limits version, named by the account the ledger uses,
    with the live outstanding and available amounts (None if the merchant has no line)."""
    limits = resources.limits_in_force()
    found = limits.get(merchant_id)
    if found is None:
        return None
    view = {**found.as_dict(), "limits_version": limits.version, "as_of": str(limits.as_of)}
    account = merchant_account(resources, audit, merchant_id)
    if account is not None:
        state = audit.line_state(account)
        outstanding = found.outstanding if state is None else state[1]
        available = book.available(found.credit_line, outstanding, found.status)
        view.update(account_id=account, outstanding=outstanding, available=to_fen(float(available)))
    return view


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
    adopt_book_line(resources, audit, str(body["account_id"]))
    check_term(resources, audit, str(body["account_id"]), term)

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


class TermNotOffered(HTTPException):
    """HTTP 422 ``DD_TERM_NOT_OFFERED``: the drawdown's term is not one the product offers."""

    reason_code = "DD_TERM_NOT_OFFERED"

    def __init__(self, detail: str) -> None:
        super().__init__(422, detail)


def check_term(resources: Resources, audit: AuditStore, account_id: str, term: int) -> None:
    """A drawdown's term must be one the line's product offers (its policy's
    ``terms_months``): otherwise HTTP 422 ``DD_TERM_NOT_OFFERED`` listing them.  An invalid
    request, not a business refusal: nothing is booked.  A service not (yet) serving the
    product's decisions does not know its terms and checks none."""
    found = audit.line_state(account_id)
    if found is None:
        return  # an unknown account is refused (DD_UNKNOWN_ACCOUNT), whatever the term
    product = found[0].product
    bundle = resources.bundles.get(product)
    if bundle is None:  # the product's policy is not loaded here: its terms are not known
        return
    offered = tuple(getattr(bundle.policy, "terms_months", ()))
    if offered and term not in offered:
        listed = ", ".join(str(t) for t in offered)
        raise TermNotOffered(
            f"term_months {term} is not offered on {product} lines; offered terms: {listed}"
        )


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

    Accepted: 200 with the new outstanding and available amounts.  Refused (unknown
    account, more than the outstanding balance): 200 with ``status: "rejected"`` and the
    reason codes.  Every answer is appended to the audit store
    before it is returned, and a retry with the same idempotency key gets it back.
    """
    account_id = str(body["account_id"])
    amount = to_fen(body["amount"])
    repayment_id = uuid.uuid4().hex
    adopt_book_line(resources, audit, account_id)

    def respond(line: Line | None, outstanding: float, reject: str | None) -> dict[str, Any]:
        limit = 0.0 if line is None else line_limit(resources, line)[0]
        answer: dict[str, Any] = {
            "repayment_id": repayment_id,
            "created_at": utc_now(),
            "account_id": account_id,
            "product": None if line is None else line.product,
            "amount": amount,
            "credit_limit": limit,
            "outstanding_before": outstanding,
        }
        if reject is not None:
            if line is None:
                detail = f"no revolving line with account id {account_id!r}"
            else:
                detail = (
                    f"repayment {amount:.2f} exceeds the outstanding balance "
                    f"{outstanding:.2f} of account {account_id!r}; repay at most "
                    f"{outstanding:.2f}"
                )
            en, zh = REPAYMENT_REASONS[reject]
            return {
                **answer,
                "outstanding_after": outstanding,
                "available_after": max(to_fen(limit - outstanding), 0.0),
                "reason_codes": [policy_reason(reject, en, zh).as_dict()],
                "reason_code": reject,
                "detail": detail,
            }
        after = to_fen(outstanding - amount)
        return {
            **answer,
            "outstanding_after": after,
            "available_after": max(to_fen(limit - after), 0.0),
            "reason_codes": [],
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
    return LedgerAnswer(200, booked.json)


def line_view(resources: Resources, audit: AuditStore, account_id: str) -> dict[str, Any] | None:
    """A line as the ledger sees it now (None if there is no such account)."""
    adopt_book_line(resources, audit, account_id)
    found = audit.line_state(account_id)
    if found is None:
        return None
    line, outstanding = found
    limit, block = line_limit(resources, line)
    status = "frozen" if block == "DD_LINE_FROZEN" else "active"
    return {
        "account_id": line.account_id,
        "product": line.product,
        "borrower_id": line.borrower_id,
        "status": status,
        "credit_limit": limit,
        "outstanding": outstanding,
        "available": to_fen(float(book.available(limit, outstanding, status))),
    }

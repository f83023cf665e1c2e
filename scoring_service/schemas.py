"""Request (``...In``) and response (``...Out``) bodies of the scoring API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
)

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-:.]+$")]
# Numbers and flags are strict (a JSON number, true/false): "12.5" or 0 for a flag would be
# accepted by pydantic's lax mode although the document says otherwise.
Amount = Annotated[float, Strict(), Field(gt=0, le=100_000_000, description="CNY")]

# Timestamps are taken for the years 2000-2099 as written (before any UTC offset): a wider
# range would only be typos, and year 1 or 9999 with an offset overflowed the UTC conversion.
FIRST_YEAR, LAST_YEAR = 2000, 2099


def _number_only(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):  # not "6" nor true
        raise ValueError("must be a JSON number")
    return value


# An integer, also written 6.0 (JSON Schema's "integer"); never a string or a boolean.
WholeNumber = Annotated[int, BeforeValidator(_number_only)]


def _text_only(value: object) -> object:
    if not isinstance(value, str | datetime):  # lax mode took numbers as Unix times
        raise ValueError("must be an ISO 8601 date-time string")
    return value


def _sane_year(value: datetime) -> datetime:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"the year must be {FIRST_YEAR} to {LAST_YEAR}")
    return value


Timestamp = Annotated[
    datetime,
    BeforeValidator(_text_only),
    AfterValidator(_sane_year),
    Field(
        description=f"ISO 8601 date and time, years {FIRST_YEAR}-{LAST_YEAR}; "
        "without a UTC offset it is taken as UTC.",
        json_schema_extra={"pattern": r"^20[0-9]{2}-"},  # FIRST_YEAR..LAST_YEAR
    ),
]


def _whole_fen(value: float) -> float:
    fen = round(value * 100)
    # (a tiny positive amount such as 5e-324 passed ``gt=0`` and was booked as 0.00)
    if fen < 1 or abs(fen - value * 100) > 1e-6:
        raise ValueError("must be in whole fen (at least 0.01, at most 2 decimal places)")
    return fen / 100


# An amount booked on a line: whole fen, so balances add up exactly.
LedgerAmount = Annotated[
    float,
    Strict(),
    Field(
        gt=0, le=100_000_000, description="CNY, whole fen (at most 2 decimals)",
        json_schema_extra={"multipleOf": 0.01},
    ),
    AfterValidator(_whole_fen),
]  # fmt: skip


def _examples(*examples: dict[str, Any], extra: Literal["forbid"] | None = None) -> ConfigDict:
    """A model config with OpenAPI examples (and ``extra="forbid"`` for request bodies)."""
    config = ConfigDict(json_schema_extra={"examples": list(examples)})
    if extra is not None:
        config["extra"] = extra
    return config


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PersonalCreditIn(_In):
    """A customer asks for instant consumer credit (e.g. at mall checkout)."""

    model_config = _examples(
        {
            "customer_id": "C00012345",
            "requested_amount": 2599.0,
            "seller_id": "S-mall-0042",
            "order_id": "O-20260701-000187",
            "channel": "mall_checkout",
        },
        extra="forbid",
    )

    customer_id: Id
    requested_amount: Amount | None = Field(None, description="Order amount to finance (CNY).")
    seller_id: Id | None = None
    order_id: Id | None = None
    channel: Literal["mall_checkout", "app", "online_banking", "mobile_banking", "other"] = (
        "mall_checkout"
    )


class MerchantCreditIn(_In):
    """A small merchant applies for a revolving line on its POS turnover."""

    model_config = _examples(
        {"merchant_id": "M000731", "requested_amount": 50000.0}, extra="forbid"
    )

    merchant_id: Id
    requested_amount: Amount | None = None


class SmeCreditIn(_In):
    """An SME applies for the 网贷通 revolving online loan."""

    model_config = _examples({"sme_id": "SME004512", "requested_amount": 300000.0}, extra="forbid")

    sme_id: Id
    requested_amount: Amount | None = None


class DrawdownIn(_In):
    """Draw on an approved revolving line (merchant or SME)."""

    model_config = _examples(
        {"account_id": "LA-3f9c2a7e", "amount": 12000.5, "term_months": 6}, extra="forbid"
    )

    account_id: Id
    amount: LedgerAmount
    term_months: WholeNumber = Field(ge=1, le=36)


class RepaymentIn(_In):
    """Repay part or all of a revolving line's outstanding balance (merchant or SME)."""

    model_config = _examples({"account_id": "LA-3f9c2a7e", "amount": 3000.25}, extra="forbid")

    account_id: Id
    amount: LedgerAmount


class PaymentRiskIn(_In):
    """An online (or card) payment to allow, step up or decline."""

    model_config = _examples(
        {
            "payment_id": "PAY-20260701-0091",
            "payer_id": "P00098765",
            "amount": 1280.0,
            "ts": "2026-07-01T10:15:00+08:00",
            "event_type": "payment",
            "payment_type": "e_payment",
            "channel": "app",
            "counterpart_id": "S-mall-0042",
            "device_id": "D-7f3e19",
            "new_device": False,
        },
        extra="forbid",
    )

    payment_id: Id | None = None
    payer_id: Id
    amount: Amount
    ts: Timestamp | None = Field(
        None,
        description=f"Payment time, ISO 8601, years {FIRST_YEAR}-{LAST_YEAR} (default: now); "
        "without a UTC offset it is taken as UTC.",
    )
    event_type: Literal["payment", "pos"] = "payment"
    payment_type: Literal["e_payment", "bill", "transfer_out"] = "e_payment"
    channel: Literal["app", "online_banking", "mobile_banking", "self_service", "pos", "other"]
    counterpart_id: Id | None = None
    merchant_id: Id | None = None
    mcc: Annotated[str, Field(pattern=r"^\d{4}$")] | None = None
    entry_mode: Literal["chip", "contactless", "magstripe", "manual"] | None = None
    device_id: Id | None = None
    new_device: StrictBool = Field(False, description="The payment page has not seen this device.")
    card_token: Id | None = Field(None, description="Never logged, not stored in the audit.")


_REASON = {
    "code": "HR_NO_HISTORY",
    "source": "policy",
    "text": "No credit history with the bank",
    "text_zh": "无历史记录",
}


class ReasonOut(BaseModel):
    model_config = _examples(_REASON)

    code: str
    source: Literal["policy", "model"]
    text: str
    text_zh: str = ""


class TermOptionOut(BaseModel):
    model_config = _examples({"months": 6, "annual_rate": 0.0798, "monthly_payment": 442.39})

    months: int
    annual_rate: float
    monthly_payment: float


_DECISION = {
    "decision_id": "9b2f4c1e6a7d4e0f8c3b5a2d1e6f7a8b",
    "created_at": "2026-07-01T02:15:00.123456+00:00",
    "product": "personal",
    "applicant_id": "C00012345",
    "decision": "approve",
    "currency": "CNY",
    "requested_amount": 2599.0,
    "approved_amount": 2599.0,
    "limit": 8000.0,
    "annual_rate": 0.0798,
    "term_options": [
        {"months": 3, "annual_rate": 0.0798, "monthly_payment": 875.77},
        {"months": 6, "annual_rate": 0.0798, "monthly_payment": 442.39},
    ],
    "pd": 0.0213,
    "score": 684.2,
    "grade": "B",
    "reason_codes": [],
    "model_version": "personal_pd:7",
    "policy_version": "2026.12.1+3c9a1f2e",
    "arm": "champion",
    "account_id": None,
}


class CreditDecisionOut(BaseModel):
    """The decision on a credit application."""

    model_config = _examples(_DECISION)

    decision_id: str
    created_at: str
    product: Literal["personal", "merchant", "sme"]
    applicant_id: str
    decision: Literal["approve", "refer", "decline"] = Field(
        description="approve: the line or loan is granted (``approved_amount``, terms). "
        "refer: not decided automatically; nothing is committed, no line opened: tell the "
        "customer it is under review and send it to the credit officers' queue (with "
        "EX_EXISTING_LINE: to the review of the borrower's line, ``account_id``). "
        "decline: refused, a business answer with its reason codes (HTTP 200)."
    )
    currency: Literal["CNY"] = "CNY"
    requested_amount: float | None = Field(description="The amount asked (None: a line).")
    approved_amount: float = Field(
        description="The amount granted; below the amount asked, a reason code says why "
        "(LM_CAPPED_BY_LIMIT, EX_CAPPED_BY_BORROWER_CAP)."
    )
    limit: float
    annual_rate: float | None
    term_options: list[TermOptionOut]
    pd: float = Field(description="Calibrated probability of default.")
    score: float = Field(description="Score points (higher = safer).")
    grade: str
    reason_codes: list[ReasonOut]
    model_version: str
    policy_version: str
    arm: Literal["champion", "challenger"]
    account_id: str | None = Field(
        None,
        description="The revolving account: the line an approval opened, or (reason "
        "EX_EXISTING_LINE) the borrower's existing line to review; the id every line "
        "endpoint uses.",
    )


class PaymentRiskOut(BaseModel):
    model_config = _examples(
        {
            "decision_id": "4d1e2f3a5b6c4d7e8f9a0b1c2d3e4f5a",
            "created_at": "2026-07-01T02:15:00.654321+00:00",
            "product": "payment",
            "action": "step_up",
            "amount_tier": "small",
            "step_up_at": 0.05,
            "decline_at": 0.6,
            "fraud_probability": 0.081,
            "score": 512.7,
            "reason_codes": [
                {"code": "new_device", "source": "model", "text": "Payment from a new device",
                 "text_zh": "新设备支付"},
            ],
            "model_version": "payment_fraud:4",
            "policy_version": "2026.12.1+8e1d0c44",
            "arm": "champion",
        }
    )  # fmt: skip

    decision_id: str
    created_at: str
    product: Literal["payment"] = "payment"
    action: Literal["allow", "step_up", "decline"]
    amount_tier: str
    step_up_at: float
    decline_at: float
    fraud_probability: float
    score: float
    reason_codes: list[ReasonOut]
    model_version: str
    policy_version: str
    arm: Literal["champion", "challenger"]


class DrawdownOut(BaseModel):
    model_config = _examples(
        {
            "drawdown_id": "0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f",
            "created_at": "2026-07-01T02:15:00.000001+00:00",
            "account_id": "LA-3f9c2a7e",
            "product": "sme",
            "status": "accepted",
            "amount": 12000.5,
            "term_months": 6,
            "credit_limit": 300000.0,
            "outstanding_before": 50000.0,
            "available_after": 237999.5,
            "reason_codes": [],
        }
    )

    drawdown_id: str
    created_at: str
    account_id: str
    product: str | None
    status: Literal["accepted", "rejected"]
    amount: float
    term_months: int
    credit_limit: float
    outstanding_before: float
    available_after: float
    reason_codes: list[ReasonOut]


class RepaymentOut(BaseModel):
    """A repayment and the line after it: booked (``accepted``) or refused (``rejected``,
    HTTP 200 too, with the reason codes: unknown account, more than the outstanding)."""

    model_config = _examples(
        {
            "repayment_id": "5e6f7a8b9c0d4e1f2a3b4c5d6e7f8a9b",
            "created_at": "2026-07-02T01:00:00.000001+00:00",
            "account_id": "LA-3f9c2a7e",
            "product": "sme",
            "status": "accepted",
            "amount": 3000.25,
            "credit_limit": 300000.0,
            "outstanding_before": 62000.5,
            "outstanding_after": 59000.25,
            "available_after": 240999.75,
            "reason_codes": [],
        }
    )

    repayment_id: str
    created_at: str
    account_id: str
    product: Literal["merchant", "sme"] | None = Field(description="None: unknown account.")
    status: Literal["accepted", "rejected"]
    amount: float
    credit_limit: float = Field(description="Limit in force (0 on a frozen line).")
    outstanding_before: float
    outstanding_after: float = Field(description="Unchanged when the repayment is refused.")
    available_after: float
    reason_codes: list[ReasonOut] = Field(
        description="Empty if accepted; else RP_UNKNOWN_ACCOUNT or RP_EXCEEDS_OUTSTANDING."
    )
    reason_code: str | None = Field(None, description="The refusal's code (rejected only).")
    detail: str | None = Field(None, description="What to do about a refusal.")


class LineOut(BaseModel):
    """A revolving line as the ledger sees it now."""

    model_config = _examples(
        {
            "account_id": "LA-3f9c2a7e",
            "product": "sme",
            "borrower_id": "SME004512",
            "status": "active",
            "credit_limit": 300000.0,
            "outstanding": 59000.25,
            "available": 240999.75,
        }
    )

    account_id: str
    product: Literal["merchant", "sme"]
    borrower_id: str
    status: Literal["active", "frozen"]
    credit_limit: float = Field(description="Limit in force (merchant: the published line).")
    outstanding: float = Field(description="Accepted drawdowns minus accepted repayments.")
    available: float


class DecisionLookupOut(BaseModel):
    """A stored decision: the response as sent, and what the shadow challenger did."""

    model_config = _examples(
        {
            "decision_id": _DECISION["decision_id"],
            "product": "personal",
            "created_at": _DECISION["created_at"],
            "response": _DECISION,
            "shadow": {"arm": "challenger", "model_version": "personal_pd:8", "pd": 0.0241,
                       "decision": "approve"},
        }
    )  # fmt: skip

    decision_id: str
    product: str
    created_at: str
    response: dict[str, Any]
    shadow: dict[str, Any] | None


class MerchantLimitOut(BaseModel):
    model_config = _examples(
        {
            "merchant_id": "M000731",
            "account_id": "LA-8a1b2c3d",
            "credit_line": 50000.0,
            "outstanding": 10000.0,
            "available": 40000.0,
            "status": "active",
            "decision": "increase",
            "reason_code": "INCREASE_TURNOVER_GROWTH",
            "grade": "B",
            "limits_version": "2026-06-30T02-00-00",
            "as_of": "2026-06-30",
        }
    )

    merchant_id: str
    account_id: str | None
    credit_line: float
    outstanding: float
    available: float
    status: str
    decision: str
    reason_code: str
    grade: str
    limits_version: str
    as_of: str


class HealthOut(BaseModel):
    """The process is up."""

    model_config = _examples({"status": "ok"})

    status: Literal["ok"]


class ProductReadinessOut(BaseModel):
    """What one product serves now, and what is missing or failed."""

    model_config = _examples(
        {
            "ready": True,
            "policy_version": "2026.12.1+3c9a1f2e",
            "snapshot": "personal-2026-06-30",
            "champion": "personal_pd:7",
            "challenger": "personal_pd:8",
            "problems": {},
        }
    )

    ready: bool
    policy_version: str | None
    snapshot: str | None
    champion: str | None
    challenger: str | None
    problems: dict[str, str] = Field(description="Artefact (policy, snapshot, ...) -> problem.")


class MerchantLimitsReadinessOut(BaseModel):
    """The live nightly merchant limits: merchant lines are drawn only once they are loaded."""

    model_config = _examples(
        {"ready": True, "version": "20260630-021500", "as_of": "2026-06-30", "problem": None},
        {
            "ready": False, "version": None, "as_of": None,
            "problem": "merchant limits 20260701-021500 failed to load: ...",
        },
    )  # fmt: skip

    ready: bool
    version: str | None
    as_of: str | None
    problem: str | None = Field(description="Why they are not loaded (None: loaded).")


class ReadinessOut(BaseModel):
    """Readiness: 200 when every product and the merchant limits are served, else 503.

    ``loading`` is true until the first load of everything has been tried.  The details
    (``pid`` onwards) need a key with the ``ops`` scope (YIDAI_OPS_ENDPOINTS_REQUIRE_KEY).
    """

    model_config = _examples(
        {
            "ready": False,
            "loading": False,
            "pid": 4182,
            "products": {
                "personal": ProductReadinessOut.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
                "sme": {
                    "ready": False, "policy_version": "2026.12.1+5d2e9b10", "snapshot": None,
                    "champion": None, "challenger": None,
                    "problems": {"snapshot": "no published sme snapshot"},
                },
            },
            "merchant_limits": {
                "ready": True, "version": "20260630-021500", "as_of": "2026-06-30",
                "problem": None,
            },
            "merchant_limits_version": "20260630-021500",
            "problems": {},
        },
        {"ready": True, "loading": False},
    )  # fmt: skip

    ready: bool
    loading: bool
    pid: int | None = None
    products: dict[str, ProductReadinessOut] | None = None
    merchant_limits: MerchantLimitsReadinessOut | None = None
    merchant_limits_version: str | None = None
    problems: dict[str, str] | None = None


# The reason codes of error responses (``ErrorOut.reason_code``); clients branch on these,
# never on ``detail``.  A business refusal (limit exceeded, frozen line, overpayment, unknown
# account) is not an error: it is HTTP 200 with ``status: "rejected"`` (drawdowns,
# repayments) or ``decision: "decline"`` (decisions) and its reason codes.
ERROR_REASONS: dict[str, str] = {
    "MALFORMED_BODY": "The body cannot be read as JSON text (400).",
    "INVALID_REQUEST": "The request does not match the document (422; see errors).",
    "REQUEST_REJECTED": "A well-formed request the service cannot act on (422).",
    "UNAUTHENTICATED": "Missing or invalid API key (401).",
    "FORBIDDEN": "The key's module lacks the operation's scope (403).",
    "NOT_FOUND": "No such resource (404).",
    "UNKNOWN_DECISION": "No stored decision with this id (404).",
    "UNKNOWN_ACCOUNT": "No revolving line with this account id (404).",
    "NO_PUBLISHED_LIMIT": "The merchant has no published limit (404).",
    "DD_TERM_NOT_OFFERED": "The drawdown's term_months is not one the line's product offers; "
    "the detail lists the offered terms (422).",
    "IDEMPOTENCY_KEY_REUSED": "The Idempotency-Key was used for a different request (409).",
    "CONFLICT": "The request conflicts with the current state (409).",
    "NOT_READY": "What the call needs is not loaded yet; retry after Retry-After (503).",
    "LIMITS_NOT_LOADED": "The live merchant limits are not loaded: none published, still "
    "loading, or failed to load; merchant lines cannot be drawn, repaid or read (503).",
    "BODY_TOO_LARGE": "The request body is larger than the service accepts (413).",
    "BODY_TIMEOUT": "The request body did not arrive in time (408).",
    "METHOD_NOT_ALLOWED": "The path does not take this method (405).",
    "HTTP_ERROR": "Any other HTTP error.",
}


class ErrorOut(BaseModel):
    """Every error response of the service: a message and a stable machine-readable code."""

    model_config = _examples(
        {
            "detail": "Idempotency-Key 'o-20260701-000187' was already used for a different "
            "request",
            "reason_code": "IDEMPOTENCY_KEY_REUSED",
            "errors": None,
        },
        {
            "detail": "invalid request: body.amount: Input should be greater than 0",
            "reason_code": "INVALID_REQUEST",
            "errors": ["body.amount: Input should be greater than 0"],
        },
    )

    detail: str = Field(description="Human-readable message (never echoes input values).")
    reason_code: str = Field(
        description="Stable code to branch on: "
        + "; ".join(f"{code}: {text}" for code, text in ERROR_REASONS.items())
    )
    errors: list[str] | None = Field(None, description="Validation 422: one line per problem.")


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses ``codes``, all with :class:`ErrorOut`."""
    return {code: {"model": ErrorOut, "description": ERROR_STATUS[code]} for code in codes}


ERROR_STATUS: dict[int, str] = {
    400: "The body cannot be read as JSON text (reason_code MALFORMED_BODY)",
    401: "Missing or invalid API key (reason_code UNAUTHENTICATED)",
    403: "The key lacks the operation's scope (reason_code FORBIDDEN)",
    404: "Not found (reason_code UNKNOWN_DECISION, UNKNOWN_ACCOUNT or NO_PUBLISHED_LIMIT)",
    409: "Idempotency-Key reused for a different request (reason_code IDEMPOTENCY_KEY_REUSED)",
    422: "Invalid request (reason_code INVALID_REQUEST, one line per problem in errors), or "
    "one the service cannot act on (REQUEST_REJECTED)",
    408: "The request body did not arrive in time (reason_code BODY_TIMEOUT)",
    413: "The request body is too large (reason_code BODY_TOO_LARGE)",
    503: "Not ready: a model, snapshot, policy (NOT_READY, see Retry-After) or the merchant "
    "limits (LIMITS_NOT_LOADED) are not loaded yet",
}

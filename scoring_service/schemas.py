"""Request (``...In``) and response (``...Out``) bodies of the scoring API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-:.]+$")]
Amount = Annotated[float, Field(gt=0, le=100_000_000, description="CNY")]


def _whole_fen(value: float) -> float:
    if abs(round(value, 2) - value) > 1e-9:
        raise ValueError("must be in whole fen (at most 2 decimal places)")
    return round(value, 2)


# An amount booked on a line: whole fen, so balances add up exactly.
LedgerAmount = Annotated[
    float, Field(gt=0, le=100_000_000, description="CNY, at most 2 decimals"),
    AfterValidator(_whole_fen),
]  # fmt: skip


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PersonalCreditIn(_In):
    """A customer asks for instant consumer credit (e.g. at mall checkout)."""

    customer_id: Id
    requested_amount: Amount | None = Field(None, description="Order amount to finance (CNY).")
    seller_id: Id | None = None
    order_id: Id | None = None
    channel: Literal["mall_checkout", "app", "online_banking", "mobile_banking", "other"] = (
        "mall_checkout"
    )


class MerchantCreditIn(_In):
    """A small merchant applies for a revolving line on its POS turnover."""

    merchant_id: Id
    requested_amount: Amount | None = None


class SmeCreditIn(_In):
    """An SME applies for the 网贷通 revolving online loan."""

    sme_id: Id
    requested_amount: Amount | None = None


class DrawdownIn(_In):
    """Draw on an approved revolving line (merchant or SME)."""

    account_id: Id
    amount: LedgerAmount
    term_months: int = Field(ge=1, le=36)


class RepaymentIn(_In):
    """Repay part or all of a revolving line's outstanding balance (merchant or SME)."""

    account_id: Id
    amount: LedgerAmount


class PaymentRiskIn(_In):
    """An online (or card) payment to allow, step up or decline."""

    payment_id: Id | None = None
    payer_id: Id
    amount: Amount
    ts: datetime | None = Field(None, description="Payment time (default: now).")
    event_type: Literal["payment", "pos"] = "payment"
    payment_type: Literal["e_payment", "bill", "transfer_out"] = "e_payment"
    channel: Literal["app", "online_banking", "mobile_banking", "self_service", "pos", "other"]
    counterpart_id: Id | None = None
    merchant_id: Id | None = None
    mcc: Annotated[str, Field(pattern=r"^\d{4}$")] | None = None
    entry_mode: Literal["chip", "contactless", "magstripe", "manual"] | None = None
    device_id: Id | None = None
    new_device: bool = Field(False, description="The payment page has not seen this device.")
    card_token: Id | None = Field(None, description="Never logged, not stored in the audit.")


class ReasonOut(BaseModel):
    code: str
    source: Literal["policy", "model"]
    text: str
    text_zh: str = ""


class TermOptionOut(BaseModel):
    months: int
    annual_rate: float
    monthly_payment: float


class CreditDecisionOut(BaseModel):
    """The decision on a credit application."""

    decision_id: str
    created_at: str
    product: Literal["personal", "merchant", "sme"]
    applicant_id: str
    decision: Literal["approve", "refer", "decline"]
    currency: Literal["CNY"] = "CNY"
    requested_amount: float | None
    approved_amount: float
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
    account_id: str | None = Field(None, description="Revolving account for drawdowns.")


class PaymentRiskOut(BaseModel):
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
    """An accepted repayment and the line after it."""

    repayment_id: str
    created_at: str
    account_id: str
    product: Literal["merchant", "sme"]
    status: Literal["accepted"]
    amount: float
    credit_limit: float = Field(description="Limit in force (0 on a frozen line).")
    outstanding_before: float
    outstanding_after: float
    available_after: float


class RepaymentRejectedOut(BaseModel):
    """A repayment that was not booked: unknown account (404) or more than is owed (409)."""

    detail: str
    reason_code: Literal["RP_UNKNOWN_ACCOUNT", "RP_EXCEEDS_OUTSTANDING"]
    repayment_id: str
    created_at: str
    account_id: str
    status: Literal["rejected"]
    amount: float
    outstanding: float | None = None


class LineOut(BaseModel):
    """A revolving line as the ledger sees it now."""

    account_id: str
    product: Literal["merchant", "sme"]
    borrower_id: str
    status: Literal["active", "frozen"]
    credit_limit: float = Field(description="Limit in force (merchant: the published line).")
    outstanding: float = Field(description="Accepted drawdowns minus accepted repayments.")
    available: float


class DecisionLookupOut(BaseModel):
    """A stored decision: the response as sent, and what the shadow challenger did."""

    decision_id: str
    product: str
    created_at: str
    response: dict[str, Any]
    shadow: dict[str, Any] | None


class MerchantLimitOut(BaseModel):
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


class ErrorOut(BaseModel):
    detail: str | list[dict[str, Any]]

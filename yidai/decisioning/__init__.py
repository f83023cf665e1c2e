"""Decisioning: versioned policy files and the pure functions that apply them.

Shared by the scoring service (one application, microseconds), the nightly merchant limit
refresh and the dashboards' policy simulator (vectorised over a DataFrame).
"""

from yidai.decisioning.credit import (
    CreditDecision,
    TermOption,
    decide_credit,
    decide_credit_batch,
    monthly_payment,
    proposed_limit,
)
from yidai.decisioning.payment import PaymentDecision, decide_payment, decide_payment_batch
from yidai.decisioning.policy import (
    CREDIT_PRODUCTS,
    PRODUCTS,
    CreditPolicy,
    PaymentPolicy,
    Policy,
    load_credit_policy,
    load_payment_policy,
    load_policy,
    load_product_policy,
    parse_policy,
)
from yidai.decisioning.reasons import Reason, model_reasons

__all__ = [
    "CREDIT_PRODUCTS",
    "PRODUCTS",
    "CreditDecision",
    "CreditPolicy",
    "PaymentDecision",
    "PaymentPolicy",
    "Policy",
    "Reason",
    "TermOption",
    "decide_credit",
    "decide_credit_batch",
    "decide_payment",
    "decide_payment_batch",
    "load_credit_policy",
    "load_payment_policy",
    "load_policy",
    "load_product_policy",
    "model_reasons",
    "monthly_payment",
    "parse_policy",
    "proposed_limit",
]

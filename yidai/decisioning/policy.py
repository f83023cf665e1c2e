"""Policy files: one YAML file per product, validated on load and versioned.

A policy is data, not code: hard rules, score cut-offs, a limit formula and pricing by grade
for the credit products (``personal``, ``merchant``, ``sme``), and amount tiers with their
own fraud thresholds for ``payment``.  Every loaded policy carries its declared ``version``
and the hash of the file's bytes, so an audit row names exactly what decided.

The champion/challenger split is declared in the same file: ``challenger.overrides`` is a
partial policy deep-merged onto the champion (see :meth:`CreditPolicy.challenger_policy`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from yidai.core import catalogue
from yidai.core.errors import YidaiError
from yidai.core.settings import get_settings

CREDIT_PRODUCTS = catalogue.CREDIT_PRODUCTS
PRODUCTS = catalogue.PRODUCTS
Outcome = Literal["approve", "refer", "decline"]
Op = Literal["<", "<=", ">", ">=", "==", "!="]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HardRule(_Strict):
    """``feature <op> value`` triggers ``outcome`` with reason ``code``."""

    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]+$", description="Reason code when triggered.")
    description: str
    description_zh: str = ""
    feature: str
    op: Op
    value: float
    outcome: Literal["refer", "decline"] = "decline"
    on_missing: Literal["pass", "refer", "decline"] = Field(
        "pass", description="What a missing (NaN) feature value means for this rule."
    )


class Cutoffs(_Strict):
    """Score cut-offs: ``>= approve_min_score`` approves, ``< refer_min_score`` declines."""

    approve_min_score: float
    refer_min_score: float
    max_pd: float | None = Field(None, gt=0, le=1, description="Decline above this PD.")

    @model_validator(mode="after")
    def _ordered(self) -> Cutoffs:
        if self.refer_min_score > self.approve_min_score:
            raise ValueError(
                f"refer_min_score ({self.refer_min_score}) must be <= approve_min_score "
                f"({self.approve_min_score})"
            )
        return self


class _LimitBase(_Strict):
    min_limit: float = Field(ge=0, description="A smaller computed limit declines.")
    max_limit: float = Field(gt=0)
    round_to: float = Field(100.0, gt=0, description="Limits are rounded down to this step.")
    lgd: float = Field(0.6, gt=0, le=1, description="Loss given default for the EL cap.")
    max_expected_loss: float | None = Field(
        None, gt=0, description="Cap: limit * PD * LGD <= this (CNY)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> _LimitBase:
        if self.min_limit > self.max_limit:
            raise ValueError("min_limit must be <= max_limit")
        return self


class SpendMultipleLimit(_LimitBase):
    """Personal credit: a multiple of observed monthly spending, capped by expected loss."""

    kind: Literal["spend_multiple"]
    spend_feature: str = Field(description="Spending over the window (CNY).")
    window_months: float = Field(gt=0)
    multiple: float = Field(gt=0)


class TurnoverShareLimit(_LimitBase):
    """Merchant line: a share of average monthly net turnover, with a volatility haircut."""

    kind: Literal["turnover_share"]
    turnover_feature: str = Field(description="Net POS turnover over the window (CNY).")
    window_months: float = Field(gt=0)
    share: float = Field(gt=0)
    volatility_feature: str = Field(description="Coefficient of variation of turnover.")
    volatility_haircut: float = Field(ge=0, description="Haircut per unit of volatility.")
    max_haircut: float = Field(0.8, ge=0, le=1)


class CashFlowLimit(_LimitBase):
    """SME line: months of net cash flow, capped by a share of monthly inflows."""

    kind: Literal["cash_flow"]
    inflow_feature: str
    outflow_feature: str
    window_months: float = Field(gt=0)
    net_flow_months: float = Field(gt=0, description="Limit = this many months of net flow.")
    max_inflow_share: float = Field(gt=0, description="... and at most this x monthly inflow.")


LimitFormula = Annotated[
    SpendMultipleLimit | TurnoverShareLimit | CashFlowLimit, Field(discriminator="kind")
]


class Challenger(_Strict):
    """Champion/challenger set-up of one product."""

    traffic_share: float = Field(
        default=0.0, ge=0, le=1, description="Share decided by the challenger."
    )
    model_alias: str = "challenger"
    overrides: dict[str, Any] = Field(default_factory=dict)


class _PolicyBase(_Strict):
    product: str
    version: str = Field(min_length=1)
    description: str = ""
    model: str = Field(description="Registered MLflow model name.")
    feature_set: str
    blocklist: tuple[str, ...] = ()
    challenger: Challenger = Challenger()
    content_hash: str = Field("", description="sha256 of the file (set by the loader).")

    @property
    def policy_version(self) -> str:
        """``<version>+<hash8>``: what the audit records."""
        return f"{self.version}+{self.content_hash[:8]}" if self.content_hash else self.version

    def challenger_policy(self) -> Self:
        """The challenger variant: ``challenger.overrides`` deep-merged onto this policy."""
        data = self.model_dump()
        merged = _deep_merge(data, self.challenger.overrides)
        merged["version"] = f"{self.version}-challenger"
        merged["challenger"] = Challenger().model_dump()
        return type(self).model_validate(merged)


class ExposureCaps(_Strict):
    """Total exposure caps of a credit product (issue 16); None = no cap.

    ``max_borrower_exposure``: the most the bank commits to one borrower on this product
    (existing line plus a new one: a new line is cut to fit, reason ``EX_CAPPED_BY_BORROWER_CAP``,
    or declined, ``EX_BORROWER_CAP``).  ``max_product_exposure``: the most committed on all
    the product's lines together (a new line that would pass it is declined,
    ``EX_PRODUCT_CAP``).  A borrower who already has a line is referred to a review of it
    (``EX_EXISTING_LINE``), never given a second one."""

    max_borrower_exposure: float | None = Field(None, gt=0)
    max_product_exposure: float | None = Field(None, gt=0)


class CreditPolicy(_PolicyBase):
    """Policy of a credit product (personal, merchant, sme)."""

    product: Literal["personal", "merchant", "sme"]
    no_history_outcome: Literal["refer", "decline"] = Field(
        "decline", description="Outcome when the applicant has no feature row."
    )
    hard_rules: tuple[HardRule, ...] = ()
    cutoffs: Cutoffs
    limit: LimitFormula
    pricing: dict[str, float] = Field(description="Annual rate by risk grade.")
    terms_months: tuple[int, ...] = (3, 6, 12)
    reason_codes_top_k: int = Field(4, ge=1, le=10)
    exposure: ExposureCaps = Field(default_factory=lambda: ExposureCaps())

    @model_validator(mode="after")
    def _pricing(self) -> CreditPolicy:
        if not self.pricing:
            raise ValueError("pricing must name at least one grade")
        bad = {g: r for g, r in self.pricing.items() if not 0 <= r < 1}
        if bad:
            raise ValueError(f"annual rates must be in [0, 1): {bad}")
        if not self.terms_months or min(self.terms_months) < 1:
            raise ValueError("terms_months must be positive integers")
        return self

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Every feature this policy reads (checked against the snapshot on load)."""
        names = [r.feature for r in self.hard_rules]
        lim = self.limit
        if isinstance(lim, SpendMultipleLimit):
            names.append(lim.spend_feature)
        elif isinstance(lim, TurnoverShareLimit):
            names += [lim.turnover_feature, lim.volatility_feature]
        else:
            names += [lim.inflow_feature, lim.outflow_feature]
        return tuple(dict.fromkeys(names))


class AmountTier(_Strict):
    """Payments up to ``max_amount`` (None = no upper bound) use these fraud thresholds."""

    name: str
    max_amount: float | None = Field(None, gt=0)
    step_up_at: float = Field(ge=0, le=1, description="Step-up when fraud prob >= this.")
    decline_at: float = Field(ge=0, le=1, description="Decline when fraud prob >= this.")

    @model_validator(mode="after")
    def _ordered(self) -> AmountTier:
        if self.step_up_at > self.decline_at:
            raise ValueError(f"tier {self.name}: step_up_at must be <= decline_at")
        return self


class PaymentPolicy(_PolicyBase):
    """Payment risk policy: amount tiers, each with its own thresholds."""

    product: Literal["payment"]
    tiers: tuple[AmountTier, ...]
    new_device_step_up_min_amount: float | None = Field(
        None, description="Step up any payment from an unseen device at or above this amount."
    )
    reason_codes_top_k: int = Field(3, ge=1, le=10)

    @model_validator(mode="after")
    def _tiers(self) -> PaymentPolicy:
        if not self.tiers:
            raise ValueError("at least one amount tier is required")
        bounds = [t.max_amount for t in self.tiers]
        if bounds[-1] is not None or any(b is None for b in bounds[:-1]):
            raise ValueError("only the last tier may (and must) have max_amount: null")
        finite = [b for b in bounds if b is not None]
        if finite != sorted(finite) or len(set(finite)) != len(finite):
            raise ValueError("tiers must be sorted by strictly increasing max_amount")
        return self


Policy = CreditPolicy | PaymentPolicy


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_policy(data: dict[str, Any], *, content_hash: str = "", source: str = "") -> Policy:
    """Validate a policy mapping; errors name the source and every bad field."""
    if not isinstance(data, dict):
        raise YidaiError(f"policy {source or '<data>'}: expected a mapping at the top level")
    data = {**data, "content_hash": content_hash}
    cls: type[CreditPolicy] | type[PaymentPolicy] = (
        PaymentPolicy if data.get("product") == "payment" else CreditPolicy
    )
    try:
        policy = cls.model_validate(data)
        if policy.challenger.overrides:
            policy.challenger_policy()  # validate the challenger variant too
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise YidaiError(f"invalid policy {source or '<data>'}: {problems}") from exc
    return policy


def load_policy(path: Path | str) -> Policy:
    """Read and validate one policy file (YAML); the version includes the file's hash."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise YidaiError(f"cannot read policy {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise YidaiError(f"policy {path} is not valid YAML: {exc}") from exc
    return parse_policy(data, content_hash=hashlib.sha256(raw).hexdigest(), source=str(path))


def policy_path(product: str, policy_dir: Path | None = None) -> Path:
    """``<policy_dir>/<product>.yaml`` (default folder: ``settings.policies``)."""
    if product not in PRODUCTS:
        raise YidaiError(f"unknown product {product!r}; expected one of {', '.join(PRODUCTS)}")
    if policy_dir is None:
        policy_dir = get_settings().policies
    return policy_dir / f"{product}.yaml"


def load_product_policy(product: str, policy_dir: Path | None = None) -> Policy:
    """Load the policy of one product from the policy folder."""
    policy = load_policy(policy_path(product, policy_dir))
    if policy.product != product:
        raise YidaiError(
            f"policy file {policy_path(product, policy_dir)} declares product "
            f"{policy.product!r}, expected {product!r}"
        )
    return policy


def load_credit_policy(product: str, policy_dir: Path | None = None) -> CreditPolicy:
    """Load a credit product's policy (personal, merchant, sme)."""
    policy = load_product_policy(product, policy_dir)
    if not isinstance(policy, CreditPolicy):
        raise YidaiError(f"{product} is not a credit product")
    return policy


def load_payment_policy(policy_dir: Path | None = None) -> PaymentPolicy:
    """Load the payment risk policy."""
    policy = load_product_policy("payment", policy_dir)
    assert isinstance(policy, PaymentPolicy)
    return policy

"""Typed Python client for storefront modules (mall checkout, payment page, direct bank).

    with YidaiClient("http://127.0.0.1:8000", api_key) as yidai:
        offer = yidai.personal_credit("C123", requested_amount=2599.0)
        if offer.decision == "approve": ...

Every POST (decisions, drawdowns, repayments) carries an ``Idempotency-Key`` (generated if
not given) and is retried once on a connection error with the same key, so a retry never
decides or books twice.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from scoring_service.schemas import (
    CreditDecisionOut,
    DecisionLookupOut,
    DrawdownOut,
    LineOut,
    MerchantLimitOut,
    PaymentRiskOut,
    RepaymentOut,
)

T = TypeVar("T", bound=BaseModel)


class YidaiAPIError(Exception):
    """The service answered with an error status; branch on ``reason_code`` (ErrorOut)."""

    def __init__(self, status_code: int, detail: Any, reason_code: str | None = None) -> None:
        super().__init__(f"HTTP {status_code} {reason_code or ''}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.reason_code = reason_code


class YidaiClient:
    """Synchronous client; reuse one instance (keep-alive connections)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 2.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"X-API-Key": api_key},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> YidaiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ plumbing
    def _call(
        self,
        method: str,
        path: str,
        out: type[T],
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> T:
        headers = {}
        if method == "POST":
            headers["Idempotency-Key"] = idempotency_key or uuid.uuid4().hex
        payload = None if body is None else {k: v for k, v in body.items() if v is not None}
        for attempt in (1, 2):
            try:
                response = self._http.request(method, path, json=payload, headers=headers)
                break
            except httpx.TransportError:
                if attempt == 2:
                    raise
        if response.status_code >= 400:
            try:
                error = response.json()
            except ValueError:
                error = None
            if not isinstance(error, dict):
                error = {"detail": response.text}
            raise YidaiAPIError(response.status_code, error.get("detail"), error.get("reason_code"))
        return out.model_validate_json(response.content)

    # ------------------------------------------------------------------ endpoints
    def personal_credit(
        self,
        customer_id: str,
        requested_amount: float | None = None,
        *,
        seller_id: str | None = None,
        order_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> CreditDecisionOut:
        """Instant consumer credit for a customer (e.g. to finance a mall order)."""
        body = {
            "customer_id": customer_id,
            "requested_amount": requested_amount,
            "seller_id": seller_id,
            "order_id": order_id,
        }
        return self._call(
            "POST", "/v1/decisions/personal-credit", CreditDecisionOut, body, idempotency_key
        )

    def merchant_credit(
        self,
        merchant_id: str,
        requested_amount: float | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> CreditDecisionOut:
        """A small merchant's revolving line on POS turnover."""
        body = {"merchant_id": merchant_id, "requested_amount": requested_amount}
        return self._call(
            "POST", "/v1/decisions/merchant-credit", CreditDecisionOut, body, idempotency_key
        )

    def sme_credit(
        self,
        sme_id: str,
        requested_amount: float | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> CreditDecisionOut:
        """An SME revolving online loan; an approval returns the ``account_id`` to draw on."""
        body = {"sme_id": sme_id, "requested_amount": requested_amount}
        return self._call(
            "POST", "/v1/decisions/sme-credit", CreditDecisionOut, body, idempotency_key
        )

    def drawdown(
        self,
        account_id: str,
        amount: float,
        term_months: int,
        *,
        idempotency_key: str | None = None,
    ) -> DrawdownOut:
        """Draw on a revolving line (``status`` says accepted or rejected, with reasons)."""
        body = {"account_id": account_id, "amount": amount, "term_months": term_months}
        return self._call("POST", "/v1/drawdowns", DrawdownOut, body, idempotency_key)

    def repayment(
        self, account_id: str, amount: float, *, idempotency_key: str | None = None
    ) -> RepaymentOut:
        """Repay on a revolving line; returns the new outstanding and available amounts.

        A refusal (more than the outstanding balance, an unknown account) is an answer too:
        ``status == "rejected"`` with its ``reason_codes``; nothing is booked.
        """
        body = {"account_id": account_id, "amount": amount}
        return self._call("POST", "/v1/repayments", RepaymentOut, body, idempotency_key)

    def line(self, account_id: str) -> LineOut:
        """A revolving line now: limit in force, outstanding balance, available amount."""
        return self._call("GET", f"/v1/lines/{account_id}", LineOut)

    def payment_risk(
        self,
        payer_id: str,
        amount: float,
        channel: str,
        *,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> PaymentRiskOut:
        """Allow / step_up / decline a payment (fields: see ``PaymentRiskIn``)."""
        body = {"payer_id": payer_id, "amount": amount, "channel": channel, **fields}
        return self._call("POST", "/v1/payments/risk", PaymentRiskOut, body, idempotency_key)

    def decision(self, decision_id: str) -> DecisionLookupOut:
        """A stored decision and its shadow challenger outcome."""
        return self._call("GET", f"/v1/decisions/{decision_id}", DecisionLookupOut)

    def merchant_limit(self, merchant_id: str) -> MerchantLimitOut:
        """The merchant's line from the last nightly refresh."""
        return self._call("GET", f"/v1/merchants/{merchant_id}/limit", MerchantLimitOut)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, report) from ``/readyz``."""
        response = self._http.get("/readyz")
        report: dict[str, Any] = response.json()
        return response.status_code == 200, report

    def wait_until_loaded(self, timeout: float = 120.0) -> tuple[bool, dict[str, Any]]:
        """(ready, report) once the service has tried to load everything once.

        A product that cannot be served (no model, no snapshot) is reported, not waited for:
        the wait ends when the report stops saying ``loading``, however fast the machine.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                ready, report = self.readiness()
                if not report.get("loading", False):
                    return ready, report
            except (httpx.TransportError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the service did not finish loading within {timeout:.0f} s")
            time.sleep(0.25)


def readiness_lines(report: dict[str, Any]) -> list[str]:
    """A readiness report as lines: each product (and the merchant limits), why not ready."""
    lines = []
    for product, state in sorted(report.get("products", {}).items()):
        problems = "; ".join(f"{k}: {v}" for k, v in (state.get("problems") or {}).items())
        lines.append(f"  {product:<9} {'ready' if state.get('ready') else 'NOT READY'}  {problems}")
    limits = report.get("merchant_limits") or {}
    if limits:
        state = "ready" if limits.get("ready") else "NOT READY"
        detail = limits.get("version") or limits.get("problem") or ""
        lines.append(f"  {'limits':<9} {state}  {detail}")
    return lines

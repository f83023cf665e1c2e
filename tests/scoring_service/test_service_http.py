"""Integration: uvicorn on a free loopback port, real MLflow registry and snapshots,
published merchant limits, and every call through the typed client."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest

from scoring_service.client import YidaiAPIError, YidaiClient
from tests.support.sandbox import Sandbox
from yidai.core.settings import Settings

from .conftest import loosen_policy, publish_limits, wait_until


def test_storefront_calls_through_the_client(
    sandbox: Sandbox, service_settings: Settings, keys: Any, server: str
) -> None:
    merchant = sandbox.entities["merchant"][0]
    publish_limits(
        service_settings.serving,
        [(merchant, "A1", 50_000.0, "active"), ("M-frozen", "A2", 20_000.0, "frozen")],
    )
    loosen_policy(service_settings, "merchant")
    path = service_settings.policies / "merchant.yaml"
    with YidaiClient(server, keys.all) as yidai:
        # the server may have loaded merchant.yaml before the edit: wait for the edited one
        edited = hashlib.sha256(path.read_bytes()).hexdigest()[:8]

        def edited_policy_live() -> bool:
            ready, report = yidai.readiness()
            version = report["products"]["merchant"]["policy_version"] or ""
            limits = report["merchant_limits"]["version"]  # and the limits published above
            return ready and version.endswith(edited) and limits == "v-test"

        wait_until(edited_policy_live, what="ready over HTTP with the edited merchant policy")
        customer = sandbox.entities["personal"][5]
        offer = yidai.personal_credit(customer, 999.0, seller_id="S-1", idempotency_key="o-1")
        retry = yidai.personal_credit(customer, 999.0, seller_id="S-1", idempotency_key="o-1")
        assert retry == offer
        assert yidai.decision(offer.decision_id).response["decision_id"] == offer.decision_id

        line = yidai.merchant_credit(merchant, 30_000.0)
        # the merchant has a line (the nightly one): a review of it, never a second line
        assert line.decision in ("refer", "decline") and line.account_id == "A1"
        assert line.reason_codes[0].code == "EX_EXISTING_LINE"
        # the nightly published line (50k, active, 10k drawn in the book) governs drawdowns
        drawn = yidai.drawdown(line.account_id, 35_000.0, 3)
        assert drawn.status == "accepted" and drawn.outstanding_before == 10_000.0, drawn
        rejected = yidai.drawdown(line.account_id, 6_000.0, 3)
        assert rejected.status == "rejected" and rejected.credit_limit == 50_000.0
        published = yidai.merchant_limit(merchant)
        assert (published.credit_line, published.limits_version) == (50_000.0, "v-test")

        risk = yidai.payment_risk(
            sandbox.entities["payment"][1], 120.0, "app",
            ts=dt.datetime(2026, 7, 1, 10, 0).isoformat(), device_id="D-9",
        )  # fmt: skip
        assert risk.action in {"allow", "step_up", "decline"} and risk.amount_tier == "micro"
        with pytest.raises(YidaiAPIError) as info:
            yidai.merchant_limit("M-none")
        assert info.value.status_code == 404
    with YidaiClient(server, keys.personal_only) as narrow, pytest.raises(YidaiAPIError) as info:
        narrow.payment_risk("P1", 10.0, "app")
    assert info.value.status_code == 403


def test_the_example_checkout_integration_over_http(
    sandbox: Sandbox, keys: Any, server: str
) -> None:
    """examples/mall_checkout.py as a storefront runs it: one process per checkout, back to
    back (each order its own id, so its own idempotency keys); a retry of one order id
    replays the same answer."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "mall_checkout.py"
    env = {**os.environ, "YIDAI_API_KEY": keys.all}

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(script), "--url", server, *args],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    # the fixture waits for uvicorn only; a storefront starts checkouts once the models are in
    with YidaiClient(server, keys.all) as yidai:
        yidai.wait_until_loaded()
    first, second = (
        run("--customer", c, "--amount", "899") for c in sandbox.entities["personal"][:2]
    )
    assert first.split(":")[0] != second.split(":")[0]  # distinct order ids
    customer = sandbox.entities["personal"][2]
    once = run("--customer", customer, "--amount", "1299", "--order-id", "O-RETRY-1")
    assert once.startswith("O-RETRY-1: ")
    assert run("--customer", customer, "--amount", "1299", "--order-id", "O-RETRY-1") == once

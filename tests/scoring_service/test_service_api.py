"""The scoring API end to end in-process: real snapshots, MLflow models, policies, audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from scoring_service.sandbox import Sandbox
from yidai.settings import Settings

from .conftest import loosen_policy


def _h(key: str, idem: str | None = None) -> dict[str, str]:
    headers = {"X-API-Key": key}
    if idem:
        headers["Idempotency-Key"] = idem
    return headers


def test_personal_credit_decisions_carry_everything(
    sandbox: Sandbox, service_settings: Settings, keys: Any, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(service_settings)
    outcomes: dict[str, dict] = {}
    for customer in [*sandbox.entities["personal"][:60], "C-unknown-1"]:
        r = client.post(
            "/v1/decisions/personal-credit",
            json={"customer_id": customer, "requested_amount": 1500.0},
            headers=_h(keys.all),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        outcomes.setdefault(body["decision"], body)
        assert body["model_version"].startswith("personal_pd:")
        assert body["policy_version"].startswith("2026.12.1")
        assert 0 <= body["pd"] <= 1 and body["grade"] in "ABCDEFG"
        if body["decision"] == "approve":
            assert 0 < body["approved_amount"] <= min(1500.0, body["limit"])
            assert body["annual_rate"] > 0 and len(body["term_options"]) == 4
        else:
            assert body["reason_codes"], body
            assert body["limit"] == 0 and body["term_options"] == []
    unknown = client.post(
        "/v1/decisions/personal-credit",
        json={"customer_id": "C-unknown-2"},
        headers=_h(keys.all),
    ).json()
    assert unknown["decision"] == "decline"
    assert unknown["reason_codes"][0]["code"] == "HR_NO_HISTORY"
    assert {"approve", "decline"} <= set(outcomes)

    # the stored decision comes back with the shadow challenger's outcome
    stored = client.get(f"/v1/decisions/{unknown['decision_id']}", headers=_h(keys.all)).json()
    assert stored["response"] == unknown
    assert stored["shadow"]["arm"] in {"champion", "challenger"}
    assert stored["shadow"]["model_version"].startswith("personal_pd:")
    assert stored["shadow"]["model_version"] != unknown["model_version"]
    assert client.get("/v1/decisions/nope", headers=_h(keys.all)).status_code == 404


def test_idempotency_key_returns_the_original_decision(
    sandbox: Sandbox, service_settings: Settings, keys: Any, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(service_settings)
    body = {"customer_id": sandbox.entities["personal"][3], "requested_amount": 800.0}
    first = client.post("/v1/decisions/personal-credit", json=body, headers=_h(keys.all, "k-1"))
    again = client.post("/v1/decisions/personal-credit", json=body, headers=_h(keys.all, "k-1"))
    assert first.status_code == again.status_code == 200
    assert first.content == again.content  # the stored bytes, replayed as they were sent
    other = client.post(
        "/v1/decisions/personal-credit",
        json={**body, "requested_amount": 900.0},
        headers=_h(keys.all, "k-1"),
    )
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]
    fresh = client.post("/v1/decisions/personal-credit", json=body, headers=_h(keys.all, "k-2"))
    assert fresh.json()["decision_id"] != first.json()["decision_id"]
    from scoring_service.audit import AuditStore

    audit = AuditStore(service_settings.audit_url)
    assert audit.count_decisions() == 2  # the replay was not decided twice


def test_auth_scopes_and_validation(
    sandbox: Sandbox, service_settings: Settings, keys: Any, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(service_settings)
    url = "/v1/decisions/personal-credit"
    body = {"customer_id": sandbox.entities["personal"][0]}
    assert client.post(url, json=body).status_code == 401
    assert client.post(url, json=body, headers=_h("yd_000000000000_" + "x" * 43)).status_code == 401
    assert client.post(url, json=body, headers=_h(keys.personal_only)).status_code == 200
    denied = client.post(
        "/v1/decisions/sme-credit", json={"sme_id": "S1"}, headers=_h(keys.personal_only)
    )
    assert denied.status_code == 403 and "sme-credit" in denied.json()["detail"]
    bad = client.post(
        url, json={"customer_id": "C 1; drop", "requested_amount": -5}, headers=_h(keys.all)
    )
    assert bad.status_code == 422
    detail = bad.json()["detail"]
    assert "body.customer_id" in detail and "body.requested_amount" in detail
    assert "drop" not in detail  # inputs are not echoed back
    extra = client.post(url, json={**body, "card_number": "6222"}, headers=_h(keys.all))
    assert extra.status_code == 422 and "card_number" in extra.json()["detail"]


def test_revolving_lines_and_payments(
    sandbox: Sandbox, service_settings: Settings, keys: Any, make_client: Callable[..., TestClient]
) -> None:
    loosen_policy(service_settings, "sme")
    client = make_client(service_settings)
    approved = None
    for sme in sandbox.entities["sme"]:
        r = client.post("/v1/decisions/sme-credit", json={"sme_id": sme}, headers=_h(keys.all))
        assert r.status_code == 200, r.text
        if r.json()["decision"] == "approve":
            approved = r.json()
            break
    assert approved is not None, "no SME approved in the sandbox"
    account, limit = approved["account_id"], approved["limit"]
    first = client.post(
        "/v1/drawdowns",
        json={"account_id": account, "amount": limit * 0.6, "term_months": 6},
        headers=_h(keys.all),
    ).json()
    assert first["status"] == "accepted"
    assert first["available_after"] == limit - limit * 0.6
    second = client.post(
        "/v1/drawdowns",
        json={"account_id": account, "amount": limit * 0.6, "term_months": 6},
        headers=_h(keys.all),
    ).json()
    assert second["status"] == "rejected"
    assert second["reason_codes"][0]["code"] == "DD_INSUFFICIENT_LIMIT"
    unknown = client.post(
        "/v1/drawdowns",
        json={"account_id": "nope", "amount": 1, "term_months": 1},
        headers=_h(keys.all),
    ).json()
    assert unknown["status"] == "rejected"

    merchant = client.post(
        "/v1/decisions/merchant-credit",
        json={"merchant_id": sandbox.entities["merchant"][0], "requested_amount": 20000},
        headers=_h(keys.all),
    )
    assert merchant.status_code == 200 and merchant.json()["product"] == "merchant"

    payer = sandbox.entities["payment"][0]
    actions = {}
    for amount in (50.0, 1500.0, 80_000.0):
        r = client.post(
            "/v1/payments/risk",
            json={"payer_id": payer, "amount": amount, "channel": "app", "device_id": "D1",
                  "counterpart_id": "P9", "card_token": "tok-secret"},
            headers=_h(keys.all),
        )  # fmt: skip
        assert r.status_code == 200, r.text
        actions[amount] = r.json()
    assert [actions[a]["amount_tier"] for a in (50.0, 1500.0, 80_000.0)] == [
        "micro", "small", "large",
    ]  # fmt: skip
    stored = client.get(
        f"/v1/decisions/{actions[50.0]['decision_id']}", headers=_h(keys.all)
    ).json()
    assert stored["product"] == "payment"

    metrics = client.get("/metrics", headers=_h(keys.all)).text
    assert 'yidai_decisions_total{arm="champion",outcome="approve",product="sme"}' in metrics
    assert "yidai_http_request_seconds_bucket" in metrics
    assert client.get("/v1/merchants/M1/limit", headers=_h(keys.all)).status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/decisions/personal-credit", "/v1/drawdowns", "/v1/payments/risk"} <= set(paths)

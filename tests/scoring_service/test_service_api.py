"""The scoring API end to end in-process: real snapshots, MLflow models, policies, audit."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.support.sandbox import Sandbox
from yidai.core.settings import Settings

from .conftest import loosen_policy, wait_until


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
        assert body["policy_version"].startswith("2026.12.2")
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
    from yidai.audit import AuditStore

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


def _error(response: Any, status: int, reason_code: str) -> dict[str, Any]:
    """The body of an error answer: the documented ErrorOut shape, this status and code."""
    from scoring_service.schemas import ErrorOut

    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    ErrorOut.model_validate(body)
    assert body["reason_code"] == reason_code, body
    return body


def test_payment_times_outside_the_sane_range_are_422_not_500(
    sandbox: Sandbox, service_settings: Settings, keys: Any, make_client: Callable[..., TestClient]
) -> None:
    """Year 1 with +01:00 or 9999 with -01:00 overflowed the UTC conversion (HTTP 500)."""
    client = make_client(service_settings)
    payment = {"payer_id": sandbox.entities["payment"][0], "amount": 88.0, "channel": "app"}
    for ts in (
        "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1999-12-31T23:59:59",
        "2100-01-01T00:00:00Z", 1_782_900_000, True,
    ):  # fmt: skip
        r = client.post("/v1/payments/risk", json={**payment, "ts": ts}, headers=_h(keys.all))
        body = _error(r, 422, "INVALID_REQUEST")
        assert [e for e in body["errors"] if e.startswith("body.ts")], body  # names the field
    for ts in ("2000-01-01T00:00:00+01:00", "2099-12-31T23:59:59-01:00", "2026-07-01T10:00"):
        r = client.post("/v1/payments/risk", json={**payment, "ts": ts}, headers=_h(keys.all))
        assert r.status_code == 200, r.text


def test_every_error_has_one_shape_with_a_reason_code(
    sandbox: Sandbox, service_settings: Settings, keys: Any, make_client: Callable[..., TestClient]
) -> None:
    loosen_policy(service_settings, "sme")
    client = make_client(service_settings)
    url = "/v1/decisions/personal-credit"
    body = {"customer_id": sandbox.entities["personal"][0]}
    _error(client.post(url, json=body), 401, "UNAUTHENTICATED")
    _error(client.post(url, json=body, headers=_h("yd_0_" + "x" * 40)), 401, "UNAUTHENTICATED")
    denied = client.post(
        "/v1/decisions/sme-credit", json={"sme_id": "S1"}, headers=_h(keys.personal_only)
    )
    _error(denied, 403, "FORBIDDEN")
    _error(client.get("/v1/decisions/nope", headers=_h(keys.all)), 404, "UNKNOWN_DECISION")
    _error(client.get("/v1/lines/nope", headers=_h(keys.all)), 404, "UNKNOWN_ACCOUNT")
    limits = client.get("/v1/merchants/M1/limit", headers=_h(keys.all))
    _error(limits, 404, "NO_PUBLISHED_LIMIT")  # the test's limits version has none
    bad = _error(
        client.post(url, json={**body, "x": 1}, headers=_h(keys.all)), 422, "INVALID_REQUEST"
    )
    assert bad["errors"] == ["body.x: Extra inputs are not permitted"]
    malformed = client.post(
        url,
        content=b'{"customer_id": "\xff',
        headers={**_h(keys.all), "Content-Type": "application/json"},
    )
    assert malformed.status_code in (400, 422) and malformed.json()["reason_code"] in {
        "MALFORMED_BODY", "INVALID_REQUEST",
    }  # fmt: skip
    long_key = client.post(url, json=body, headers=_h(keys.all, "k" * 129))
    _error(long_key, 422, "INVALID_REQUEST")

    # /v1/repayments: an overpayment is an answer (200, rejected); a reused key is a 409
    approved = None
    for sme in sandbox.entities["sme"]:
        r = client.post("/v1/decisions/sme-credit", json={"sme_id": sme}, headers=_h(keys.all))
        if r.json()["decision"] == "approve":
            approved = r.json()
            break
    assert approved is not None, "no SME approved in the sandbox"
    repay = {"account_id": approved["account_id"], "amount": 10.0}
    over = client.post("/v1/repayments", json=repay, headers=_h(keys.all, "r-1"))
    assert over.status_code == 200 and over.json()["status"] == "rejected"
    assert over.json()["reason_code"] == "RP_EXCEEDS_OUTSTANDING"
    assert over.json()["outstanding_before"] == 0.0
    reused = client.post(
        "/v1/repayments", json={**repay, "amount": 20.0}, headers=_h(keys.all, "r-1")
    )
    _error(reused, 409, "IDEMPOTENCY_KEY_REUSED")
    unknown = client.post(
        "/v1/repayments", json={**repay, "account_id": "nope"}, headers=_h(keys.all)
    )
    assert unknown.status_code == 200 and unknown.json()["reason_code"] == "RP_UNKNOWN_ACCOUNT"


def test_amounts_and_flags_are_what_the_document_says(
    sandbox: Sandbox, service_settings: Settings, keys: Any, make_client: Callable[..., TestClient]
) -> None:
    """Whole fen (5e-324 was booked as 0.00), JSON numbers and booleans (no lax coercion)."""
    client = make_client(service_settings)
    for amount in (5e-324, 0.001, 10.005, "10.00", True):
        for path in ("/v1/drawdowns", "/v1/repayments"):
            r = client.post(
                path, json={"account_id": "A1", "amount": amount, "term_months": 3}
                if path == "/v1/drawdowns" else {"account_id": "A1", "amount": amount},
                headers=_h(keys.all),
            )  # fmt: skip
            assert [e for e in _error(r, 422, "INVALID_REQUEST")["errors"] if "amount" in e]
    payment = {"payer_id": "P1", "amount": 12.5, "channel": "app"}
    for change in ({"new_device": 0}, {"new_device": "true"}, {"amount": "12.5"}):
        r = client.post("/v1/payments/risk", json={**payment, **change}, headers=_h(keys.all))
        _error(r, 422, "INVALID_REQUEST")
    drawn = client.post(
        "/v1/drawdowns", json={"account_id": "A1", "amount": 0.07, "term_months": 6.0},
        headers=_h(keys.all),
    )  # fmt: skip
    assert drawn.status_code == 200 and drawn.json()["amount"] == 0.07  # 6.0 is an integer


def test_the_document_describes_the_service() -> None:
    """ErrorOut on every error response, text/plain metrics, readiness bodies, examples."""
    from scoring_service.main import create_app

    doc = create_app().openapi()
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["DrawdownIn"]["properties"]["amount"]["multipleOf"] == 0.01
    assert schemas["RepaymentIn"]["properties"]["amount"]["multipleOf"] == 0.01
    for name, schema in schemas.items():
        assert schema.get("examples"), f"{name} has no example"
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                if int(status) < 400 or path == "/readyz":  # its 503 is the readiness report
                    continue
                refs = json.dumps(response["content"]["application/json"]["schema"])
                assert "ErrorOut" in refs, (method, path, status)
            if path.startswith("/v1/"):
                assert {"401", "403", "422"} <= set(op["responses"]), (method, path)
    assert "409" in doc["paths"]["/v1/payments/risk"]["post"]["responses"]
    assert "503" in doc["paths"]["/v1/decisions/sme-credit"]["post"]["responses"]
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    ready = doc["paths"]["/readyz"]["get"]["responses"]
    assert ready["200"]["content"]["application/json"]["schema"]["$ref"].endswith("ReadinessOut")
    assert ready["503"]["content"]["application/json"]["schema"]["$ref"].endswith("ReadinessOut")


def test_the_client_raises_with_the_reason_code(keys: Any, server: str) -> None:
    """Over HTTP (uvicorn): the typed client's error carries the body's reason_code."""
    import pytest

    from scoring_service.client import YidaiAPIError, YidaiClient

    with YidaiClient(server, keys.all) as yidai:
        wait_until(lambda: yidai.readiness()[0], what="ready over HTTP")
        with pytest.raises(YidaiAPIError) as missing:
            yidai.decision("nope")
        assert (missing.value.status_code, missing.value.reason_code) == (404, "UNKNOWN_DECISION")
        with pytest.raises(YidaiAPIError) as reused:
            yidai.payment_risk("P1", 10.0, "app", idempotency_key="k-1")
            yidai.payment_risk("P1", 11.0, "app", idempotency_key="k-1")
        assert reused.value.reason_code == "IDEMPOTENCY_KEY_REUSED"
        assert reused.value.status_code == 409


def test_not_ready_is_an_error_body_and_readiness_is_as_documented(
    service_settings: Settings, keys: Any, make_client: Callable[..., TestClient]
) -> None:
    from scoring_service.schemas import ReadinessOut

    path = service_settings.policies / "merchant.yaml"
    path.write_text(path.read_text().replace("model: merchant_pd", "model: nonexistent_pd"))
    client = make_client(service_settings, wait_ready=False)
    client.headers["X-API-Key"] = keys.all  # the detailed report needs the ops scope
    wait_until(
        lambda: client.get("/readyz").json()["products"]["merchant"]["problems"] != {},
        what="problem report",
    )
    report = client.get("/readyz")
    assert report.status_code == 503
    products = ReadinessOut.model_validate(report.json()).products
    assert products is not None and not products["merchant"].ready
    bare = client.get("/readyz", headers={"X-API-Key": ""})
    assert bare.status_code == 503 and ReadinessOut.model_validate(bare.json()).products is None
    refused = client.post(
        "/v1/decisions/merchant-credit", json={"merchant_id": "M1"}, headers=_h(keys.all)
    )
    assert "nonexistent_pd" in _error(refused, 503, "NOT_READY")["detail"]
    assert refused.headers["retry-after"] == "5"
    assert client.get("/healthz").json() == {"status": "ok"}

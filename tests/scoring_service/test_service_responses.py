"""Every route's real answers match the response model it declares (the document's schema).

The decision and ledger routes send JSON the core built once (``PrebuiltJSONResponse``), which
FastAPI does not check against ``response_model``: this test does, for every route that has
one, with a valid request on the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from httpx import Response
from pydantic import BaseModel

from tests.support.sandbox import Sandbox
from yidai.core.settings import Settings

from .conftest import loosen_policy, publish_limits


def _approved_sme(client: TestClient, smes: list[str], auth: dict[str, str]) -> dict[str, Any]:
    for sme in smes:
        answer = client.post("/v1/decisions/sme-credit", json={"sme_id": sme}, headers=auth)
        assert answer.status_code == 200, answer.text
        if answer.json()["decision"] == "approve":
            return dict(answer.json())
    raise AssertionError("no SME approved in the sandbox")


def test_every_route_answers_its_declared_response_model(
    sandbox: Sandbox, service_settings: Settings, keys: Any, make_client: Callable[..., TestClient]
) -> None:
    loosen_policy(service_settings, "sme")
    merchant = sandbox.entities["merchant"][0]
    publish_limits(service_settings.serving, [(merchant, "LA-0001", 50_000.0, "active")])
    client = make_client(service_settings)
    auth = {"X-API-Key": keys.all}
    sme = _approved_sme(client, sandbox.entities["sme"], auth)
    account = sme["account_id"]
    calls: dict[tuple[str, str], Callable[[], Response]] = {
        ("POST", "/v1/decisions/personal-credit"): lambda: client.post(
            "/v1/decisions/personal-credit",
            json={"customer_id": sandbox.entities["personal"][0], "requested_amount": 800.0},
            headers=auth,
        ),
        ("POST", "/v1/decisions/merchant-credit"): lambda: client.post(
            "/v1/decisions/merchant-credit",
            json={"merchant_id": merchant, "requested_amount": 20_000.0},
            headers=auth,
        ),
        ("POST", "/v1/decisions/sme-credit"): lambda: client.post(
            "/v1/decisions/sme-credit", json={"sme_id": sandbox.entities["sme"][0]}, headers=auth
        ),
        ("GET", "/v1/decisions/{decision_id}"): lambda: client.get(
            f"/v1/decisions/{sme['decision_id']}", headers=auth
        ),
        ("POST", "/v1/payments/risk"): lambda: client.post(
            "/v1/payments/risk",
            json={"payer_id": sandbox.entities["payment"][0], "amount": 88.0, "channel": "app"},
            headers=auth,
        ),
        ("POST", "/v1/drawdowns"): lambda: client.post(
            "/v1/drawdowns",
            json={"account_id": account, "amount": 10.0, "term_months": 3},
            headers=auth,
        ),
        ("POST", "/v1/repayments"): lambda: client.post(
            "/v1/repayments", json={"account_id": account, "amount": 5.0}, headers=auth
        ),
        ("GET", "/v1/lines/{account_id}"): lambda: client.get(f"/v1/lines/{account}", headers=auth),
        ("GET", "/v1/merchants/{merchant_id}/limit"): lambda: client.get(
            f"/v1/merchants/{merchant}/limit", headers=auth
        ),
        ("GET", "/healthz"): lambda: client.get("/healthz"),
        ("GET", "/readyz"): lambda: client.get("/readyz", headers=auth),
    }
    app: Any = client.app
    declared: dict[tuple[str, str], type[BaseModel]] = {
        (method, route.path): route.response_model
        for route in app.routes
        if isinstance(route, APIRoute) and route.response_model is not None
        for method in route.methods
    }
    assert set(declared) == set(calls)  # a new route gets a call here
    for (method, path), model in declared.items():
        response = calls[method, path]()
        assert response.status_code == 200, (method, path, response.text)
        assert response.headers["content-type"].startswith("application/json"), (method, path)
        model.model_validate_json(response.content)

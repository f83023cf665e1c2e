"""The direct JSON path of the body routes (decisions, payments, drawdowns, repayments)
answers exactly as FastAPI's generic one."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from scoring_service.api.deps import ScopeCheck
from scoring_service.api.fast_json import FastJSONRoute, direct_call
from tests.support.sandbox import Sandbox
from yidai.core.settings import Settings

DIRECT = "application/json"  # the direct path
GENERIC = "application/json; charset=utf-8"  # same meaning, FastAPI's own handler
URL = "/v1/decisions/personal-credit"


def _post(
    client: TestClient, body: bytes, content_type: str, url: str = URL, **headers: str
) -> Any:
    return client.post(url, content=body, headers={"Content-Type": content_type, **headers})


def test_every_body_route_takes_the_direct_path() -> None:
    from scoring_service.main import create_app

    routes = [r for r in create_app().routes if isinstance(r, FastJSONRoute)]
    direct = {r.path for r in routes if direct_call(r.endpoint) is not None}
    assert direct == {
        "/v1/decisions/personal-credit",
        "/v1/decisions/merchant-credit",
        "/v1/decisions/sme-credit",
        "/v1/payments/risk",
        "/v1/drawdowns",
        "/v1/repayments",
    }


def test_direct_and_generic_paths_give_the_same_answers(
    sandbox: Sandbox, service_settings: Settings, keys: Any, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(service_settings)
    customer = sandbox.entities["personal"][3]
    good = json.dumps({"customer_id": customer, "requested_amount": 800.0}).encode()
    bad_fields = json.dumps({"customer_id": "C 1", "requested_amount": -1}).encode()
    extra = json.dumps({"customer_id": customer, "card_number": "6222"}).encode()
    cases: list[tuple[bytes, dict[str, str], int]] = [
        (good, {}, 401),  # no key
        (good, {"X-API-Key": "yd_000000000000_" + "x" * 43}, 401),  # unknown key
        (b'{"customer_id": ', {}, 401),  # the key is checked before the body is read
        (b'{"customer_id": ', {"X-API-Key": keys.all}, 422),  # malformed JSON
        (bad_fields, {}, 401),  # the key is checked before the fields
        (bad_fields, {"X-API-Key": keys.all}, 422),
        (extra, {"X-API-Key": keys.all}, 422),
        (b"", {"X-API-Key": keys.all}, 422),
        (good, {"X-API-Key": keys.all, "Idempotency-Key": "k" * 129}, 422),
    ]
    for body, headers, status in cases:
        direct = _post(client, body, DIRECT, **headers)
        generic = _post(client, body, GENERIC, **headers)
        assert direct.status_code == generic.status_code == status, (body, direct.text)
        assert direct.json() == generic.json()
        assert direct.headers.get("www-authenticate") == generic.headers.get("www-authenticate")

    answers = [
        _post(client, good, content_type, **{"X-API-Key": keys.all}).json()
        for content_type in (DIRECT, GENERIC)
    ]
    for answer in answers:
        answer.pop("decision_id"), answer.pop("created_at")
    assert answers[0] == answers[1] and answers[0]["applicant_id"] == customer

    # a replay with the same Idempotency-Key over either path gets the stored response
    first = _post(client, good, DIRECT, **{"X-API-Key": keys.all, "Idempotency-Key": "r-1"})
    again = _post(client, good, GENERIC, **{"X-API-Key": keys.all, "Idempotency-Key": "r-1"})
    assert first.status_code == again.status_code == 200 and first.json() == again.json()


def test_ledger_routes_answer_the_same_on_both_paths(
    service_settings: Settings, keys: Any, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(service_settings)
    auth = {"X-API-Key": keys.all}
    drawdown = {"account_id": "no-such-account", "amount": 10.0, "term_months": 3}
    repayment = {"account_id": "no-such-account", "amount": 10.0}
    cases: list[tuple[str, dict[str, Any], dict[str, str], int]] = [
        ("/v1/drawdowns", drawdown, {}, 401),
        ("/v1/drawdowns", {**drawdown, "term_months": 0}, auth, 422),
        ("/v1/drawdowns", {**drawdown, "amount": 1.005}, auth, 422),  # not whole fen
        ("/v1/drawdowns", drawdown, auth, 200),  # recorded as rejected: unknown account
        ("/v1/repayments", repayment, {}, 401),
        ("/v1/repayments", {**repayment, "extra": 1}, auth, 422),
        ("/v1/repayments", repayment, auth, 200),  # rejected: unknown account (one convention)
    ]
    volatile = ("drawdown_id", "repayment_id", "created_at")
    for url, body, headers, status in cases:
        answers = []
        for content_type in (DIRECT, GENERIC):
            r = _post(client, json.dumps(body).encode(), content_type, url, **headers)
            assert r.status_code == status, (url, body, r.text)
            answers.append({k: v for k, v in r.json().items() if k not in volatile})
        assert answers[0] == answers[1], (url, body)
    drawn = _post(client, json.dumps(drawdown).encode(), DIRECT, "/v1/drawdowns", **auth).json()
    assert drawn["status"] == "rejected"
    assert drawn["reason_codes"][0]["code"] == "DD_UNKNOWN_ACCOUNT"
    repaid = _post(client, json.dumps(repayment).encode(), DIRECT, "/v1/repayments", **auth)
    assert repaid.json()["status"] == "rejected"
    assert repaid.json()["reason_codes"][0]["code"] == "RP_UNKNOWN_ACCOUNT"


def test_dependency_overrides_are_honoured_on_the_direct_path(
    service_settings: Settings, keys: Any, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(service_settings)
    app: Any = client.app
    route = next(r for r in app.routes if isinstance(r, APIRoute) and r.path == URL)
    check = route.dependant.dependencies[0].call
    assert isinstance(check, ScopeCheck)

    def refuse() -> None:
        raise HTTPException(418, "overridden")

    app.dependency_overrides[check] = refuse
    try:
        r = _post(client, b'{"customer_id": "C1"}', DIRECT, **{"X-API-Key": keys.all})
    finally:
        app.dependency_overrides.clear()
    assert r.status_code == 418 and r.json()["detail"] == "overridden"

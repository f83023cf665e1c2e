"""The service over HTTP on each audit backend (SQLite file, real PostgreSQL): decisions are
committed before the response, repayments bring a revolving line's balance down (never below
zero), and a decision the audit store cannot record is never sent."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from scoring_service.client import YidaiAPIError, YidaiClient
from tests.support.sandbox import Sandbox
from yidai.audit import AuditStore, to_fen
from yidai.core.settings import Settings

from .conftest import loosen_policy, publish_limits, serving, wait_until


@pytest.fixture
def backend_settings(service_settings: Settings, audit_url: str) -> Settings:
    """The per-test service settings with the audit store on each backend."""
    return service_settings.model_copy(update={"audit_db_url": audit_url})


def _approved(yidai: YidaiClient, applicants: list[str], product: str) -> Any:
    ask = yidai.sme_credit if product == "sme" else yidai.merchant_credit
    for applicant in applicants:
        offer = ask(applicant)
        if offer.decision == "approve":
            return offer
    raise AssertionError(f"no {product} applicant approved in the sandbox")


def _count(store: AuditStore, sql: str) -> int:
    with store._read() as tx:
        return int(tx.rows(sql)[0][0])


def test_lines_drawdowns_and_repayments_over_http(
    sandbox: Sandbox, backend_settings: Settings, keys: Any
) -> None:
    loosen_policy(backend_settings, "sme")
    with serving(backend_settings) as url, YidaiClient(url, keys.all) as yidai:
        wait_until(lambda: yidai.readiness()[0], what="ready over HTTP")
        offer = _approved(yidai, sandbox.entities["sme"], "sme")
        # the decision was committed before the response: a fresh store reads it back
        audit = AuditStore(backend_settings.audit_url)
        stored = audit.get_decision(offer.decision_id)
        assert stored is not None and stored["response"] == offer.model_dump(mode="json")
        assert stored["record"]["features"] and stored["record"]["request"]["sme_id"]
        assert yidai.decision(offer.decision_id).response["policy_version"] == offer.policy_version

        account, limit = offer.account_id, offer.limit
        assert account is not None and limit > 0
        fresh = yidai.line(account)
        assert (fresh.product, fresh.status, fresh.outstanding, fresh.available) == (
            "sme", "active", 0.0, limit,
        )  # fmt: skip
        drawn = to_fen(limit * 0.6)
        assert yidai.drawdown(account, drawn, 6).status == "accepted"
        assert yidai.line(account).outstanding == drawn

        part = to_fen(drawn / 4)
        paid = yidai.repayment(account, part, idempotency_key="rp-1")
        assert (paid.status, paid.product, paid.outstanding_before) == ("accepted", "sme", drawn)
        assert paid.outstanding_after == to_fen(drawn - part)
        assert paid.available_after == to_fen(limit - paid.outstanding_after)
        assert yidai.repayment(account, part, idempotency_key="rp-1") == paid  # booked once
        line = yidai.line(account)
        assert (line.outstanding, line.available) == (paid.outstanding_after, paid.available_after)

        # refusals are answers (HTTP 200, status rejected, reason codes), nothing is booked
        over = yidai.repayment(account, to_fen(line.outstanding + 0.01))
        assert (over.status, over.reason_code) == ("rejected", "RP_EXCEEDS_OUTSTANDING")
        assert over.detail is not None and "exceeds the outstanding balance" in over.detail
        assert [r.code for r in over.reason_codes] == ["RP_EXCEEDS_OUTSTANDING"]
        unknown = yidai.repayment("no-such-account", 1.0)
        assert (unknown.status, unknown.product) == ("rejected", None)
        assert [r.code for r in unknown.reason_codes] == ["RP_UNKNOWN_ACCOUNT"]
        assert yidai.line(account) == line  # nothing booked by the rejected ones

        rest = yidai.repayment(account, line.outstanding)
        assert (rest.outstanding_after, rest.available_after) == (0.0, limit)
        # revolving: the whole line can be drawn again
        assert yidai.drawdown(account, limit, 3).status == "accepted"
        with pytest.raises(YidaiAPIError) as missing:
            yidai.line("no-such-account")
        assert missing.value.status_code == 404

        # payment velocity is read back from the same store
        payer = sandbox.entities["payment"][2]
        ts = dt.datetime(2026, 7, 1, 10, 0)
        yidai.payment_risk(payer, 20.0, "app", ts=ts.isoformat(), device_id="D-1")
        soon = (ts + dt.timedelta(minutes=2)).isoformat()
        later = yidai.payment_risk(payer, 25.0, "app", ts=soon)
        record = audit.get_decision(later.decision_id)
        assert record is not None and record["record"]["recent_events"] == 1

        status = "SELECT COUNT(*) FROM repayments WHERE status = "
        assert _count(audit, status + "'accepted'") == 2  # the replay was not booked again
        assert _count(audit, status + "'rejected'") == 2  # rejections are audited too
        audit.close()

        raw = httpx.post(
            f"{url}/v1/repayments",
            json={"account_id": account, "amount": 1.005},
            headers={"X-API-Key": keys.all},
        )
        assert raw.status_code == 422 and "whole fen" in raw.json()["detail"]
        with YidaiClient(url, keys.personal_only) as narrow:
            with pytest.raises(YidaiAPIError) as denied:
                narrow.repayment(account, 1.0)
            assert denied.value.status_code == 403 and "repayments" in denied.value.detail


def test_a_decision_the_audit_store_cannot_record_is_not_sent(
    sandbox: Sandbox, backend_settings: Settings, keys: Any
) -> None:
    url = backend_settings.audit_url
    AuditStore(url).close()  # the schema exists
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("sqlite:///", 1)[1]) as con:
            con.execute(
                "CREATE TRIGGER audit_down BEFORE INSERT ON decisions"
                " BEGIN SELECT RAISE(ABORT, 'audit store down'); END"
            )
    else:
        import psycopg  # heavy: the PostgreSQL driver, for the PostgreSQL case only

        with psycopg.connect(url, autocommit=True) as con:
            con.execute(
                "CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'audit store down'; END $$"
            )
            con.execute(
                "CREATE TRIGGER audit_down BEFORE INSERT ON decisions"
                " FOR EACH ROW EXECUTE FUNCTION audit_down()"
            )
    with serving(backend_settings) as base, YidaiClient(base, keys.all) as yidai:
        wait_until(lambda: yidai.readiness()[0], what="ready over HTTP")
        with pytest.raises(YidaiAPIError) as failed:
            yidai.personal_credit(sandbox.entities["personal"][0], 500.0)
        assert failed.value.status_code == 500
    store = AuditStore(url)
    assert store.count_decisions() == 0
    store.close()


def test_a_frozen_merchant_line_still_takes_repayments(
    sandbox: Sandbox,
    backend_settings: Settings,
    keys: Any,
    make_client: Callable[..., TestClient],
) -> None:
    loosen_policy(backend_settings, "merchant")
    client = make_client(backend_settings)
    headers = {"X-API-Key": keys.all}
    merchant = None
    for candidate in sandbox.entities["merchant"]:
        offer = client.post(
            "/v1/decisions/merchant-credit", json={"merchant_id": candidate}, headers=headers
        ).json()
        if offer["decision"] == "approve":
            merchant = candidate
            break
    assert merchant is not None, "no merchant approved in the sandbox"
    account = offer["account_id"]
    publish_limits(backend_settings.serving, [(merchant, "A1", 8_000.0, "active")], "v1")

    def line() -> dict[str, Any]:
        return dict(client.get(f"/v1/lines/{account}", headers=headers).json())

    wait_until(lambda: line()["credit_limit"] == 8_000.0, what="published line in force")
    draw = {"account_id": account, "amount": 5_000.0, "term_months": 3}
    assert client.post("/v1/drawdowns", json=draw, headers=headers).json()["status"] == "accepted"
    publish_limits(backend_settings.serving, [(merchant, "A1", 8_000.0, "frozen")], "v2")
    wait_until(lambda: line()["status"] == "frozen", what="frozen line in force")
    paid = client.post(
        "/v1/repayments", json={"account_id": account, "amount": 1_200.0}, headers=headers
    )
    assert paid.status_code == 200, paid.text
    assert (paid.json()["outstanding_after"], paid.json()["available_after"]) == (3_800.0, 0.0)
    assert line() == {
        "account_id": account, "product": "merchant", "borrower_id": merchant,
        "status": "frozen", "credit_limit": 0.0, "outstanding": 3_800.0, "available": 0.0,
    }  # fmt: skip
    again = client.post("/v1/drawdowns", json=draw, headers=headers).json()
    assert again["reason_codes"][0]["code"] == "DD_LINE_FROZEN"

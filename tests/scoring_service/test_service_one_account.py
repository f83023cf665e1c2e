"""One account, end to end (issue 16): a merchant and an SME go through apply -> approve ->
draw -> repay -> nightly refresh -> draw again, and every step names the same account id;
a loan-book line published by the nightly refresh is drawn and repaid under its own id; a
second application is a review of the line, not a second line; refusals are answers (200,
``status: rejected``) and a term the product does not offer is a 422.  On SQLite and on a
real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.sandbox import Sandbox
from yidai.audit import to_fen
from yidai.core.settings import Settings

from .conftest import loosen_policy, publish_limits, wait_until

BOOK_MERCHANT_ACCOUNT = "A0000213844"  # a line of the bank's loan book, not opened online


@pytest.fixture
def backend_settings(service_settings: Settings, audit_url: str) -> Settings:
    return service_settings.model_copy(update={"audit_db_url": audit_url})


def _h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def _approved(client: TestClient, key: str, product: str, applicants: list[str]) -> dict:
    field = {"merchant": "merchant_id", "sme": "sme_id"}[product]
    for applicant in applicants:
        got = client.post(
            f"/v1/decisions/{product}-credit",
            json={field: applicant, "requested_amount": 10_000_000},
            headers=_h(key),
        ).json()
        if got["decision"] == "approve":
            return got
    raise AssertionError(f"no {product} applicant approved in the sandbox")


def _walk(client: TestClient, key: str, product: str, offer: dict, refresh: Callable) -> None:
    """approve -> draw -> repay -> nightly refresh -> draw again, on one account id."""
    account, limit = offer["account_id"], offer["limit"]
    assert account and limit > 0
    # a partial approval says so: asked 10M, approved the affordable limit
    assert offer["requested_amount"] == 10_000_000 and offer["approved_amount"] == limit
    assert "LM_CAPPED_BY_LIMIT" in {r["code"] for r in offer["reason_codes"]}
    draw = client.post(
        "/v1/drawdowns",
        json={"account_id": account, "amount": to_fen(limit / 2), "term_months": 6},
        headers=_h(key),
    ).json()
    assert (draw["status"], draw["account_id"]) == ("accepted", account)
    paid = client.post(
        "/v1/repayments",
        json={"account_id": account, "amount": to_fen(limit / 8)},
        headers=_h(key),
    ).json()
    assert (paid["status"], paid["account_id"]) == ("accepted", account)
    owed = paid["outstanding_after"]
    new_limit = refresh(account, limit)
    line = client.get(f"/v1/lines/{account}", headers=_h(key)).json()
    assert (line["account_id"], line["credit_limit"], line["outstanding"]) == (
        account, new_limit, owed,
    )  # fmt: skip
    again = client.post(
        "/v1/drawdowns",
        json={"account_id": account, "amount": to_fen(line["available"]), "term_months": 12},
        headers=_h(key),
    ).json()
    assert (again["status"], again["available_after"]) == ("accepted", 0.0)
    # a business refusal is an answer: 200, status rejected, a reason code
    over = client.post(
        "/v1/drawdowns",
        json={"account_id": account, "amount": 100.0, "term_months": 12},
        headers=_h(key),
    )
    assert over.status_code == 200 and over.json()["status"] == "rejected"
    assert [r["code"] for r in over.json()["reason_codes"]] == ["DD_INSUFFICIENT_LIMIT"]


def test_one_account_from_application_to_nightly_limit_to_drawdown(
    sandbox: Sandbox,
    backend_settings: Settings,
    keys: Any,
    make_client: Callable[[Settings], TestClient],
) -> None:
    for product in ("merchant", "sme"):
        loosen_policy(backend_settings, product)
    client = make_client(backend_settings)
    key = keys.all
    serving = backend_settings.serving
    book_merchant = sandbox.entities["merchant"][-1]

    # the merchant: the nightly refresh publishes its line (the same borrower, a new figure)
    merchants = sandbox.entities["merchant"][:-1]
    offer = _approved(client, key, "merchant", merchants)
    merchant = offer["applicant_id"]

    def nightly(account: str, limit: float) -> float:
        new = to_fen(limit * 1.2)
        publish_limits(
            serving,
            [(merchant, "A-book-unused", new, "active"),
             (book_merchant, BOOK_MERCHANT_ACCOUNT, 40_000.0, "active")],
            "v-night-1",
        )  # fmt: skip
        wait_until(
            lambda: (
                client.get(f"/v1/merchants/{merchant}/limit", headers=_h(key))
                .json()
                .get("limits_version")
                == "v-night-1"
            ),
            what="the new limits version",
        )
        published = client.get(f"/v1/merchants/{merchant}/limit", headers=_h(key)).json()
        assert published["account_id"] == account  # the ledger's line, not a second account
        return new

    _walk(client, key, "merchant", offer, nightly)

    # the SME: no nightly refresh of SME lines; the approved line stays in force
    sme_offer = _approved(client, key, "sme", sandbox.entities["sme"])
    _walk(client, key, "sme", sme_offer, lambda account, limit: limit)

    # a loan-book line published by the refresh: drawn and repaid under its own account id
    published = client.get(f"/v1/merchants/{book_merchant}/limit", headers=_h(key)).json()
    assert published["account_id"] == BOOK_MERCHANT_ACCOUNT
    book_owed = published["outstanding"]  # the book's balance (publish_limits: line / 5)
    assert book_owed == 8_000.0 and published["available"] == 32_000.0
    draw = client.post(
        "/v1/drawdowns",
        json={"account_id": BOOK_MERCHANT_ACCOUNT, "amount": 2_000.0, "term_months": 3},
        headers=_h(key),
    ).json()
    assert (draw["status"], draw["outstanding_before"]) == ("accepted", book_owed)
    line = client.get(f"/v1/lines/{BOOK_MERCHANT_ACCOUNT}", headers=_h(key)).json()
    assert (line["borrower_id"], line["outstanding"]) == (book_merchant, 10_000.0)

    # a term the product does not offer: 422 listing the offered ones, nothing booked
    bad = client.post(
        "/v1/drawdowns",
        json={"account_id": BOOK_MERCHANT_ACCOUNT, "amount": 100.0, "term_months": 5},
        headers=_h(key),
    )
    assert bad.status_code == 422 and bad.json()["reason_code"] == "DD_TERM_NOT_OFFERED"
    assert "offered terms: 1, 3, 6, 12" in bad.json()["detail"]

    # refusals of repayments are answers too
    for account, amount, code in (
        (BOOK_MERCHANT_ACCOUNT, 1e6, "RP_EXCEEDS_OUTSTANDING"),
        ("A-nobody", 10.0, "RP_UNKNOWN_ACCOUNT"),
    ):
        got = client.post(
            "/v1/repayments", json={"account_id": account, "amount": amount}, headers=_h(key)
        )
        assert got.status_code == 200 and got.json()["status"] == "rejected"
        assert [r["code"] for r in got.json()["reason_codes"]] == [code]

    # a borrower with a line is directed to a review of it, never given a second line
    for product, borrower, account in (
        ("merchant", merchant, offer["account_id"]),
        ("sme", sme_offer["applicant_id"], sme_offer["account_id"]),
        ("merchant", book_merchant, BOOK_MERCHANT_ACCOUNT),
    ):
        field = {"merchant": "merchant_id", "sme": "sme_id"}[product]
        again = client.post(
            f"/v1/decisions/{product}-credit",
            json={field: borrower, "requested_amount": 5_000},
            headers=_h(key),
        ).json()
        assert again["decision"] in ("refer", "decline") and again["account_id"] == account
        assert again["reason_codes"][0]["code"] == "EX_EXISTING_LINE"
        assert again["approved_amount"] == 0.0

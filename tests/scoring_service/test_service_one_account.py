"""One account, end to end (issue 16): a merchant and an SME go through apply -> approve ->
draw -> repay -> nightly refresh -> draw again, and every step names the same account id.
The nightly refresh is the real limit-refresh job (``yidai.jobs.limits.refresh_limits``) on
the sandbox's warehouse, into which the day's core-banking extract brings the lines booked
online (their ``loan_applications`` row and month-end balance); it re-underwrites the
merchant lines (SME lines are not refreshed nightly: their approved line stays in force).
A loan-book line published by that refresh is drawn and repaid under its own id; a second
application is a review of the line, not a second line; refusals are answers (200,
``status: rejected``) and a term the product does not offer is a 422.  On SQLite and on a
real PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient

from tests.support.sandbox import AS_OF, Sandbox
from yidai.audit import to_fen
from yidai.core.settings import Settings
from yidai.jobs.limits import refresh_limits
from yidai.jobs.limits.serving import read_limits_table

from .conftest import loosen_policy, wait_until


@pytest.fixture
def backend_settings(service_settings: Settings, audit_url: str) -> Settings:
    return service_settings.model_copy(update={"audit_db_url": audit_url})


def _book_online_lines(warehouse: Path, lines: list[tuple[str, str, str, float, float]]) -> None:
    """The day's core-banking extract: each line booked online (product, borrower, account,
    line, balance) lands in the warehouse as an approved application of ``AS_OF`` and a
    month-end tape row, as the nightly ingest would load it."""
    con = duckdb.connect(str(warehouse))
    try:
        for i, (product, borrower, account, line, owed) in enumerate(lines):
            con.execute(
                "INSERT INTO loan_applications BY NAME SELECT ? AS application_id, "
                "CAST(? AS TIMESTAMP) + INTERVAL 10 HOUR AS ts, ? AS product, "
                "? AS applicant_id, ? AS requested_amount, 'approved' AS decision, "
                "? AS approved_limit, 0.08 AS annual_rate, ? AS account_id, "
                "'core-banking' AS _batch_id, now() AS _ingested_at",
                [f"ONLINE{i}", AS_OF, product, borrower, line, line, account],
            )
            con.execute(
                "INSERT INTO loan_performance BY NAME SELECT ? AS account_id, "
                "CAST(? AS TIMESTAMP) AS snapshot_date, ? AS credit_limit, ? AS outstanding, "
                "0 AS days_past_due, 'open' AS status, 0 AS charged_off, 0 AS recovered, "
                "'core-banking' AS _batch_id, now() AS _ingested_at",
                [account, AS_OF, line, owed],
            )
    finally:
        con.close()


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
    new_limit = refresh(account, limit, owed)
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
    tmp_path: Path,
) -> None:
    for product in ("merchant", "sme"):
        loosen_policy(backend_settings, product)
    client = make_client(backend_settings)
    key = keys.all
    serving = backend_settings.serving
    warehouse = tmp_path / "warehouse.duckdb"  # the sandbox's warehouse, this test's copy
    shutil.copy(backend_settings.home / "sandbox" / "warehouse.duckdb", warehouse)
    nightly_settings = backend_settings.model_copy(update={"warehouse_path": warehouse})

    def nightly_refresh(product: str, borrower: str, account: str, limit: float, owed: float):
        """The day's extract into the warehouse, then the real limit-refresh job."""
        _book_online_lines(warehouse, [(product, borrower, account, limit, owed)])
        result = refresh_limits(AS_OF, settings=nightly_settings)
        assert result.published
        wait_until(
            lambda: (
                client.get(f"/v1/merchants/{merchant}/limit", headers=_h(key))
                .json()
                .get("limits_version")
                == result.version
            ),
            what="the refreshed limits version",
        )
        return read_limits_table(serving, version=result.version).set_index("merchant_id")

    # the merchant: the nightly refresh re-underwrites its line (one account, a new figure)
    offer = _approved(client, key, "merchant", sandbox.entities["merchant"])
    merchant = offer["applicant_id"]
    refreshed: dict[str, Any] = {}

    def merchant_nightly(account: str, limit: float, owed: float) -> float:
        table = nightly_refresh("merchant", merchant, account, limit, owed)
        refreshed["table"] = table
        row = table.loc[merchant]
        assert row["account_id"] == account  # the refresh names the line booked online
        assert row["status"] == "active" and row["credit_line"] > owed, row.to_dict()
        published = client.get(f"/v1/merchants/{merchant}/limit", headers=_h(key)).json()
        assert published["account_id"] == account  # the ledger's line, not a second account
        assert published["credit_line"] == row["credit_line"]
        return float(row["credit_line"])

    _walk(client, key, "merchant", offer, merchant_nightly)

    # the SME: the nightly refresh runs (its line lands in the warehouse) but re-underwrites
    # merchant lines only: the approved SME line stays in force
    sme_offer = _approved(client, key, "sme", sandbox.entities["sme"])
    sme = sme_offer["applicant_id"]

    def sme_nightly(account: str, limit: float, owed: float) -> float:
        table = nightly_refresh("sme", sme, account, limit, owed)
        assert sme not in table.index and account not in set(table["account_id"])
        return limit

    _walk(client, key, "sme", sme_offer, sme_nightly)

    # a loan-book line published by the refresh: drawn and repaid under its own account id
    table = refreshed["table"]
    book = table[
        (table["status"] == "active")
        & (table["available"] >= 200)
        & table["account_id"].notna()
        & (table.index != merchant)
    ]
    assert len(book), "the refresh published no active loan-book line with room to draw"
    book_merchant = str(book.index[0])
    book_account = str(book["account_id"].iloc[0])
    published = client.get(f"/v1/merchants/{book_merchant}/limit", headers=_h(key)).json()
    assert published["account_id"] == book_account
    book_owed = published["outstanding"]  # the book's balance, as the refresh published it
    assert book_owed == pytest.approx(float(book["outstanding"].iloc[0]), abs=0.01)
    draw = client.post(
        "/v1/drawdowns",
        json={"account_id": book_account, "amount": 100.0, "term_months": 3},
        headers=_h(key),
    ).json()
    assert (draw["status"], draw["outstanding_before"]) == ("accepted", book_owed)
    line = client.get(f"/v1/lines/{book_account}", headers=_h(key)).json()
    assert line["borrower_id"] == book_merchant
    assert line["outstanding"] == pytest.approx(book_owed + 100.0, abs=0.01)

    # a term the product does not offer: 422 listing the offered ones, nothing booked
    bad = client.post(
        "/v1/drawdowns",
        json={"account_id": book_account, "amount": 100.0, "term_months": 5},
        headers=_h(key),
    )
    assert bad.status_code == 422 and bad.json()["reason_code"] == "DD_TERM_NOT_OFFERED"
    assert "offered terms: 1, 3, 6, 12" in bad.json()["detail"]

    # refusals of repayments are answers too
    for account, amount, code in (
        (book_account, 1e6, "RP_EXCEEDS_OUTSTANDING"),
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
        ("merchant", book_merchant, book_account),
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

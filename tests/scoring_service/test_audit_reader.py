"""The public read API of the audit store (:class:`yidai.audit.AuditReader`) on each
back-end (SQLite file, real PostgreSQL): what the service wrote, read back as DataFrames."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from yidai.audit import (
    DECISION_COLUMNS,
    LINE_COLUMNS,
    OUTCOME_COLUMNS,
    PAYMENT_EVENT_COLUMNS,
    AuditReader,
    AuditStore,
    DecisionRow,
    Line,
    PaymentEvent,
)
from yidai.core.errors import YidaiError

DAY = date(2026, 7, 10)


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _decision(
    decision_id: str,
    product: str,
    created_at: str,
    request: dict[str, Any],
    *,
    entity_id: str = "E1",
    outcome: str = "approve",
    line: float | None = None,
    event: PaymentEvent | None = None,
) -> DecisionRow:
    return DecisionRow(
        decision_id=decision_id, module="m", idempotency_key=None, request_hash=decision_id,
        product=product, entity_id=entity_id, outcome=outcome, arm="champion",
        model_version=f"{product}:1", policy_version="p1",
        response={"decision_id": decision_id, "created_at": created_at, "amount_tier": "low"},
        record={"request": request, "features": {"x": 1.5}},
        open_line=(entity_id, line) if line is not None else None, payment_event=event,
    )  # fmt: skip


def _payment(payer: str, at: datetime, amount: float) -> PaymentEvent:
    return PaymentEvent(payer, _us(at), amount, "P9", "M1", "D1", "app")


@pytest.fixture
def filled(audit_url: str) -> str:
    """A store with credit and payment decisions on three days, and one line's ledger."""
    store = AuditStore(audit_url)
    t1 = datetime(2026, 7, 9, 23, 0, tzinfo=UTC)
    t2 = datetime(2026, 7, 10, 9, 30, tzinfo=UTC)
    t3 = datetime(2026, 7, 11, 0, 0, tzinfo=UTC)
    t4 = datetime(2026, 7, 11, 0, 1, tzinfo=UTC)
    rows = [
        _decision("d1", "payment", t1.isoformat(), {"amount": 20.0},
                  outcome="allow", event=_payment("C1", t1, 20.0)),
        _decision("d2", "sme", t2.isoformat(), {"requested_amount": 8_000.0},
                  entity_id="S1", line=1_000.0),
        _decision("d3", "payment", t2.replace(hour=10).isoformat(), {"amount": 900.0},
                  outcome="step_up", event=_payment("C1", t2.replace(hour=10), 900.0)),
        _decision("d4", "personal", t3.isoformat(), {}, outcome="decline"),
        _decision("d5", "payment", t4.isoformat(), {"amount": 5.0},
                  event=_payment("C2", t4, 5.0)),
    ]  # fmt: skip
    try:
        for row in rows:
            store.record_decision(row)
        for amount in (300.0, 900.0, 200.0):  # 900 exceeds what is left: rejected
            _draw(store, "d2", amount)
        _repay(store, "d2", 120.0)
        _repay(store, "d2", 10_000.0)  # above the balance: rejected
        assert store.outstanding("d2") == 380.0
    finally:
        store.close()
    return audit_url


def _draw(store: AuditStore, account: str, amount: float) -> None:
    def respond(line: Line | None, limit: float, out: float, reject: str | None) -> dict[str, Any]:
        return {"status": "accepted" if reject is None else "rejected"}

    store.drawdown(
        drawdown_id=uuid.uuid4().hex, account_id=account, amount=amount, term_months=3,
        module="m", idempotency_key=None, request_hash=f"draw-{amount}",
        effective_limit=lambda line: (line.credit_limit, None), respond=respond,
    )  # fmt: skip


def _repay(store: AuditStore, account: str, amount: float) -> None:
    store.repay(
        repayment_id=uuid.uuid4().hex, account_id=account, amount=amount, module="m",
        idempotency_key=None, request_hash=f"repay-{amount}",
        respond=lambda line, outstanding, reject: {},
    )  # fmt: skip


def test_decisions_are_filtered_and_newest_first(filled: str) -> None:
    with AuditReader(filled) as reader:
        everything = reader.decisions()
        assert list(everything.columns) == list(DECISION_COLUMNS)
        assert everything["decision_id"].tolist() == ["d5", "d4", "d3", "d2", "d1"]
        payments = reader.decisions(product="payment")
        assert payments["decision_id"].tolist() == ["d5", "d3", "d1"]
        assert reader.decisions(product="payment", limit=2)["decision_id"].tolist() == ["d5", "d3"]
        assert reader.decisions(entity_id="S1")["decision_id"].tolist() == ["d2"]
        (one,) = reader.decisions(decision_id="d3").to_dict("records")
        on_the_day = reader.decisions(since=DAY, before=date(2026, 7, 11))
        assert on_the_day["decision_id"].tolist() == ["d3", "d2"]
        from_a_time = reader.decisions(since=datetime(2026, 7, 10, 10, 0, tzinfo=UTC))
        assert from_a_time["decision_id"].tolist() == ["d5", "d4", "d3"]
        assert reader.decisions(decision_id="nope").empty
    assert one["product"] == "payment" and one["outcome"] == "step_up"
    assert one["model_version"] == "payment:1" and one["policy_version"] == "p1"
    assert json.loads(one["response"])["amount_tier"] == "low"
    assert json.loads(one["record"]) == {"request": {"amount": 900.0}, "features": {"x": 1.5}}


def test_decision_outcomes_carry_the_requested_amount(filled: str) -> None:
    with AuditReader(filled) as reader:
        outcomes = reader.decision_outcomes(since=DAY, before=date(2026, 7, 12))
        only_sme = reader.decision_outcomes(product="sme")
    assert list(outcomes.columns) == list(OUTCOME_COLUMNS)
    seen = sorted(zip(outcomes["product"], outcomes["outcome"], outcomes["amount"], strict=True))
    assert seen[:3] == [
        ("payment", "approve", 5.0),
        ("payment", "step_up", 900.0),
        ("personal", "decline", seen[2][2]),
    ]
    assert math.isnan(seen[2][2])  # no amount in the request
    assert seen[3:] == [("sme", "approve", 8_000.0)]  # and d1, the day before, is not there
    assert only_sme[["product", "outcome", "arm", "amount"]].values.tolist() == [
        ["sme", "approve", "champion", 8_000.0]
    ]


def test_payment_events_of_a_payer_in_a_time_range(filled: str) -> None:
    with AuditReader(filled) as reader:
        every = reader.payment_events()
        payer = reader.payment_events(payer_id="C1")
        later = reader.payment_events(payer_id="C1", since=DAY)
        before = reader.payment_events(before=datetime(2026, 7, 10, 10, 0))  # naive: UTC
    assert list(every.columns) == list(PAYMENT_EVENT_COLUMNS)  # never a card token
    assert every["decision_id"].tolist() == ["d1", "d3", "d5"]  # oldest first
    assert payer["amount"].tolist() == [20.0, 900.0]
    assert later["decision_id"].tolist() == ["d3"]
    assert before["decision_id"].tolist() == ["d1"]
    assert payer["ts"].tolist() == [
        pd.Timestamp("2026-07-09T23:00:00Z"),
        pd.Timestamp("2026-07-10T10:30:00Z"),
    ]
    assert later.iloc[0][["counterpart_id", "merchant_id", "device_id", "channel"]].tolist() == [
        "P9", "M1", "D1", "app",
    ]  # fmt: skip


def test_lines_with_their_balances(filled: str) -> None:
    with AuditReader(filled) as reader:
        lines = reader.lines()
        sme = reader.lines(product="sme")
        none = reader.lines(account_id="no-such-line")
    assert list(lines.columns) == list(LINE_COLUMNS)
    (line,) = lines.to_dict("records")
    assert line["account_id"] == "d2" and line["borrower_id"] == "S1"
    assert line["credit_limit"] == 1_000.0 and line["decision_id"] == "d2"
    # accepted only: 300 + 200 drawn (900 rejected), 120 repaid (10 000 rejected)
    assert (line["drawn"], line["repaid"], line["outstanding"]) == (500.0, 120.0, 380.0)
    assert sme["account_id"].tolist() == ["d2"]
    assert none.empty and list(none.columns) == list(LINE_COLUMNS)


def test_an_empty_store_reads_as_empty_frames(audit_url: str) -> None:
    """Before the service ever ran (no file, or no tables yet): empty frames, and the
    reader creates nothing."""
    with AuditReader(audit_url) as reader:
        frames = {
            "decisions": (reader.decisions(), DECISION_COLUMNS),
            "outcomes": (reader.decision_outcomes(since=DAY), OUTCOME_COLUMNS),
            "events": (reader.payment_events(payer_id="C1"), PAYMENT_EVENT_COLUMNS),
            "lines": (reader.lines(), LINE_COLUMNS),
        }
    for frame, columns in frames.values():
        assert frame.empty and list(frame.columns) == list(columns)
    if audit_url.startswith("sqlite"):
        assert not Path(audit_url.split("sqlite:///", 1)[1]).exists()
    store = AuditStore(audit_url)  # the reader created no table the store would trip over
    store.close()


def test_the_reader_sees_what_an_open_store_committed(audit_url: str) -> None:
    store = AuditStore(audit_url)
    reader = AuditReader(audit_url)
    try:
        for i in range(3):
            created = f"2026-07-10T0{i}:00:00.000000+00:00"
            store.record_decision(_decision(f"d{i}", "personal", created, {"amount": 1.0}))
            assert len(reader.decisions()) == i + 1
    finally:
        reader.close()
        store.close()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "sqlite:///:memory:", "sqlite://", "not a url"])
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(YidaiError):
        AuditReader(url)

"""The audit store's behaviour, the same on both backends (SQLite file, real PostgreSQL):
append-only rows, idempotent replays, atomic drawdowns and repayments under concurrency,
the payment events read back for velocity."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.pg_local import PostgresCluster, server_bin
from yidai.audit import (
    AuditStore,
    Booked,
    DecisionRow,
    IdempotencyConflict,
    Line,
    PaymentEvent,
)
from yidai.core.errors import YidaiError
from yidai.jobs.analytics.decisions import find_decisions

LIMIT = 1_000.0
T = TypeVar("T")


def _row(decision_id: str, key: str | None = None, *, line: float | None = None) -> DecisionRow:
    return DecisionRow(
        decision_id=decision_id, module="m", idempotency_key=key,
        request_hash="h" + (key or decision_id), product="sme", entity_id="S1",
        outcome="approve", arm="champion", model_version="sme_pd:1", policy_version="p1",
        response={"decision_id": decision_id}, record={"features": {"x": 1.5}, "why": ["R1"]},
        open_line=("S1", line) if line is not None else None,
    )  # fmt: skip


def _race(n: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(i)`` for i < n in n threads released together; their results in order."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]
    return results


def _draw(store: AuditStore, amount: float, key: str | None = None) -> dict[str, Any]:
    def limit(line: Line) -> tuple[float, str | None]:
        return line.credit_limit, None

    def respond(line: Line | None, lim: float, out: float, reject: str | None) -> dict[str, Any]:
        status = "accepted" if reject is None else "rejected"
        return {"status": status, "reject": reject, "outstanding_before": out}

    sent = store.drawdown(
        drawdown_id=uuid.uuid4().hex, account_id="acct", amount=amount, term_months=3,
        module="m", idempotency_key=key, request_hash=f"draw-{amount}",
        effective_limit=limit, respond=respond,
    )  # fmt: skip
    return dict(json.loads(sent))


def _repay(
    store: AuditStore, amount: float, key: str | None = None, account: str = "acct"
) -> Booked:
    def respond(line: Line | None, outstanding: float, reject: str | None) -> dict[str, Any]:
        if reject is not None:
            return {"outstanding": outstanding, "reject": reject}
        return {"outstanding_after": round(outstanding - amount, 2)}

    return store.repay(
        repayment_id=uuid.uuid4().hex, account_id=account, amount=amount, module="m",
        idempotency_key=key, request_hash=f"repay-{amount}", respond=respond,
    )  # fmt: skip


def test_decisions_are_committed_append_only_and_replayed_by_key(audit_url: str) -> None:
    store = AuditStore(audit_url)
    sent = store.record_decision(_row("d1", key="k1"))
    # committed before record_decision returned: another connection (a fresh store) sees it
    other = AuditStore(audit_url)
    stored = other.get_decision("d1")
    assert stored is not None and json.loads(sent) == stored["response"]
    assert stored["record"] == {"features": {"x": 1.5}, "why": ["R1"]}
    replay = other.record_decision(_row("d2", key="k1"))  # a retry decided again: not stored
    assert json.loads(replay) == {"decision_id": "d1"}
    assert store.find_idempotent("m", "k1", "hk1") == sent
    with pytest.raises(IdempotencyConflict):
        store.find_idempotent("m", "k1", "another request")
    assert store.find_idempotent("another-module", "k1", "hk1") is None  # keys are per module
    assert store.count_decisions() == 1
    for sql in ("UPDATE decisions SET outcome = 'decline'", "DELETE FROM decisions"):
        with pytest.raises(Exception, match="append-only"), store._write() as tx:
            tx.rows(sql)
    assert other.get_decision("d1") == stored
    found = find_decisions(audit_url, entity_id="S1")  # the dashboards' read-only view
    assert found["decision_id"].tolist() == ["d1"]
    store.close()
    other.close()


def test_a_key_raced_by_concurrent_retries_decides_once(audit_url: str) -> None:
    store = AuditStore(audit_url)
    sent = _race(12, lambda i: store.record_decision(_row(f"d{i}", key="same")))
    assert len(set(sent)) == 1  # every retry got the winner's decision
    assert store.count_decisions() == 1
    store.close()


def test_concurrent_drawdowns_never_exceed_the_limit(audit_url: str) -> None:
    store = AuditStore(audit_url)
    store.record_decision(_row("acct", line=LIMIT))
    answers = _race(20, lambda i: _draw(store, 150.0))
    accepted = [a for a in answers if a["status"] == "accepted"]
    assert len(accepted) == 6  # 6 x 150 = 900 fits in 1000, a 7th would not
    assert {a["reject"] for a in answers if a["status"] == "rejected"} == {"DD_INSUFFICIENT_LIMIT"}
    # each accepted drawdown saw the ones booked before it: balances 0, 150, ..., 750
    assert sorted(a["outstanding_before"] for a in accepted) == [150.0 * k for k in range(6)]
    assert store.outstanding("acct") == 900.0
    store.close()


def test_repayments_lower_the_balance_atomically_never_below_zero(audit_url: str) -> None:
    store = AuditStore(audit_url)
    store.record_decision(_row("acct", line=LIMIT))
    assert _repay(store, 10.0).status == "rejected"  # nothing owed yet
    assert _draw(store, 600.0)["status"] == "accepted"
    first = _repay(store, 250.0, key="r1")
    assert first.status == "accepted" and json.loads(first.json)["outstanding_after"] == 350.0
    assert _repay(store, 250.0, key="r1") == first  # a retry books nothing more
    with pytest.raises(IdempotencyConflict):
        _repay(store, 100.0, key="r1")
    assert store.outstanding("acct") == 350.0
    assert _repay(store, 350.01).status == "rejected"
    assert _repay(store, 5.0, account="nope").status == "rejected"
    # the repaid amount can be drawn again (a revolving line)
    assert _draw(store, 650.0)["status"] == "accepted"
    assert _draw(store, 0.01)["status"] == "rejected"
    # 20 concurrent repayments of 60 on a balance of 1000: exactly 16 fit
    booked = _race(20, lambda i: _repay(store, 60.0))
    assert sum(b.status == "accepted" for b in booked) == 16
    assert store.outstanding("acct") == 40.0
    with pytest.raises(Exception, match="append-only"), store._write() as tx:
        tx.rows("DELETE FROM repayments")
    line_and_balance = store.line_state("acct")
    assert line_and_balance is not None and line_and_balance[1] == 40.0
    assert store.line_state("nope") is None
    store.close()


def test_drawdowns_and_repayments_racing_keep_the_balance_within_the_line(audit_url: str) -> None:
    store = AuditStore(audit_url)
    store.record_decision(_row("acct", line=LIMIT))
    assert _draw(store, 500.0)["status"] == "accepted"

    def work(i: int) -> tuple[str, float, bool]:
        if i % 2:
            return "draw", 200.0, _draw(store, 200.0)["status"] == "accepted"
        return "repay", 150.0, _repay(store, 150.0).status == "accepted"

    results = _race(20, work)
    drawn = sum(a for kind, a, ok in results if ok and kind == "draw")
    repaid = sum(a for kind, a, ok in results if ok and kind == "repay")
    balance = store.outstanding("acct")
    assert balance == pytest.approx(500.0 + drawn - repaid)
    assert 0.0 <= balance <= LIMIT
    store.close()


def test_payment_events_are_read_back_for_velocity(audit_url: str) -> None:
    store = AuditStore(audit_url)
    base = 1_780_000_000_000_000
    for i, offset in enumerate((0, 60, 120, 90_000)):
        event = PaymentEvent("P1", base + offset * 1_000_000, 10.0 + i, f"T{i}", None, "D1", "app")
        row = DecisionRow(
            f"p{i}", "pay", None, f"h{i}", "payment", "P1", "allow", "champion", "fraud:1", "p",
            {"decision_id": f"p{i}"}, {}, payment_event=event,
        )  # fmt: skip
        store.record_decision(row)
    window = store.recent_payments("P1", base, base + 121 * 1_000_000)
    assert [e["amount"] for e in window] == [10.0, 11.0, 12.0]
    assert [e["counterpart_id"] for e in window] == ["T0", "T1", "T2"]
    assert store.recent_payments("P2", 0, base * 2) == []
    store.close()


def test_workers_opening_one_fresh_store_at_once(audit_url: str) -> None:
    """Several service workers start together on an empty database: one creates the schema."""
    stores = _race(6, lambda i: AuditStore(audit_url))
    stores[0].record_decision(_row("d1"))
    assert all(s.count_decisions() == 1 for s in stores)
    for s in stores:
        s.close()


def test_an_unreachable_or_unsupported_store_is_a_clear_error() -> None:
    with pytest.raises(YidaiError, match=r"cannot open the audit store postgresql://\*\*\*@"):
        AuditStore("postgresql://u:secret@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(YidaiError, match="only sqlite:///path and postgresql"):
        AuditStore("mysql+pymysql://u@127.0.0.1/x")


def test_missing_postgres_binaries_name_the_install_script(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"scripts/install-postgres\.sh"):
        server_bin(tmp_path)
    (tmp_path / "15" / "bin").mkdir(parents=True)
    (tmp_path / "15" / "bin" / "pg_ctl").touch()
    (tmp_path / "15" / "bin" / "initdb").touch()
    assert server_bin(tmp_path) == tmp_path / "15" / "bin"


def test_a_service_role_without_create_or_delete_rights_on_postgres(
    postgres: PostgresCluster,
) -> None:
    """The deployment doc's grants: the owner creates the schema once, the service's role
    then needs SELECT, INSERT (and UPDATE on credit_lines for the row lock) only."""
    import psycopg  # heavy: the PostgreSQL driver, for the PostgreSQL case only

    url = postgres.new_database()
    AuditStore(url).close()
    role = f"svc_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"CREATE ROLE {role} LOGIN")
        con.execute(f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {role}")
        con.execute(f"GRANT UPDATE ON credit_lines TO {role}")
    store = AuditStore(url.replace(f"//{postgres.user}@", f"//{role}@"))
    store.record_decision(_row("acct", line=LIMIT))
    assert _draw(store, 400.0)["status"] == "accepted"
    assert _repay(store, 100.0).status == "accepted"
    assert store.outstanding("acct") == 300.0
    with pytest.raises(Exception, match="append-only"), store._write() as tx:
        tx.rows("UPDATE credit_lines SET credit_limit = 1e9")
    with pytest.raises(Exception, match="permission denied"), store._write() as tx:
        tx.rows("DELETE FROM drawdowns")
    store.close()

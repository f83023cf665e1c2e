"""``payment_events`` is append-only like the rest of the audit trail (both back-ends), and the
SQLite write-ahead log stays bounded while the dashboards' reader keeps reading."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from yidai.audit import AuditStore, DecisionRow, PaymentEvent
from yidai.jobs.analytics.decisions import find_decisions


def _payment(decision_id: str, payload: str = "") -> DecisionRow:
    return DecisionRow(
        decision_id=decision_id, module="m", idempotency_key=decision_id,
        request_hash=f"h-{decision_id}", product="payment", entity_id="P1", outcome="allow",
        arm="champion", model_version=None, policy_version=None,
        response={"decision_id": decision_id}, record={"request": {"amount": 10.0}, "x": payload},
        payment_event=PaymentEvent("P1", 1_780_000_000_000_000, 10.0, "C1", "M1", "D1", "app"),
    )  # fmt: skip


def test_payment_events_refuse_update_and_delete(audit_url: str) -> None:
    store = AuditStore(audit_url)
    try:
        store.record_decision(_payment("d1"))
        refused = ["UPDATE payment_events SET amount = 0", "DELETE FROM payment_events"]
        if store.dialect == "postgresql":
            refused.append("TRUNCATE payment_events")
        for sql in refused:
            with pytest.raises(Exception, match="append-only"), store._write() as tx:
                tx.rows(sql)
        with store._read() as tx:
            assert tx.rows("SELECT decision_id, amount FROM payment_events") == [("d1", 10.0)]
    finally:
        store.close()


def test_the_wal_stays_bounded_under_writes_with_a_concurrent_reader(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    wal = tmp_path / "audit.db-wal"
    limit = 1 << 20
    # Waiting long enough for any read to end, every truncation succeeds: the bound below
    # holds whatever the machine's speed (the service waits 200 ms, then tries again later).
    store = AuditStore(url, wal_limit_bytes=limit, wal_truncate_wait_ms=30_000)
    stop = threading.Event()
    reads: list[int] = []
    failures: list[BaseException] = []

    def dashboard() -> None:  # the dashboards' read-only view, over and over
        try:
            while not stop.is_set() and len(reads) < 1_000_000:
                reads.append(len(find_decisions(url, product="payment", limit=500)))
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    reader = threading.Thread(target=dashboard, daemon=True)
    reader.start()
    largest = 0
    payload = "x" * 2000
    try:
        for i in range(4000):
            store.record_decision(_payment(f"d{i}", payload))
            largest = max(largest, os.stat(wal).st_size)
    finally:
        stop.set()
        reader.join(timeout=60)
        store.close()
    assert not failures and len(reads) > 0
    # ~10 MB of decisions went through a WAL that never held more than its limit plus the
    # commits between two size checks.
    assert largest < 2 * limit, f"WAL grew to {largest} bytes"


def test_a_reader_holding_a_transaction_delays_truncation_only_while_it_holds(
    tmp_path: Path,
) -> None:
    """The cause of the unbounded WAL: a reader inside a read transaction pins the log.  With
    no wait for readers, writes go on meanwhile; once it ends, the log is truncated again."""
    path = tmp_path / "audit.db"
    wal = tmp_path / "audit.db-wal"
    limit = 1 << 20
    store = AuditStore(f"sqlite:///{path}", wal_limit_bytes=limit, wal_truncate_wait_ms=0)
    try:
        store.record_decision(_payment("d0"))
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        assert reader.execute("SELECT COUNT(*) FROM decisions").fetchone() == (1,)
        for i in range(1, 500):
            store.record_decision(_payment(f"d{i}", "x" * 2000))
        pinned = os.stat(wal).st_size
        reader.execute("COMMIT")
        reader.close()
        for i in range(500, 1000):
            store.record_decision(_payment(f"d{i}", "x" * 2000))
        assert pinned > 4 * limit  # could not be reset while the reader held its snapshot
        assert os.stat(wal).st_size < 2 * limit  # truncated since, while writes went on
        assert store.count_decisions() == 1000
    finally:
        store.close()

"""The audit store: durable appends, atomic drawdowns across processes, idempotent replays."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from yidai.audit import AuditStore, DecisionRow, IdempotencyConflict, Line

LIMIT = 1_000.0


def _row(decision_id: str, key: str | None = None, open_line: bool = False) -> DecisionRow:
    return DecisionRow(
        decision_id=decision_id, module="m", idempotency_key=key, request_hash="h" + (key or ""),
        product="sme", entity_id="S1", outcome="approve", arm="champion",
        model_version="sme_pd:1", policy_version="p", response={"decision_id": decision_id},
        record={"features": {"x": 1.0}}, open_line=("S1", LIMIT) if open_line else None,
    )  # fmt: skip


def _draw(store: AuditStore, i: int, amount: float, key: str | None = None) -> dict[str, Any]:
    return json.loads(_draw_json(store, i, amount, key))


def _draw_json(store: AuditStore, i: int, amount: float, key: str | None = None) -> str:
    def limit(line: Line) -> tuple[float, str | None]:
        return line.credit_limit, None

    def respond(line: Line | None, lim: float, out: float, reject: str | None) -> dict[str, Any]:
        return {"status": "accepted" if reject is None else "rejected", "n": i, "before": out}

    return store.drawdown(
        drawdown_id=f"d{os.getpid()}-{i}-{threading.get_ident()}", account_id="acct",
        amount=amount, term_months=3, module="m", idempotency_key=key,
        request_hash=f"{amount}", effective_limit=limit, respond=respond,
    )  # fmt: skip


def _worker(url: str, n: int, out: Any) -> None:
    store = AuditStore(url)
    accepted = 0.0

    def run(offset: int) -> None:
        nonlocal accepted
        for i in range(n):
            amount = float(10 + (i * 7 + offset) % 40)
            if _draw(store, offset * 1000 + i, amount)["status"] == "accepted":
                accepted += amount

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(accepted)


def test_concurrent_drawdowns_in_two_processes_never_exceed_the_limit(audit_url: str) -> None:
    url = audit_url
    opener = AuditStore(url)
    opener.record_decision(_row("acct", open_line=True))
    opener.close()  # no pooled connection is inherited by the forked workers
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, 15, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    accepted = sum(queue.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    store = AuditStore(url)
    assert store.outstanding("acct") == pytest.approx(accepted)
    assert LIMIT - 50 < accepted <= LIMIT  # filled up, never beyond


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+pysqlite", "postgres"])
def test_decisions_survive_a_killed_process_and_replay_by_key(
    request: pytest.FixtureRequest, tmp_path: Path, scheme: str
) -> None:
    """``sqlite+pysqlite`` runs SQLite through SQLAlchemy, the code path of PostgreSQL."""
    if scheme == "postgres":
        url = request.getfixturevalue("postgres").new_database()
    else:
        url = f"{scheme}:///{tmp_path / 'audit.db'}"
    # A fresh interpreter (not a fork of this threaded test process) writes, then dies
    # without a clean shutdown or checkpoint.
    child = (
        "import os, sys; from yidai.audit import AuditStore, DecisionRow; "
        "AuditStore(sys.argv[1], hash_key=b'k' * 32).record_decision(DecisionRow("
        "decision_id='d1', module='m', "
        "idempotency_key='k1', request_hash='hk1', product='sme', entity_id='S1', "
        "outcome='approve', arm='champion', model_version='sme_pd:1', policy_version='p', "
        "response={'decision_id': 'd1'}, record={'features': {'x': 1.0}}, open_line=None)); "
        "os._exit(1)"
    )
    done = subprocess.run([sys.executable, "-c", child, url], capture_output=True, timeout=120)
    assert done.returncode == 1, done.stderr.decode()[-2000:]
    store = AuditStore(url, hash_key=b"k" * 32)  # the key of the killed process
    assert store.get_decision("d1") is not None
    replay = store.record_decision(_row("d2", key="k1"))
    assert json.loads(replay) == {"decision_id": "d1"}  # same key: the original decision
    assert store.count_decisions() == 1
    with pytest.raises(IdempotencyConflict):
        store.find_idempotent("m", "k1", "another-request")
    store.record_decision(_row("acct", open_line=True))
    first = _draw(store, 1, 100.0, key="dk")
    again = _draw(store, 2, 100.0, key="dk")
    assert first == again and store.outstanding("acct") == 100.0

"""Audit store per-operation cost on each backend: the embedded SQLite file and PostgreSQL
(a throwaway local cluster, or ``--url``): decision appends, an approval that opens a line,
a payment with its velocity read, drawdowns and repayments (line locked), idempotent
replays; then drawdowns from several threads on one hot line and on distinct lines.

    uv run python benchmarks/bench_audit_store.py [--ops 2000 --threads 4]
    uv run python benchmarks/bench_audit_store.py --backend postgres --url postgresql://...

The throwaway cluster runs with fsync=off (like the tests): its commit cost is a lower
bound; production PostgreSQL with synchronous_commit=on adds the WAL flush of its disk.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from yidai.audit import AuditStore, Booked, DecisionRow, Line, PaymentEvent, utc_now

START_US = 1_782_864_000_000_000  # 2026-07-01 00:00 UTC
ACCOUNTS = 200


def _decision(
    i: int, *, line: bool = False, payer: str | None = None, key: str | None = None
) -> DecisionRow:
    decision_id = uuid.uuid4().hex
    event = None
    if payer is not None:
        event = PaymentEvent(payer, START_US + i * 1_000_000, 12.5, "T1", None, "D1", "app")
    return DecisionRow(
        decision_id=decision_id, module="bench", idempotency_key=key, request_hash="0" * 64,
        product="payment" if payer else "sme", entity_id=payer or f"S{i}", outcome="approve",
        arm="champion", model_version="m/1", policy_version="p@bench",
        response={"decision_id": decision_id, "created_at": utc_now(), "pd": 0.0123},
        record={"request": {"sme_id": f"S{i}"}, "features": {f"f{j}": 0.5 for j in range(40)}},
        open_line=(f"S{i}", 1e9) if line else None, payment_event=event,
    )  # fmt: skip


def _limit(line: Line) -> tuple[float, str | None]:
    return line.credit_limit, None


def _draw(store: AuditStore, account: str, amount: float) -> str:
    def respond(line: Line | None, lim: float, out: float, reject: str | None) -> dict[str, Any]:
        status = "accepted" if reject is None else "rejected"
        return {"status": status, "created_at": utc_now(), "outstanding_before": out}

    return store.drawdown(
        drawdown_id=uuid.uuid4().hex, account_id=account, amount=amount, term_months=3,
        module="bench", idempotency_key=uuid.uuid4().hex, request_hash="d",
        effective_limit=_limit, respond=respond,
    )  # fmt: skip


def _repay(store: AuditStore, account: str, amount: float) -> Booked:
    def respond(line: Line | None, outstanding: float, reject: str | None) -> dict[str, Any]:
        return {"outstanding": outstanding, "reject": reject}

    return store.repay(
        repayment_id=uuid.uuid4().hex, account_id=account, amount=amount, module="bench",
        idempotency_key=uuid.uuid4().hex, request_hash="r", respond=respond,
    )  # fmt: skip


def _timed(n: int, op: Callable[[int], object]) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        op(i)
        out.append(time.perf_counter() - t0)
    return out


def _ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000.0


class _Cpu:
    """CPU seconds (user+sys) of this process and of the PostgreSQL server's processes."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.start = self._read()

    def _read(self) -> tuple[float, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        server = 0.0
        if self.server_pid is not None:
            root = psutil.Process(self.server_pid)
            for proc in [root, *root.children(recursive=True)]:
                try:
                    t = proc.cpu_times()
                    server += t.user + t.system
                except psutil.NoSuchProcess:
                    pass
        return own.ru_utime + own.ru_stime, server

    def spent(self) -> tuple[float, float]:
        now = self._read()
        return now[0] - self.start[0], now[1] - self.start[1]


def _run_backend(name: str, url: str, ops: int, threads: int, server_pid: int | None) -> None:
    store = AuditStore(url)
    for i in range(ACCOUNTS):
        store.record_decision(_decision(i, line=True))
    for i in range(ACCOUNTS):  # a balance to repay on every line
        _draw(store, _account(store, i), 1_000_000.0)
    load = os.getloadavg()
    cpu = _Cpu(server_pid)
    wall0 = time.perf_counter()
    phases: dict[str, list[float]] = {}
    phases["credit decision (1 insert)"] = _timed(
        ops, lambda i: store.record_decision(_decision(i))
    )
    phases["approval + line (2 inserts)"] = _timed(
        ops, lambda i: store.record_decision(_decision(i, line=True))
    )
    phases["payment: 24h read + decision + event"] = _timed(
        ops,
        lambda i: (
            store.recent_payments(f"P{i % 500}", START_US, START_US + i * 1_000_000),
            store.record_decision(_decision(i, payer=f"P{i % 500}")),
        ),
    )
    store.record_decision(_decision(0, key="k-replay"))
    phases["idempotent replay (read)"] = _timed(
        ops, lambda i: store.find_idempotent("bench", "k-replay", "0" * 64)
    )
    phases["drawdown (line locked)"] = _timed(
        ops, lambda i: _draw(store, _account(store, i % ACCOUNTS), 10.0)
    )
    phases["repayment (line locked)"] = _timed(
        ops, lambda i: _repay(store, _account(store, i % ACCOUNTS), 10.0)
    )
    wall = time.perf_counter() - wall0
    own_cpu, server_cpu = cpu.spent()
    print(f"\n== {name}  (load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    print(f"{'single thread, per operation':<40} {'p50 ms':>8} {'p99 ms':>8} {'ops/s':>8}")
    for phase, values in phases.items():
        rate = len(values) / sum(values)
        print(f"{phase:<40} {_ms(values, 50):8.3f} {_ms(values, 99):8.3f} {rate:8.0f}")
    print(
        f"single-thread phases: wall {wall:.1f} s, CPU client {own_cpu:.1f} s"
        + (f", server {server_cpu:.1f} s" if server_pid else " (SQLite: in-process)")
    )
    for label, pick in (
        ("one hot line", lambda t, i: _account(store, 0)),
        ("distinct lines", lambda t, i: _account(store, 1 + (t * 7919 + i) % (ACCOUNTS - 1))),
    ):
        _threaded(store, label, pick, ops, threads, server_pid)
    store.close()


def _threaded(
    store: AuditStore,
    label: str,
    pick: Callable[[int, int], str],
    ops: int,
    threads: int,
    server_pid: int | None,
) -> None:
    """``threads`` threads drawing at once on the lines ``pick(thread, i)`` chooses."""
    lat: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        barrier.wait()
        for i in range(ops // threads):
            t0 = time.perf_counter()
            _draw(store, pick(t, i), 1.0)
            lat[t].append(time.perf_counter() - t0)

    cpu = _Cpu(server_pid)
    t0 = time.perf_counter()
    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    elapsed = time.perf_counter() - t0
    own_cpu, server_cpu = cpu.spent()
    flat = [x for per in lat for x in per]
    print(
        f"{threads} threads drawing, {label:<15} {len(flat) / elapsed:8.0f} ops/s,"
        f" p50 {_ms(flat, 50):.3f} ms, p99 {_ms(flat, 99):.3f} ms;"
        f" CPU client {own_cpu:.1f} s" + (f", server {server_cpu:.1f} s" if server_pid else "")
    )


_ACCOUNT_IDS: dict[int, str] = {}


def _account(store: AuditStore, i: int) -> str:
    if not _ACCOUNT_IDS:
        with store._read() as tx:
            rows = tx.rows("SELECT account_id FROM credit_lines ORDER BY created_at")
        _ACCOUNT_IDS.update(enumerate(str(r[0]) for r in rows[:ACCOUNTS]))
    return _ACCOUNT_IDS[i]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--url", help="an existing PostgreSQL database (else a throwaway one)")
    parser.add_argument("--ops", type=int, default=2000, help="operations per phase")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB")
    backends = [b.strip() for b in args.backend.split(",")]
    if "sqlite" in backends:
        home = Path(tempfile.mkdtemp(prefix="bench-audit-"))
        try:
            _ACCOUNT_IDS.clear()
            _run_backend("SQLite (WAL, synchronous=NORMAL)", f"sqlite:///{home / 'a.db'}",
                         args.ops, args.threads, None)  # fmt: skip
        finally:
            shutil.rmtree(home, ignore_errors=True)
    if "postgres" in backends:
        _ACCOUNT_IDS.clear()
        if args.url:
            _run_backend("PostgreSQL (--url)", args.url, args.ops, args.threads, None)
            return
        from tests.support.pg_local import PostgresCluster

        cluster = PostgresCluster().start()
        try:
            pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
            name = "PostgreSQL (local throwaway cluster, loopback TCP, fsync=off)"
            _run_backend(name, cluster.new_database(), args.ops, args.threads, pid)
        finally:
            cluster.stop()
    print(json.dumps({"ops": args.ops, "threads": args.threads, "accounts": ACCOUNTS}))


if __name__ == "__main__":
    main()

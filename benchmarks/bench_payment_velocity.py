"""Audit-store cost of online payment velocity: the payer's last-24h read and the decision
append with its payment event (one transaction), on a store already holding many payments.

    uv run python benchmarks/bench_payment_velocity.py [--payers 5000 --events 200000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
import uuid
from pathlib import Path

import numpy as np

from features.request import US_PER_DAY
from yidai.audit import AuditStore, DecisionRow, PaymentEvent, utc_now

START_US = 1_782_864_000_000_000  # 2026-07-01 00:00 UTC


def _row(payer: str, ts_us: int, amount: float) -> DecisionRow:
    decision_id = uuid.uuid4().hex
    return DecisionRow(
        decision_id=decision_id,
        module="bench",
        idempotency_key=None,
        request_hash="0" * 64,
        product="payment",
        entity_id=payer,
        outcome="allow",
        arm="champion",
        model_version="payment_fraud/1",
        policy_version="payment@bench",
        response={"decision_id": decision_id, "created_at": utc_now()},
        record={"features": {}},
        payment_event=PaymentEvent(payer, ts_us, amount, "T1", None, "D1", "app"),
    )


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payers", type=int, default=5000)
    parser.add_argument("--events", type=int, default=200_000, help="payments stored first")
    parser.add_argument("--probes", type=int, default=5000, help="timed decisions")
    parser.add_argument("--home", type=Path, default=Path("var/bench-payment-velocity"))
    args = parser.parse_args()
    shutil.rmtree(args.home, ignore_errors=True)
    store = AuditStore(f"sqlite:///{args.home / 'audit.db'}")
    rng = np.random.default_rng(1)
    payers = [f"P{i:06d}" for i in rng.integers(0, args.payers, args.events)]
    stamps = np.sort(START_US + rng.integers(0, 30 * US_PER_DAY, args.events))
    t0 = time.perf_counter()
    for payer, ts in zip(payers, stamps.tolist(), strict=True):
        store.record_decision(_row(payer, ts, 10.0))
    fill = time.perf_counter() - t0
    reads: list[float] = []
    writes: list[float] = []
    sizes: list[int] = []
    end_us = int(stamps[-1])
    for i in range(args.probes):
        payer = f"P{int(rng.integers(0, args.payers)):06d}"
        ts = end_us + i * 1_000_000
        t = time.perf_counter()
        recent = store.recent_payments(payer, ts - US_PER_DAY, ts)
        reads.append(time.perf_counter() - t)
        t = time.perf_counter()
        store.record_decision(_row(payer, ts, 12.5))
        writes.append(time.perf_counter() - t)
        sizes.append(len(recent))
    store.close()
    print(f"store: {args.events:,} payments of {args.payers:,} payers ({fill:.1f} s to fill)")
    print(f"recent events per read: mean {statistics.mean(sizes):.1f}, max {max(sizes)}")
    print(f"last-24h read      p50 {_pct(reads, 50):.3f} ms  p99 {_pct(reads, 99):.3f} ms")
    print(f"decision + event   p50 {_pct(writes, 50):.3f} ms  p99 {_pct(writes, 99):.3f} ms")


if __name__ == "__main__":
    main()

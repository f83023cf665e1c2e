"""Shared pieces of the event generators: unique ids, POS and payment rows, fraud reports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.calendar import US_PER_DAY, Calendar
from simulator.landing import Batch
from yidai.core.contracts import CHANNELS, FRAUD_TYPES

SEQ_SPACE = 10_000_000
STATUS_APPROVED, STATUS_DECLINED, STATUS_REFUND, STATUS_CHARGEBACK = range(4)
ENTRY_CHIP, ENTRY_CONTACTLESS, ENTRY_MAGSTRIPE, ENTRY_MANUAL = range(4)
PAY_E, PAY_BILL, PAY_OUT, PAY_IN = range(4)  # payment_type codes
PAYER_CUSTOMER, PAYER_SME = range(2)
REF_POS, REF_PAYMENT = range(2)
CH = {name: i for i, name in enumerate(CHANNELS)}
FT = {name: i for i, name in enumerate(FRAUD_TYPES)}


class IdAlloc:
    """Unique event numbers for one (stream kind, chunk, month): never collide across them."""

    def __init__(self, kind: int, chunk: int, month: int) -> None:
        self.base = ((kind * 1000 + chunk) * 100 + month) * SEQ_SPACE
        self.next: dict[str, int] = {}

    def take(self, space: str, n: int) -> np.ndarray:
        start = self.next.get(space, 0)
        if start + n > SEQ_SPACE:
            raise ValueError(f"more than {SEQ_SPACE} {space} ids in one chunk-month")
        self.next[space] = start + n
        return self.base + start + np.arange(n, dtype=np.int64)


@dataclass
class FraudLog:
    """Every fraudulent transaction or payment (reported or not): the fraud truth."""

    parts: list[dict[str, np.ndarray]] = field(default_factory=list)

    def add(
        self,
        ref_type: int,
        ref: np.ndarray,
        fraud_type: str,
        ts: np.ndarray,
        amount: np.ndarray,
        reported_at: np.ndarray,
    ) -> None:
        n = len(ref)
        if n == 0:
            return
        self.parts.append(
            {
                "ref_type": np.full(n, ref_type, np.int64),
                "ref": ref.astype(np.int64),
                "fraud_type": np.full(n, FT[fraud_type], np.int64),
                "ts": ts.astype(np.int64),
                "amount": amount.astype(np.float64),
                "reported_at": reported_at.astype(np.int64),
            }
        )

    def merged(self) -> dict[str, np.ndarray]:
        keys = ("ref_type", "ref", "fraud_type", "ts", "amount", "reported_at")
        if not self.parts:
            return {k: np.zeros(0, np.float64 if k == "amount" else np.int64) for k in keys}
        return {k: np.concatenate([p[k] for p in self.parts]) for k in keys}


NOT_REPORTED = np.iinfo(np.int64).max


def fraud_reports(
    rng: np.random.Generator,
    cal: Calendar,
    ids: IdAlloc,
    log: FraudLog,
    ref_type: int,
    ref: np.ndarray,
    fraud_type: str,
    ts: np.ndarray,
    amount: np.ndarray,
    report_p: float,
    median_delay_days: float,
) -> Batch:
    """Log fraud rows in the truth and return the reports the bank receives within the period.

    A report comes with probability ``report_p`` after a log-normal delay (days to weeks).
    """
    n = len(ref)
    delay = np.exp(np.log(median_delay_days) + rng.normal(0, 0.6, n)).clip(0.5, 120)
    reported_at = ts + (delay * US_PER_DAY).astype(np.int64)
    reported = rng.random(n) < report_p
    in_period = cal.day_of_us(reported_at) < cal.n_days
    known = reported & in_period
    log.add(ref_type, ref, fraud_type, ts, amount, np.where(known, reported_at, NOT_REPORTED))
    k = np.flatnonzero(known)
    return Batch(
        "fraud_reports",
        {
            "report_id": ids.take("report", len(k)),
            "reported_at": reported_at[k],
            "ref_type": np.full(len(k), ref_type, np.int64),
            "ref_id": ref[k],
            "fraud_type": np.full(len(k), FT[fraud_type], np.int64),
            "amount": np.round(amount[k], 2),
        },
        cal.day_of_us(reported_at[k]),
    )


def pos_batch(
    cal: Calendar,
    txn: np.ndarray,
    ts: np.ndarray,
    card: np.ndarray,
    customer: np.ndarray,
    merchant: np.ndarray,
    terminal: np.ndarray,
    mcc: np.ndarray,
    amount: np.ndarray,
    entry: np.ndarray,
    status: np.ndarray,
) -> Batch:
    """POS transaction rows; ``customer`` < 0 means another bank's card (null customer)."""
    return Batch(
        "pos_transactions",
        {
            "txn_id": txn,
            "ts": ts,
            "card_token": card,
            "customer_id": np.maximum(customer, 0),
            "merchant_id": merchant,
            "terminal_id": terminal,
            "mcc": mcc,
            "amount": np.round(amount, 2),
            "entry_mode": entry,
            "status": status,
        },
        cal.day_of_us(ts),
        {"customer_id": customer < 0},
    )


def payment_batch(
    cal: Calendar,
    pid: np.ndarray,
    ts: np.ndarray,
    payer_type: int,
    payer: np.ndarray,
    ptype: np.ndarray,
    amount: np.ndarray,
    channel: np.ndarray,
    device: np.ndarray,
    failed: np.ndarray,
    counterparty: np.ndarray,
    bill_category: np.ndarray | None = None,
    due_epoch_day: np.ndarray | None = None,
) -> Batch:
    """Payment log rows; ``device`` < 0 is a null device, bill columns null unless given."""
    n = len(pid)
    cat = bill_category if bill_category is not None else np.full(n, -1, np.int64)
    due = due_epoch_day if due_epoch_day is not None else np.full(n, -1, np.int64)
    return Batch(
        "payments",
        {
            "payment_id": pid,
            "ts": ts,
            "payer_type": np.full(n, payer_type, np.int64),
            "payer_id": payer,
            "payment_type": ptype,
            "bill_category": np.maximum(cat, 0),
            "counterparty_id": counterparty,
            "amount": np.round(np.maximum(amount, 0.01), 2),
            "channel": channel,
            "device_id": np.maximum(device, 0),
            "status": failed.astype(np.int64),
            "due_date": np.maximum(due, 0),
        },
        cal.day_of_us(ts),
        {"bill_category": cat < 0, "device_id": device < 0, "due_date": due < 0},
    )


def choose_by_weight(
    rng: np.random.Generator, candidates: np.ndarray, weight: np.ndarray, n: int
) -> np.ndarray:
    """``n`` draws from ``candidates`` proportionally to ``weight``."""
    if len(candidates) == 0:
        raise ValueError("no candidates to choose from")
    cum = np.cumsum(weight.astype(np.float64))
    pick = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
    return candidates[np.minimum(pick, len(candidates) - 1)]


def pick_channel(rng: np.random.Generator, n: int, probs: dict[str, float]) -> np.ndarray:
    """Channel codes drawn from ``probs`` (channel name -> probability)."""
    names = list(probs)
    p = np.array([probs[k] for k in names])
    codes = np.array([CH[k] for k in names])
    return codes[rng.choice(len(names), n, p=p / p.sum())]

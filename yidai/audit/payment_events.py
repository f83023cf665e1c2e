"""Payment velocity: every scored payment, and a payer's recent ones.

Every scored payment appends a ``payment_events`` row (payer, time, amount, payee or
terminal, merchant, device, channel; never a card token) in the decision's transaction; the
service reads a payer's last 24 hours from it (index ``(payer_id, ts_us)``) as the feature
store's ``recent`` events, so intra-day velocity is shared by every worker.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from yidai.audit.backends import Database, Tx
from yidai.audit.rows import PaymentEvent

INSERT_PAYMENT_EVENT = (
    "INSERT INTO payment_events (decision_id, payer_id, ts_us, amount, counterpart_id,"
    " merchant_id, device_id, channel) VALUES (:decision_id, :payer_id, :ts_us, :amount,"
    " :counterpart_id, :merchant_id, :device_id, :channel)"
)
_RECENT_PAYMENTS = (
    "SELECT ts_us, amount, counterpart_id, device_id, channel FROM payment_events"
    " WHERE payer_id = :payer AND ts_us >= :lo AND ts_us < :hi ORDER BY ts_us"
)


def append_payment_event(tx: Tx, decision_id: str, event: PaymentEvent) -> None:
    """Append the scored payment of decision ``decision_id`` (inside its transaction)."""
    tx.rows(
        INSERT_PAYMENT_EVENT,
        {
            "decision_id": decision_id,
            "payer_id": event.payer_id,
            "ts_us": event.ts_us,
            "amount": event.amount,
            "counterpart_id": event.counterpart_id,
            "merchant_id": event.merchant_id,
            "device_id": event.device_id,
            "channel": event.channel,
        },
    )


def recent_payments(
    db: Database, payer_id: str, since_us: int, before_us: int
) -> list[dict[str, Any]]:
    """The payer's scored payments with ``since_us <= ts < before_us`` (one indexed range
    read), oldest first, as the feature store's ``recent`` events (ts as datetime64[us])."""
    with db.read() as tx:
        found = tx.rows(_RECENT_PAYMENTS, {"payer": payer_id, "lo": since_us, "hi": before_us})
    return [
        {
            "ts": np.datetime64(int(ts_us), "us"),
            "amount": float(amount),
            "counterpart_id": counterpart_id,
            "device_id": device_id,
            "channel": channel,
        }
        for ts_us, amount, counterpart_id, device_id, channel in found
    ]

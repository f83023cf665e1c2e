"""The decision log: append-only decisions, replayed by idempotency key.

An idempotency key is unique per calling module (unique index), so a retry gets the stored
response back and a concurrent duplicate loses the race to the first insert.  A decision is
appended with what it starts in the same transaction: the line an approval opens and the
scored payment's velocity event.
"""

from __future__ import annotations

import json
from typing import Any

from yidai.audit.backends import Database
from yidai.audit.hashing import RequestHasher
from yidai.audit.ledger import open_line
from yidai.audit.payment_events import append_payment_event
from yidai.audit.rows import DecisionRow, dumps, utc_now

INSERT_DECISION = (
    "INSERT INTO decisions (decision_id, created_at, module, idempotency_key, request_hash,"
    " product, entity_id, outcome, arm, model_version, policy_version, response, record)"
    " VALUES (:decision_id, :created_at, :module, :idempotency_key, :request_hash, :product,"
    " :entity_id, :outcome, :arm, :model_version, :policy_version, :response, :record)"
)
_BY_IDEM = (
    "SELECT response, request_hash FROM decisions WHERE module = :module AND idempotency_key = :key"
)
_BY_ID = "SELECT product, created_at, response, record FROM decisions WHERE decision_id = :id"


class DecisionLog:
    """Decisions in the audit database, with their idempotency keys."""

    def __init__(self, db: Database, hasher: RequestHasher) -> None:
        self._db = db
        self._hasher = hasher

    def find_idempotent(self, module: str, key: str, request_hash: str) -> str | None:
        """The stored response (JSON) of an earlier request with this key, or None; an
        :class:`~yidai.audit.hashing.IdempotencyConflict` if it was another request."""
        with self._db.read() as tx:
            found = tx.rows(_BY_IDEM, {"module": module, "key": key})
        if not found:
            return None
        response, stored_digest = found[0]
        self._hasher.check_replay(str(stored_digest), request_hash, key)
        return str(response)

    def record(self, row: DecisionRow) -> str:
        """Append a decision (and open its line); returns the response JSON to send.

        If a concurrent request with the same idempotency key won the race, its response is
        returned instead (the caller's decision is discarded, nothing is decided twice).
        """
        now = row.response.get("created_at") or utc_now()
        response = dumps(row.response)
        params = {
            "decision_id": row.decision_id,
            "created_at": now,
            "module": row.module,
            "idempotency_key": row.idempotency_key,
            "request_hash": self._hasher.digest(row.request_hash),
            "product": row.product,
            "entity_id": row.entity_id,
            "outcome": row.outcome,
            "arm": row.arm,
            "model_version": row.model_version,
            "policy_version": row.policy_version,
            "response": response,
            "record": dumps(row.record),
        }
        try:
            single = row.open_line is None and row.payment_event is None
            with self._db.write(single=single) as tx:
                tx.rows(INSERT_DECISION, params)
                if row.payment_event is not None:
                    append_payment_event(tx, row.decision_id, row.payment_event)
                if row.open_line is not None:
                    borrower_id, credit_limit = row.open_line
                    open_line(tx, row.decision_id, row.product, borrower_id, credit_limit, now)
        except self._db.integrity_errors:
            if row.idempotency_key is None:
                raise
            earlier = self.find_idempotent(row.module, row.idempotency_key, row.request_hash)
            if earlier is None:
                raise
            return earlier
        return response

    def get(self, decision_id: str) -> dict[str, Any] | None:
        """A stored decision: product, created_at, response and the full audit record."""
        with self._db.read() as tx:
            found = tx.rows(_BY_ID, {"id": decision_id})
        if not found:
            return None
        product, created_at, response, record = found[0]
        return {
            "product": product,
            "created_at": created_at,
            "response": json.loads(response),
            "record": json.loads(record),
        }

    def count(self) -> int:
        """How many decisions are stored."""
        with self._db.read() as tx:
            return int(tx.rows("SELECT COUNT(*) FROM decisions")[0][0])

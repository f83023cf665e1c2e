"""The write facade of the audit store: decisions, the ledger and payment velocity."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from yidai.audit.backends import WAL_LIMIT_BYTES, WAL_TRUNCATE_WAIT_MS, Database, Tx
from yidai.audit.decision_log import DecisionLog
from yidai.audit.hashing import RequestHasher
from yidai.audit.ledger import Ledger
from yidai.audit.payment_events import recent_payments
from yidai.audit.rows import Booked, DecisionRow, Line

if TYPE_CHECKING:
    from sqlalchemy import Engine


class AuditStore:
    """The decision audit store and ledger: ``sqlite:///path`` or ``postgresql://...``."""

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "NORMAL",
        hash_key: bytes | None = None,
        previous_hash_keys: Sequence[bytes] = (),
        wal_limit_bytes: int = WAL_LIMIT_BYTES,
        wal_truncate_wait_ms: int = WAL_TRUNCATE_WAIT_MS,
    ) -> None:
        """``hash_key``: the secret of stored request hashes (:func:`load_hash_key`); without
        one, a random key of this process (conflicts are then detected only within it).
        ``previous_hash_keys``: keys of before a rotation, whose stored hashes still match."""
        self.url = url
        self._hasher = RequestHasher(hash_key, previous_hash_keys)
        self._db = Database(
            url,
            sqlite_synchronous=sqlite_synchronous,
            wal_limit_bytes=wal_limit_bytes,
            wal_truncate_wait_ms=wal_truncate_wait_ms,
        )
        self._decisions = DecisionLog(self._db, self._hasher)
        self._ledger = Ledger(self._db, self._hasher)
        self.is_sqlite = self._db.is_sqlite
        self.dialect = self._db.dialect
        self.engine: Engine | None = self._db.engine
        # How many calls may use the store at once (the connection pool's size); None: the
        # thin SQLite adapter, whose calls take tens of microseconds and need no thread.
        self.max_concurrent_calls = self._db.max_concurrent_calls

    def close(self) -> None:
        self._db.close()

    def request_digest(self, request_hash: str) -> str:
        """What is stored for a request fingerprint: its HMAC-SHA256 under the store's key."""
        return self._hasher.digest(request_hash)

    @contextmanager
    def _write(self, single: bool = False) -> Iterator[Tx]:
        """A raw write transaction (tests and benchmarks of the store itself)."""
        with self._db.write(single) as tx:
            yield tx

    @contextmanager
    def _read(self) -> Iterator[Tx]:
        """A raw read (tests and benchmarks of the store itself; others: AuditReader)."""
        with self._db.read() as tx:
            yield tx

    # ------------------------------------------------------------------ decisions
    def find_idempotent(self, module: str, key: str, request_hash: str) -> str | None:
        """The stored response (JSON) of an earlier request with this key, or None."""
        return self._decisions.find_idempotent(module, key, request_hash)

    def record_decision(self, row: DecisionRow) -> str:
        """Append a decision (and open its line); returns the response JSON to send.

        If a concurrent request with the same idempotency key won the race, its response is
        returned instead (the caller's decision is discarded, nothing is decided twice).
        """
        return self._decisions.record(row)

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        """A stored decision: product, created_at, response and the full audit record."""
        return self._decisions.get(decision_id)

    def count_decisions(self) -> int:
        return self._decisions.count()

    def recent_payments(self, payer_id: str, since_us: int, before_us: int) -> list[dict[str, Any]]:
        """The payer's scored payments with ``since_us <= ts < before_us`` (one indexed range
        read), oldest first, as the feature store's ``recent`` events (ts as datetime64[us])."""
        return recent_payments(self._db, payer_id, since_us, before_us)

    # ------------------------------------------------------------------ ledger
    def line_state(self, account_id: str) -> tuple[Line, float] | None:
        """The line and its outstanding balance (read together), or None if no such line."""
        return self._ledger.line_state(account_id)

    def line_of(self, product: str, borrower_id: str) -> str | None:
        """The account id of the borrower's line of ``product``, or None (issue 16)."""
        return self._ledger.line_of(product, borrower_id)

    def committed(self, product: str) -> tuple[float, int]:
        """Sum of the limits and count of the ledger's lines of ``product`` (issue 16)."""
        return self._ledger.committed(product)

    def adopt_line(
        self,
        account_id: str,
        product: str,
        borrower_id: str,
        credit_limit: float,
        opening_balance: float,
        source: str,
    ) -> None:
        """Register a loan-book line under its own account id (issue 16; see the Ledger)."""
        self._ledger.adopt_line(
            account_id, product, borrower_id, credit_limit, opening_balance, source
        )

    def outstanding(self, account_id: str) -> float:
        """Accepted drawdowns minus accepted repayments of an account (to the fen)."""
        return self._ledger.outstanding(account_id)

    def drawdown(
        self,
        *,
        drawdown_id: str,
        account_id: str,
        amount: float,
        term_months: int,
        module: str,
        idempotency_key: str | None,
        request_hash: str,
        effective_limit: Callable[[Line], tuple[float, str | None]],
        respond: Callable[[Line | None, float, float, str | None], dict[str, Any]],
    ) -> str:
        """Check and book one drawdown atomically; returns the response JSON to send.

        ``effective_limit(line)`` gives the limit in force and a blocking reason code (e.g. a
        frozen merchant line); ``respond(line, limit, outstanding, reject_code)`` builds the
        response, with ``reject_code`` None when the drawdown is accepted.  Rejected drawdowns
        are recorded too.
        """
        return self._ledger.drawdown(
            drawdown_id=drawdown_id, account_id=account_id, amount=amount,
            term_months=term_months, module=module, idempotency_key=idempotency_key,
            request_hash=request_hash, effective_limit=effective_limit, respond=respond,
        )  # fmt: skip

    def repay(
        self,
        *,
        repayment_id: str,
        account_id: str,
        amount: float,
        module: str,
        idempotency_key: str | None,
        request_hash: str,
        respond: Callable[[Line | None, float, str | None], dict[str, Any]],
    ) -> Booked:
        """Check and book one repayment atomically against the line's outstanding balance.

        Never below zero: a repayment above the outstanding balance is rejected
        (``RP_EXCEEDS_OUTSTANDING``), one on no known line too (``RP_UNKNOWN_ACCOUNT``).
        ``respond(line, outstanding, reject_code)`` builds the response (``reject_code``
        None: accepted) while the line is locked.  Rejected repayments are recorded too, so a
        retry with the same idempotency key gets the same answer.
        """
        return self._ledger.repay(
            repayment_id=repayment_id, account_id=account_id, amount=amount, module=module,
            idempotency_key=idempotency_key, request_hash=request_hash, respond=respond,
        )  # fmt: skip

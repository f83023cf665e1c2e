"""The ledger of credit lines, drawdowns and repayments.

A line's outstanding balance is its accepted drawdowns minus its accepted repayments.
Drawdowns and repayments are checked and booked atomically against the line: SQLite takes
the write lock up front (``BEGIN IMMEDIATE``), PostgreSQL locks the line row
(``SELECT ... FOR UPDATE``), so two concurrent drawdowns can never together exceed the
available amount, nor two repayments take the balance below zero.  Rejected drawdowns and
repayments are recorded too, so a retry with the same idempotency key gets the same answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from yidai.audit.backends import Database, Tx
from yidai.audit.hashing import RequestHasher
from yidai.audit.rows import Booked, Line, dumps, to_fen, utc_now

INSERT_LINE = (
    "INSERT INTO credit_lines (account_id, product, borrower_id, credit_limit, decision_id,"
    " created_at) VALUES (:account_id, :product, :borrower_id, :credit_limit, :decision_id,"
    " :created_at)"
)
_LINE = "SELECT product, borrower_id, credit_limit FROM credit_lines WHERE account_id = :a"
_LINE_OF_BORROWER = (
    "SELECT account_id FROM credit_lines WHERE product = :p AND borrower_id = :b"
    " ORDER BY created_at, account_id"
)
_COMMITTED = "SELECT COALESCE(SUM(credit_limit), 0), COUNT(*) FROM credit_lines WHERE product = :p"
#: The module a line's opening balance is booked under when the ledger adopts a line of the
#: bank's loan book (a published nightly limit): the balance the book said was owed.
LOAN_BOOK_MODULE = "loan-book"
_OUTSTANDING = (
    "SELECT (SELECT COALESCE(SUM(amount), 0) FROM drawdowns"
    " WHERE account_id = :a AND status = 'accepted')"
    " - (SELECT COALESCE(SUM(amount), 0) FROM repayments"
    " WHERE account_id = :a AND status = 'accepted')"
)
INSERT_DRAW = (
    "INSERT INTO drawdowns (drawdown_id, account_id, created_at, module, idempotency_key,"
    " request_hash, amount, term_months, status, response) VALUES (:drawdown_id, :account_id,"
    " :created_at, :module, :idempotency_key, :request_hash, :amount, :term_months, :status,"
    " :response)"
)
INSERT_REPAYMENT = (
    "INSERT INTO repayments (repayment_id, account_id, created_at, module, idempotency_key,"
    " request_hash, amount, status, response) VALUES (:repayment_id, :account_id, :created_at,"
    " :module, :idempotency_key, :request_hash, :amount, :status, :response)"
)
_LEDGER_BY_IDEM = {
    table: f"SELECT response, request_hash, status FROM {table}"
    " WHERE module = :module AND idempotency_key = :key"
    for table in ("drawdowns", "repayments")
}


def open_line(
    tx: Tx,
    account_id: str,
    product: str,
    borrower_id: str,
    credit_limit: float,
    created_at: str,
    decision_id: str | None = None,
) -> None:
    """Append a line: the one an approved decision opens (inside the decision's transaction;
    the account id is the decision id) or one adopted from the loan book (``decision_id``
    names its source)."""
    tx.rows(
        INSERT_LINE,
        {
            "account_id": account_id,
            "product": product,
            "borrower_id": borrower_id,
            "credit_limit": credit_limit,
            "decision_id": account_id if decision_id is None else decision_id,
            "created_at": created_at,
        },
    )


def _line(tx: Tx, account_id: str, suffix: str = "") -> Line | None:
    found = tx.rows(_LINE + suffix, {"a": account_id})
    if not found:
        return None
    product, borrower_id, credit_limit = found[0]
    return Line(account_id, product, borrower_id, float(credit_limit))


def _outstanding(tx: Tx, account_id: str) -> float:
    return to_fen(tx.rows(_OUTSTANDING, {"a": account_id})[0][0])


# decide(line, outstanding) -> (the response, with its status; the row's own columns)
Decide = Callable[[Line | None, float], tuple[dict[str, Any], dict[str, Any]]]


class Ledger:
    """Lines, drawdowns and repayments in the audit database."""

    def __init__(self, db: Database, hasher: RequestHasher) -> None:
        self._db = db
        self._hasher = hasher

    def line_state(self, account_id: str) -> tuple[Line, float] | None:
        """The line and its outstanding balance (read together), or None if no such line."""
        with self._db.read() as tx:
            line = _line(tx, account_id)
            return None if line is None else (line, _outstanding(tx, account_id))

    def line_of(self, product: str, borrower_id: str) -> str | None:
        """The account id of the borrower's line of ``product`` (one per borrower), or None."""
        with self._db.read() as tx:
            found = tx.rows(_LINE_OF_BORROWER, {"p": product, "b": borrower_id})
        return str(found[0][0]) if found else None

    def committed(self, product: str) -> tuple[float, int]:
        """The lines of ``product`` in the ledger: the sum of their limits and their count."""
        with self._db.read() as tx:
            total, count = tx.rows(_COMMITTED, {"p": product})[0]
        return float(total), int(count)

    def adopt_line(
        self,
        account_id: str,
        product: str,
        borrower_id: str,
        credit_limit: float,
        opening_balance: float,
        source: str,
    ) -> None:
        """Register a line of the loan book (a published nightly limit) under its own account
        id, with the balance the book says is owed booked as its opening drawdown (module
        :data:`LOAN_BOOK_MODULE`).  Idempotent: a line already known is left as it is."""
        now = utc_now()
        try:
            with self._db.write() as tx:
                if _line(tx, account_id) is not None:
                    return
                open_line(
                    tx, account_id, product, borrower_id, credit_limit, now, decision_id=source[:40]
                )
                if opening_balance > 0:
                    response = {"account_id": account_id, "opening_balance": opening_balance}
                    tx.rows(
                        INSERT_DRAW,
                        {
                            "drawdown_id": f"open-{account_id}"[:40],
                            "account_id": account_id,
                            "created_at": now,
                            "module": LOAN_BOOK_MODULE,
                            "idempotency_key": f"open-{account_id}",
                            "request_hash": self._hasher.digest(f"open:{account_id}"),
                            "amount": to_fen(opening_balance),
                            "term_months": 0,
                            "status": "accepted",
                            "response": dumps(response),
                        },
                    )
        except self._db.integrity_errors:  # adopted concurrently by another request: same line
            return

    def outstanding(self, account_id: str) -> float:
        """Accepted drawdowns minus accepted repayments of an account (to the fen)."""
        with self._db.read() as tx:
            return _outstanding(tx, account_id)

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
        """Check and book one drawdown atomically; returns the response JSON to send
        (see :meth:`yidai.audit.AuditStore.drawdown`)."""

        def decide(line: Line | None, outstanding: float) -> tuple[dict[str, Any], dict[str, Any]]:
            if line is None:
                response = respond(None, 0.0, 0.0, "DD_UNKNOWN_ACCOUNT")
            else:
                limit, reject = effective_limit(line)
                if reject is None and outstanding + amount > limit + 1e-9:
                    reject = "DD_INSUFFICIENT_LIMIT"
                response = respond(line, limit, outstanding, reject)
            return response, {"drawdown_id": drawdown_id, "term_months": term_months}

        booked = self._book(
            "drawdowns", INSERT_DRAW, account_id, amount, module, idempotency_key,
            request_hash, decide,
        )  # fmt: skip
        return booked.json

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
        """Check and book one repayment atomically against the line's outstanding balance
        (see :meth:`yidai.audit.AuditStore.repay`)."""

        def decide(line: Line | None, outstanding: float) -> tuple[dict[str, Any], dict[str, Any]]:
            reject = (
                "RP_UNKNOWN_ACCOUNT" if line is None
                else "RP_EXCEEDS_OUTSTANDING" if amount > outstanding
                else None
            )  # fmt: skip
            status = "accepted" if reject is None else "rejected"
            return {**respond(line, outstanding, reject), "status": status}, {
                "repayment_id": repayment_id
            }

        return self._book(
            "repayments", INSERT_REPAYMENT, account_id, amount, module, idempotency_key,
            request_hash, decide,
        )  # fmt: skip

    def _book(
        self,
        table: str,
        insert: str,
        account_id: str,
        amount: float,
        module: str,
        idempotency_key: str | None,
        request_hash: str,
        decide: Decide,
    ) -> Booked:
        """Lock the line, read its outstanding balance, let ``decide`` answer, append the row.

        ``decide(line, outstanding)`` returns (the response, with its ``status``; the row's
        own columns).  A replayed idempotency key returns the stored row instead.
        """
        if idempotency_key is not None:
            earlier = self._replay(table, module, idempotency_key, request_hash)
            if earlier is not None:
                return earlier
        try:
            with self._db.write() as tx:
                line = _line(tx, account_id, self._db.for_update)
                outstanding = 0.0 if line is None else _outstanding(tx, account_id)
                response, columns = decide(line, outstanding)
                booked = Booked(str(response["status"]), dumps(response))
                tx.rows(
                    insert,
                    {
                        **columns,
                        "account_id": account_id,
                        "created_at": response.get("created_at") or utc_now(),
                        "module": module,
                        "idempotency_key": idempotency_key,
                        "request_hash": self._hasher.digest(request_hash),
                        "amount": amount,
                        "status": booked.status,
                        "response": booked.json,
                    },
                )
        except self._db.integrity_errors:
            if idempotency_key is None:
                raise
            earlier = self._replay(table, module, idempotency_key, request_hash)
            if earlier is None:
                raise
            return earlier
        return booked

    def _replay(self, table: str, module: str, key: str, request_hash: str) -> Booked | None:
        """The row booked earlier with this idempotency key (a conflict if for another
        request), or None."""
        with self._db.read() as tx:
            found = tx.rows(_LEDGER_BY_IDEM[table], {"module": module, "key": key})
        if not found:
            return None
        response, stored_digest, status = found[0]
        self._hasher.check_replay(str(stored_digest), request_hash, key)
        return Booked(str(status), str(response))

"""Append-only audit store of decisions, and the ledger of credit lines and drawdowns.

One set of portable SQL statements (named ``:params``) for the embedded SQLite default and a
PostgreSQL URL in production: SQLite runs them through a thin ``sqlite3`` adapter (one
connection per thread; the hot path costs tens of microseconds), any other URL through
SQLAlchemy.  SQLite runs in WAL mode with ``synchronous=NORMAL`` by default:
a committed decision survives a crash of the service process (the WAL is written before the
response returns); ``synchronous=FULL`` (setting ``audit_sqlite_synchronous``) adds an fsync
per commit for power-loss durability.  Rows are only ever inserted, never updated.

Every scored payment also appends a ``payment_events`` row (payer, time, amount, payee or
terminal, merchant, device, channel; never a card token) in the decision's transaction; the
service reads a payer's last 24 hours from it (index ``(payer_id, ts_us)``) as the feature
store's ``recent`` events, so intra-day velocity is shared by every worker.

Drawdowns are checked atomically against the line: SQLite takes the write lock up front
(``BEGIN IMMEDIATE``), PostgreSQL locks the line row (``SELECT ... FOR UPDATE``), so two
concurrent drawdowns can never together exceed the available amount.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from yidai.errors import YidaiError

log = logging.getLogger(__name__)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS decisions (
        decision_id VARCHAR(40) PRIMARY KEY,
        created_at VARCHAR(32) NOT NULL,
        module VARCHAR(64) NOT NULL,
        idempotency_key VARCHAR(128),
        request_hash VARCHAR(64) NOT NULL,
        product VARCHAR(16) NOT NULL,
        entity_id VARCHAR(64) NOT NULL,
        outcome VARCHAR(16) NOT NULL,
        arm VARCHAR(16) NOT NULL,
        model_version VARCHAR(80),
        policy_version VARCHAR(80),
        response TEXT NOT NULL,
        record TEXT NOT NULL)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS decisions_idem ON decisions (module, idempotency_key)",
    "CREATE INDEX IF NOT EXISTS decisions_entity ON decisions (product, entity_id)",
    """CREATE TABLE IF NOT EXISTS credit_lines (
        account_id VARCHAR(40) PRIMARY KEY,
        product VARCHAR(16) NOT NULL,
        borrower_id VARCHAR(64) NOT NULL,
        credit_limit DOUBLE PRECISION NOT NULL,
        decision_id VARCHAR(40) NOT NULL,
        created_at VARCHAR(32) NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS drawdowns (
        drawdown_id VARCHAR(40) PRIMARY KEY,
        account_id VARCHAR(40) NOT NULL,
        created_at VARCHAR(32) NOT NULL,
        module VARCHAR(64) NOT NULL,
        idempotency_key VARCHAR(128),
        request_hash VARCHAR(64) NOT NULL,
        amount DOUBLE PRECISION NOT NULL,
        term_months INTEGER NOT NULL,
        status VARCHAR(16) NOT NULL,
        response TEXT NOT NULL)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS drawdowns_idem ON drawdowns (module, idempotency_key)",
    "CREATE INDEX IF NOT EXISTS drawdowns_account ON drawdowns (account_id, status)",
    # Every scored payment (no card token): the payer's intra-day velocity for later ones.
    """CREATE TABLE IF NOT EXISTS payment_events (
        decision_id VARCHAR(40) PRIMARY KEY,
        payer_id VARCHAR(64) NOT NULL,
        ts_us BIGINT NOT NULL,
        amount DOUBLE PRECISION NOT NULL,
        counterpart_id VARCHAR(64),
        merchant_id VARCHAR(64),
        device_id VARCHAR(64),
        channel VARCHAR(32))""",
    "CREATE INDEX IF NOT EXISTS payment_events_payer_ts ON payment_events (payer_id, ts_us)",
)

_INSERT_DECISION = (
    "INSERT INTO decisions (decision_id, created_at, module, idempotency_key, request_hash,"
    " product, entity_id, outcome, arm, model_version, policy_version, response, record)"
    " VALUES (:decision_id, :created_at, :module, :idempotency_key, :request_hash, :product,"
    " :entity_id, :outcome, :arm, :model_version, :policy_version, :response, :record)"
)
_INSERT_LINE = (
    "INSERT INTO credit_lines (account_id, product, borrower_id, credit_limit, decision_id,"
    " created_at) VALUES (:account_id, :product, :borrower_id, :credit_limit, :decision_id,"
    " :created_at)"
)
_INSERT_PAYMENT_EVENT = (
    "INSERT INTO payment_events (decision_id, payer_id, ts_us, amount, counterpart_id,"
    " merchant_id, device_id, channel) VALUES (:decision_id, :payer_id, :ts_us, :amount,"
    " :counterpart_id, :merchant_id, :device_id, :channel)"
)
_RECENT_PAYMENTS = (
    "SELECT ts_us, amount, counterpart_id, device_id, channel FROM payment_events"
    " WHERE payer_id = :payer AND ts_us >= :lo AND ts_us < :hi ORDER BY ts_us"
)
_BY_IDEM = (
    "SELECT response, request_hash FROM decisions WHERE module = :module AND idempotency_key = :key"
)
_BY_ID = "SELECT product, created_at, response, record FROM decisions WHERE decision_id = :id"
_DRAW_BY_IDEM = (
    "SELECT response, request_hash FROM drawdowns WHERE module = :module AND idempotency_key = :key"
)
_LINE = "SELECT product, borrower_id, credit_limit FROM credit_lines WHERE account_id = :a"
_DRAWN = (
    "SELECT COALESCE(SUM(amount), 0) FROM drawdowns WHERE account_id = :a AND status = 'accepted'"
)
_INSERT_DRAW = (
    "INSERT INTO drawdowns (drawdown_id, account_id, created_at, module, idempotency_key,"
    " request_hash, amount, term_months, status, response) VALUES (:drawdown_id, :account_id,"
    " :created_at, :module, :idempotency_key, :request_hash, :amount, :term_months, :status,"
    " :response)"
)


_INTEGRITY_ERRORS = (IntegrityError, sqlite3.IntegrityError)
CHECKPOINT_SECONDS = 1.0


class IdempotencyConflict(YidaiError):
    """The idempotency key was already used for a different request."""


def utc_now() -> str:
    """ISO-8601 UTC timestamp with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """A scored payment as later velocity features read it (never a card token)."""

    payer_id: str
    ts_us: int  # microseconds since the epoch, UTC
    amount: float
    counterpart_id: str | None
    merchant_id: str | None
    device_id: str | None
    channel: str | None


@dataclass(frozen=True)
class DecisionRow:
    """What :meth:`AuditStore.record_decision` appends."""

    decision_id: str
    module: str
    idempotency_key: str | None
    request_hash: str
    product: str
    entity_id: str
    outcome: str
    arm: str
    model_version: str | None
    policy_version: str | None
    response: dict[str, Any]
    record: dict[str, Any]
    open_line: tuple[str, float] | None = None  # (borrower_id, limit): an approved revolving line
    payment_event: PaymentEvent | None = None  # a scored payment, appended in the same transaction


@dataclass(frozen=True)
class Line:
    """A revolving credit line as the ledger knows it."""

    account_id: str
    product: str
    borrower_id: str
    credit_limit: float


class _Tx(Protocol):
    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]: ...


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        return self.conn.execute(sql, params or {}).fetchall()


class _AlchemyTx:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        result = self.conn.execute(text(sql), params or {})
        return list(result.fetchall()) if result.returns_rows else []


class AuditStore:
    """The decision audit store and drawdown ledger (SQLite or any SQLAlchemy URL)."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "NORMAL") -> None:
        self.url = url
        # sqlite:///path uses the thin sqlite3 adapter; any other URL (postgresql://...,
        # or sqlite+pysqlite:///path to exercise the same path locally) uses SQLAlchemy.
        self.is_sqlite = url.startswith("sqlite:///")
        self._local = threading.local()
        self._sqlite_conns: list[sqlite3.Connection] = []
        self._checkpointer: threading.Thread | None = None
        self._stopping = threading.Event()
        self._synchronous = sqlite_synchronous
        self.engine: Engine | None = None
        self._for_update = "" if self.is_sqlite else " FOR UPDATE"  # row lock on the line
        try:
            if self.is_sqlite:
                path = url.split("sqlite:///", 1)[-1]
                if not path or path == ":memory:":
                    raise YidaiError("the audit store must be a file (sqlite:///path)")
                self._path = Path(path)
                self._path.parent.mkdir(parents=True, exist_ok=True)
            else:
                self.engine = create_engine(url, pool_pre_ping=True)
                if self.engine.dialect.name == "sqlite":
                    self._for_update = ""
            with self._write() as tx:
                for ddl in SCHEMA:
                    tx.rows(ddl)
        except (OperationalError, sqlite3.Error) as exc:
            raise YidaiError(f"cannot open the audit store {_redact(url)}: {exc}") from exc

    def close(self) -> None:
        self._stopping.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=5)
            self._checkpointer = None
        for conn in self._sqlite_conns:
            conn.close()
        self._sqlite_conns.clear()
        self._local = threading.local()
        if self.engine is not None:
            self.engine.dispose()

    def _sqlite(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self._path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            # Checkpoints (the only fsyncs with synchronous=NORMAL) run in a background
            # thread, not inside a request's commit.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._local.conn = conn
            self._sqlite_conns.append(conn)
            self._start_checkpointer()
        return conn

    def _start_checkpointer(self) -> None:
        if self._checkpointer is not None:
            return

        def run() -> None:
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            try:
                while not self._stopping.wait(CHECKPOINT_SECONDS):
                    try:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    except sqlite3.Error as exc:
                        log.warning("audit WAL checkpoint failed: %s", exc)
            finally:
                conn.close()

        self._checkpointer = threading.Thread(target=run, name="audit-checkpoint", daemon=True)
        self._checkpointer.start()

    @contextmanager
    def _write(self, single: bool = False) -> Iterator[_Tx]:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``, taking the write lock).

        ``single``: the block runs one statement, atomic on its own (SQLite autocommit).
        """
        if self.engine is None:
            conn = self._sqlite()
            if single:
                yield _SqliteTx(conn)
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        else:
            with self.engine.begin() as alchemy:
                yield _AlchemyTx(alchemy)

    @contextmanager
    def _read(self) -> Iterator[_Tx]:
        if self.engine is None:
            yield _SqliteTx(self._sqlite())
        else:
            with self.engine.connect() as alchemy:
                yield _AlchemyTx(alchemy)

    # ------------------------------------------------------------------ decisions
    def find_idempotent(self, module: str, key: str, request_hash: str) -> str | None:
        """The stored response (JSON) of an earlier request with this key, or None."""
        with self._read() as tx:
            found = tx.rows(_BY_IDEM, {"module": module, "key": key})
        return _replay(found[0] if found else None, request_hash, key)

    def record_decision(self, row: DecisionRow) -> str:
        """Append a decision (and open its line); returns the response JSON to send.

        If a concurrent request with the same idempotency key won the race, its response is
        returned instead (the caller's decision is discarded, nothing is decided twice).
        """
        now = row.response.get("created_at") or utc_now()
        response = _dumps(row.response)
        params = {
            "decision_id": row.decision_id,
            "created_at": now,
            "module": row.module,
            "idempotency_key": row.idempotency_key,
            "request_hash": row.request_hash,
            "product": row.product,
            "entity_id": row.entity_id,
            "outcome": row.outcome,
            "arm": row.arm,
            "model_version": row.model_version,
            "policy_version": row.policy_version,
            "response": response,
            "record": _dumps(row.record),
        }
        try:
            single = row.open_line is None and row.payment_event is None
            with self._write(single=single) as tx:
                tx.rows(_INSERT_DECISION, params)
                if row.payment_event is not None:
                    event = row.payment_event
                    tx.rows(
                        _INSERT_PAYMENT_EVENT,
                        {
                            "decision_id": row.decision_id,
                            "payer_id": event.payer_id,
                            "ts_us": event.ts_us,
                            "amount": event.amount,
                            "counterpart_id": event.counterpart_id,
                            "merchant_id": event.merchant_id,
                            "device_id": event.device_id,
                            "channel": event.channel,
                        },
                    )
                if row.open_line is not None:
                    tx.rows(
                        _INSERT_LINE,
                        {
                            "account_id": row.decision_id,
                            "product": row.product,
                            "borrower_id": row.open_line[0],
                            "credit_limit": row.open_line[1],
                            "decision_id": row.decision_id,
                            "created_at": now,
                        },
                    )
        except _INTEGRITY_ERRORS:
            if row.idempotency_key is None:
                raise
            earlier = self.find_idempotent(row.module, row.idempotency_key, row.request_hash)
            if earlier is None:
                raise
            return earlier
        return response

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        """A stored decision: product, created_at, response and the full audit record."""
        with self._read() as tx:
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

    def recent_payments(self, payer_id: str, since_us: int, before_us: int) -> list[dict[str, Any]]:
        """The payer's scored payments with ``since_us <= ts < before_us`` (one indexed range
        read), oldest first, as the feature store's ``recent`` events (ts as datetime64[us])."""
        with self._read() as tx:
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

    def count_decisions(self) -> int:
        with self._read() as tx:
            return int(tx.rows("SELECT COUNT(*) FROM decisions")[0][0])

    # ------------------------------------------------------------------ drawdowns
    def get_line(self, account_id: str) -> Line | None:
        with self._read() as tx:
            found = tx.rows(_LINE, {"a": account_id})
        return None if not found else Line(account_id, found[0][0], found[0][1], float(found[0][2]))

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
        if idempotency_key is not None:
            earlier = self._drawdown_replay(module, idempotency_key, request_hash)
            if earlier is not None:
                return earlier
        try:
            with self._write() as tx:
                found = tx.rows(_LINE + self._for_update, {"a": account_id})
                line = (
                    Line(account_id, found[0][0], found[0][1], float(found[0][2]))
                    if found
                    else None
                )
                if line is None:
                    response = respond(None, 0.0, 0.0, "DD_UNKNOWN_ACCOUNT")
                else:
                    limit, block = effective_limit(line)
                    drawn = float(tx.rows(_DRAWN, {"a": account_id})[0][0])
                    reject = block
                    if reject is None and drawn + amount > limit + 1e-9:
                        reject = "DD_INSUFFICIENT_LIMIT"
                    response = respond(line, limit, drawn, reject)
                text_out = _dumps(response)
                tx.rows(
                    _INSERT_DRAW,
                    {
                        "drawdown_id": drawdown_id,
                        "account_id": account_id,
                        "created_at": response.get("created_at") or utc_now(),
                        "module": module,
                        "idempotency_key": idempotency_key,
                        "request_hash": request_hash,
                        "amount": amount,
                        "term_months": term_months,
                        "status": response["status"],
                        "response": text_out,
                    },
                )
        except _INTEGRITY_ERRORS:
            if idempotency_key is None:
                raise
            earlier = self._drawdown_replay(module, idempotency_key, request_hash)
            if earlier is None:
                raise
            return earlier
        return text_out

    def _drawdown_replay(self, module: str, key: str, request_hash: str) -> str | None:
        with self._read() as tx:
            found = tx.rows(_DRAW_BY_IDEM, {"module": module, "key": key})
        return _replay(found[0] if found else None, request_hash, key)

    def outstanding(self, account_id: str) -> float:
        """Sum of accepted drawdowns of an account."""
        with self._read() as tx:
            return float(tx.rows(_DRAWN, {"a": account_id})[0][0])


def _replay(row: Any, request_hash: str, key: str) -> str | None:
    if row is None:
        return None
    if row[1] != request_hash:
        raise IdempotencyConflict(
            f"Idempotency-Key {key!r} was already used for a different request"
        )
    return str(row[0])


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url

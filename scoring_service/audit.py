"""Append-only audit store of decisions, and the ledger of credit lines and drawdowns.

One code path (SQLAlchemy Core, portable SQL) for the embedded SQLite default and a
PostgreSQL URL in production.  SQLite runs in WAL mode with ``synchronous=NORMAL`` by default:
a committed decision survives a crash of the service process (the WAL is written before the
response returns); ``synchronous=FULL`` (setting ``audit_sqlite_synchronous``) adds an fsync
per commit for power-loss durability.  Rows are only ever inserted, never updated.

Drawdowns are checked atomically against the line: SQLite takes the write lock up front
(``BEGIN IMMEDIATE``), PostgreSQL locks the line row (``SELECT ... FOR UPDATE``), so two
concurrent drawdowns can never together exceed the available amount.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
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
)

_INSERT_DECISION = text(
    "INSERT INTO decisions (decision_id, created_at, module, idempotency_key, request_hash,"
    " product, entity_id, outcome, arm, model_version, policy_version, response, record)"
    " VALUES (:decision_id, :created_at, :module, :idempotency_key, :request_hash, :product,"
    " :entity_id, :outcome, :arm, :model_version, :policy_version, :response, :record)"
)
_INSERT_LINE = text(
    "INSERT INTO credit_lines (account_id, product, borrower_id, credit_limit, decision_id,"
    " created_at) VALUES (:account_id, :product, :borrower_id, :credit_limit, :decision_id,"
    " :created_at)"
)
_BY_IDEM = text(
    "SELECT response, request_hash FROM decisions WHERE module = :module AND idempotency_key = :key"
)
_BY_ID = text("SELECT product, created_at, response, record FROM decisions WHERE decision_id = :id")
_DRAW_BY_IDEM = text(
    "SELECT response, request_hash FROM drawdowns WHERE module = :module AND idempotency_key = :key"
)
_LINE = text("SELECT product, borrower_id, credit_limit FROM credit_lines WHERE account_id = :a")
_DRAWN = text(
    "SELECT COALESCE(SUM(amount), 0) FROM drawdowns WHERE account_id = :a AND status = 'accepted'"
)
_INSERT_DRAW = text(
    "INSERT INTO drawdowns (drawdown_id, account_id, created_at, module, idempotency_key,"
    " request_hash, amount, term_months, status, response) VALUES (:drawdown_id, :account_id,"
    " :created_at, :module, :idempotency_key, :request_hash, :amount, :term_months, :status,"
    " :response)"
)


class IdempotencyConflict(YidaiError):
    """The idempotency key was already used for a different request."""


def utc_now() -> str:
    """ISO-8601 UTC timestamp with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


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


@dataclass(frozen=True)
class Line:
    """A revolving credit line as the ledger knows it."""

    account_id: str
    product: str
    borrower_id: str
    credit_limit: float


class AuditStore:
    """The decision audit store and drawdown ledger over one SQLAlchemy engine."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "NORMAL") -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split("sqlite:///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            _sqlite_events(self.engine, sqlite_synchronous)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        try:
            with self.engine.begin() as conn:
                for ddl in SCHEMA:
                    conn.execute(text(ddl))
        except OperationalError as exc:
            raise YidaiError(f"cannot open the audit store {_redact(url)}: {exc.orig}") from exc

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``, taking the write lock)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(yidai_read=True) as conn, conn.begin():
            yield conn

    # ------------------------------------------------------------------ decisions
    def find_idempotent(self, module: str, key: str, request_hash: str) -> dict[str, Any] | None:
        """The stored response of an earlier request with this key (None if there is none)."""
        with self._read() as conn:
            row = conn.execute(_BY_IDEM, {"module": module, "key": key}).first()
        return _replay(row, request_hash, key)

    def record_decision(self, row: DecisionRow) -> dict[str, Any]:
        """Append a decision (and open its line); returns the response to send.

        If a concurrent request with the same idempotency key won the race, its response is
        returned instead (the caller's decision is discarded, nothing is decided twice).
        """
        now = row.response.get("created_at") or utc_now()
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
            "response": _dumps(row.response),
            "record": _dumps(row.record),
        }
        try:
            with self._write() as conn:
                conn.execute(_INSERT_DECISION, params)
                if row.open_line is not None:
                    conn.execute(
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
        except IntegrityError:
            if row.idempotency_key is None:
                raise
            earlier = self.find_idempotent(row.module, row.idempotency_key, row.request_hash)
            if earlier is None:
                raise
            return earlier
        return row.response

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        """A stored decision: product, created_at, response and the full audit record."""
        with self._read() as conn:
            row = conn.execute(_BY_ID, {"id": decision_id}).first()
        if row is None:
            return None
        return {
            "product": row[0],
            "created_at": row[1],
            "response": json.loads(row[2]),
            "record": json.loads(row[3]),
        }

    def count_decisions(self) -> int:
        with self._read() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM decisions")).scalar_one())

    # ------------------------------------------------------------------ drawdowns
    def get_line(self, account_id: str) -> Line | None:
        with self._read() as conn:
            row = conn.execute(_LINE, {"a": account_id}).first()
        return None if row is None else Line(account_id, row[0], row[1], float(row[2]))

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
    ) -> dict[str, Any]:
        """Check and book one drawdown atomically; returns the response to send.

        ``effective_limit(line)`` gives the limit in force and a blocking reason code (e.g. a
        frozen merchant line); ``respond(line, limit, outstanding, reject_code)`` builds the
        response, with ``reject_code`` None when the drawdown is accepted.  Rejected drawdowns
        are recorded too.
        """
        if idempotency_key is not None:
            with self._read() as conn:
                row = conn.execute(_DRAW_BY_IDEM, {"module": module, "key": idempotency_key})
                earlier = _replay(row.first(), request_hash, idempotency_key)
            if earlier is not None:
                return earlier
        lock = "" if self.is_sqlite else " FOR UPDATE"
        try:
            with self._write() as conn:
                found = conn.execute(text(_LINE.text + lock), {"a": account_id}).first()
                line = (
                    None if found is None else Line(account_id, found[0], found[1], float(found[2]))
                )
                if line is None:
                    response = respond(None, 0.0, 0.0, "DD_UNKNOWN_ACCOUNT")
                else:
                    limit, block = effective_limit(line)
                    drawn = float(conn.execute(_DRAWN, {"a": account_id}).scalar_one())
                    reject = block
                    if reject is None and drawn + amount > limit + 1e-9:
                        reject = "DD_INSUFFICIENT_LIMIT"
                    response = respond(line, limit, drawn, reject)
                conn.execute(
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
                        "response": _dumps(response),
                    },
                )
        except IntegrityError:
            if idempotency_key is None:
                raise
            with self._read() as conn:
                row = conn.execute(_DRAW_BY_IDEM, {"module": module, "key": idempotency_key})
                earlier = _replay(row.first(), request_hash, idempotency_key)
            if earlier is None:
                raise
            return earlier
        return response

    def outstanding(self, account_id: str) -> float:
        """Sum of accepted drawdowns of an account."""
        with self._read() as conn:
            return float(conn.execute(_DRAWN, {"a": account_id}).scalar_one())


def _replay(row: Any, request_hash: str, key: str) -> dict[str, Any] | None:
    if row is None:
        return None
    if row[1] != request_hash:
        raise IdempotencyConflict(
            f"Idempotency-Key {key!r} was already used for a different request"
        )
    stored: dict[str, Any] = json.loads(row[0])
    return stored


def _sqlite_events(engine: Engine, synchronous: str) -> None:
    """WAL, busy timeout, and explicit BEGIN (IMMEDIATE for writes) on every connection."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("yidai_read", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url

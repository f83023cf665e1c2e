"""Append-only audit store of decisions, and the ledger of credit lines, drawdowns, repayments.

One set of portable SQL statements (named ``:params``) for the embedded SQLite default and a
PostgreSQL URL in production: SQLite runs them through a thin ``sqlite3`` adapter (one
connection per thread; the hot path costs tens of microseconds), PostgreSQL through
SQLAlchemy with the psycopg 3 driver (``postgresql://`` URLs are read as
``postgresql+psycopg://``).  SQLite runs in WAL mode with ``synchronous=NORMAL`` by default:
a committed decision survives a crash of the service process (the WAL is written before the
response returns); ``synchronous=FULL`` (setting ``audit_sqlite_synchronous``) adds an fsync
per commit for power-loss durability.

Rows of ``decisions``, ``credit_lines``, ``drawdowns``, ``repayments`` and ``payment_events``
are only ever inserted: triggers in both databases reject UPDATE and DELETE (and TRUNCATE on
PostgreSQL).  An idempotency key is unique per calling module (unique index), so a retry gets
the stored response back and a concurrent duplicate loses the race to the first insert.

A request's fingerprint (``request_hash``, used to refuse an idempotency key reused for a
different request) is stored keyed: HMAC-SHA256 under a secret key (:func:`load_hash_key`:
``YIDAI_AUDIT_HASH_KEY``, else a random key created once in a 0600 file), so identifiers in
the request (a card token is never stored) cannot be recovered from the store by hashing
candidate requests.

The SQLite write-ahead log is checkpointed in the background and, once it exceeds
``wal_limit_bytes``, checkpointed with ``TRUNCATE`` (waiting for readers to move on): under a
steady write load with readers always present a passive checkpoint never lets the log
restart, and it would grow without bound.

Every scored payment also appends a ``payment_events`` row (payer, time, amount, payee or
terminal, merchant, device, channel; never a card token) in the decision's transaction; the
service reads a payer's last 24 hours from it (index ``(payer_id, ts_us)``) as the feature
store's ``recent`` events, so intra-day velocity is shared by every worker.

A line's outstanding balance is its accepted drawdowns minus its accepted repayments.
Drawdowns and repayments are checked and booked atomically against the line: SQLite takes
the write lock up front (``BEGIN IMMEDIATE``), PostgreSQL locks the line row
(``SELECT ... FOR UPDATE``), so two concurrent drawdowns can never together exceed the
available amount, nor two repayments take the balance below zero.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import orjson
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError

from yidai.errors import YidaiError

if TYPE_CHECKING:
    from yidai.settings import Settings

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
    """CREATE TABLE IF NOT EXISTS repayments (
        repayment_id VARCHAR(40) PRIMARY KEY,
        account_id VARCHAR(64) NOT NULL,
        created_at VARCHAR(32) NOT NULL,
        module VARCHAR(64) NOT NULL,
        idempotency_key VARCHAR(128),
        request_hash VARCHAR(64) NOT NULL,
        amount DOUBLE PRECISION NOT NULL,
        status VARCHAR(16) NOT NULL,
        response TEXT NOT NULL)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS repayments_idem ON repayments (module, idempotency_key)",
    "CREATE INDEX IF NOT EXISTS repayments_account ON repayments (account_id, status)",
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
# The audit trail proper: rows are inserted once and never changed or removed.
APPEND_ONLY_TABLES = ("decisions", "credit_lines", "drawdowns", "repayments", "payment_events")


def _append_only_ddl(dialect: str) -> list[str]:
    """Triggers that make the audit tables append-only (in SQLite or PostgreSQL)."""
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table}"
            f" BEGIN SELECT RAISE(ABORT, 'audit table {table} is append-only'); END"
            for table in APPEND_ONLY_TABLES
            for op in ("UPDATE", "DELETE")
        ]
    ddl = [
        "CREATE OR REPLACE FUNCTION yidai_append_only() RETURNS trigger LANGUAGE plpgsql AS"
        " $fn$ BEGIN RAISE EXCEPTION USING MESSAGE = 'audit table ' || TG_TABLE_NAME"
        " || ' is append-only', ERRCODE = 'insufficient_privilege'; END $fn$"
    ]
    for table in APPEND_ONLY_TABLES:
        ddl.append(
            "DO $do$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid ="
            f" '{table}'::regclass AND tgname = '{table}_append_only') THEN"
            f" CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE"
            f" ON {table} FOR EACH STATEMENT EXECUTE FUNCTION yidai_append_only();"
            " END IF; END $do$"
        )
    return ddl


# Serialises schema creation when several service workers start at once on one database.
_PG_SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(7216439205847301)"
_PG_RELATIONS = (
    "decisions", "decisions_idem", "decisions_entity", "credit_lines", "drawdowns",
    "drawdowns_idem", "drawdowns_account", "repayments", "repayments_idem",
    "repayments_account", "payment_events", "payment_events_payer_ts",
)  # fmt: skip
_PG_SCHEMA_PRESENT = (
    "SELECT "
    + " AND ".join(f"to_regclass('{name}') IS NOT NULL" for name in _PG_RELATIONS)
    + " AND (SELECT COUNT(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname IN ("
    + ", ".join(f"'{table}_append_only'" for table in APPEND_ONLY_TABLES)
    + f")) = {len(APPEND_ONLY_TABLES)}"
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
_LINE = "SELECT product, borrower_id, credit_limit FROM credit_lines WHERE account_id = :a"
_OUTSTANDING = (
    "SELECT (SELECT COALESCE(SUM(amount), 0) FROM drawdowns"
    " WHERE account_id = :a AND status = 'accepted')"
    " - (SELECT COALESCE(SUM(amount), 0) FROM repayments"
    " WHERE account_id = :a AND status = 'accepted')"
)
_INSERT_DRAW = (
    "INSERT INTO drawdowns (drawdown_id, account_id, created_at, module, idempotency_key,"
    " request_hash, amount, term_months, status, response) VALUES (:drawdown_id, :account_id,"
    " :created_at, :module, :idempotency_key, :request_hash, :amount, :term_months, :status,"
    " :response)"
)
_INSERT_REPAYMENT = (
    "INSERT INTO repayments (repayment_id, account_id, created_at, module, idempotency_key,"
    " request_hash, amount, status, response) VALUES (:repayment_id, :account_id, :created_at,"
    " :module, :idempotency_key, :request_hash, :amount, :status, :response)"
)
_LEDGER_BY_IDEM = {
    table: f"SELECT response, request_hash, status FROM {table}"
    " WHERE module = :module AND idempotency_key = :key"
    for table in ("drawdowns", "repayments")
}


_INTEGRITY_ERRORS = (IntegrityError, sqlite3.IntegrityError)
CHECKPOINT_SECONDS = 1.0
# SQLite: the writer looks at the WAL's size every this many commits (one stat call).
WAL_CHECK_EVERY = 16
WAL_LIMIT_BYTES = 64 << 20
# How long a truncating checkpoint waits for readers: writers wait while it is pending, so
# briefly; a reader still busy after that delays the truncation (the writer tries again once
# the WAL has grown by another quarter of the limit, the checkpointer every second).
WAL_TRUNCATE_WAIT_MS = 200
BUSY_TIMEOUT_MS = 30_000
HASH_KEY_BYTES = 32
# Connections per process to a server database (SQLAlchemy pool, no overflow).  Every store
# call holds at most one connection at a time, so this many threads calling the store at
# once never wait for the pool: the service runs at most this many calls concurrently.
# 4: enough to overlap network round trips and lock waits (4 / ~3 ms of store time per
# request on a LAN is more than a worker's CPU can serve), few enough that the worker
# threads do not fight over the GIL (10 gave a p99 of ~160 ms at 16 clients on loopback,
# 4 gave ~30 ms; docs/benchmarks.md).
PG_POOL_SIZE = 4


class IdempotencyConflict(YidaiError):
    """The idempotency key was already used for a different request."""


def load_hash_key(settings: Settings) -> bytes:
    """The secret key of stored request hashes: ``settings.audit_hash_key`` if set, else the
    key in ``settings.audit_hash_key_file``, created (32 random bytes, hex, mode 0600) the first
    time.  Stable across restarts, so idempotency conflicts are still detected after one."""
    if settings.audit_hash_key is not None:
        return settings.audit_hash_key.get_secret_value().encode()
    path = settings.audit_hash_key_file
    assert path is not None
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(HASH_KEY_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # never replaces a key another worker created first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError) as exc:
        raise YidaiError(f"audit hash key file {path} is unreadable or malformed: {exc}") from exc
    if len(key) < 16:
        raise YidaiError(f"audit hash key file {path} holds fewer than 16 bytes")
    return key


def load_previous_hash_keys(settings: Settings) -> tuple[bytes, ...]:
    """The audit hash key of before the last rotation (``audit_hash_key_previous``), if any."""
    previous = settings.audit_hash_key_previous
    return () if previous is None else (previous.get_secret_value().encode(),)


# Stores opened without a key (tools, tests) share one random key per process.
_PROCESS_HASH_KEY = secrets.token_bytes(HASH_KEY_BYTES)


def utc_now() -> str:
    """ISO-8601 UTC timestamp with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


# orjson keeps what json.dumps(default=str) did with non-JSON values: datetimes and
# dataclasses go through ``_json_default`` (str) instead of orjson's own formats.
_ORJSON_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, float):  # numpy.float64 (a float subclass): a number, as json wrote it
        return float(obj)
    return str(obj)


def _dumps(obj: Any) -> str:
    """Compact UTF-8 JSON of a response or audit record (orjson: ~5x faster than json).

    Output equals ``json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)``
    up to float spelling (``1e-05`` is written ``0.00001``, the same number), except that a
    non-finite float is written ``null`` rather than json's non-standard ``NaN`` / ``Infinity``
    (which PostgreSQL's json types and strict parsers reject).  What orjson cannot encode
    (an integer beyond 64 bits) falls back to json.
    """
    try:
        return orjson.dumps(obj, default=_json_default, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


def to_fen(amount: float) -> float:
    """A CNY amount rounded to the fen (0.01): ledger sums are compared at that precision."""
    return round(float(amount), 2) + 0.0  # + 0.0: never -0.0


def engine_url(url: str) -> str:
    """The SQLAlchemy URL of an audit-store URL: ``postgresql://`` and ``postgres://`` use
    the psycopg 3 driver (``postgresql+psycopg://``); anything else is kept as given."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


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


@dataclass(frozen=True, slots=True)
class Booked:
    """A drawdown or repayment as stored: its status and the response JSON to send."""

    status: str  # "accepted" or "rejected"
    json: str


class _Tx(Protocol):
    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]: ...

    def ddl(self, sql: str) -> None: ...


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        return self.conn.execute(sql, params or {}).fetchall()

    def ddl(self, sql: str) -> None:
        self.conn.execute(sql)


_text = functools.lru_cache(maxsize=256)(text)  # compile each statement's text() once


class _AlchemyTx:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        result = self.conn.execute(_text(sql), params or {})
        return list(result.fetchall()) if result.returns_rows else []

    def ddl(self, sql: str) -> None:
        self.conn.exec_driver_sql(sql)  # no bind-parameter parsing (``::regclass``, ``$fn$``)


@contextmanager
def _file_lock(db_path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.init-lock`` (no-op without a path).

    Workers that open a new SQLite store together create its schema and switch it to WAL
    one at a time: SQLite refuses a journal-mode change at once while another connection
    holds the file, without waiting.
    """
    if db_path is None:
        yield
        return
    with open(db_path.with_name(db_path.name + ".init-lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _enable_wal(conn: sqlite3.Connection, timeout_s: float = 30.0) -> None:
    """Switch ``conn``'s database to WAL, retrying while another process holds its lock.

    SQLite answers "database is locked" at once, without its busy handler, when workers
    that start together race to create the file and change its journal mode.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


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
        self._hasher = hmac.new(hash_key or _PROCESS_HASH_KEY, digestmod=hashlib.sha256)
        self._previous = [hmac.new(k, digestmod=hashlib.sha256) for k in previous_hash_keys]
        self._wal_limit = int(wal_limit_bytes)
        self._wal_wait_ms = int(wal_truncate_wait_ms)
        self._wal_retry_at = 0  # WAL size of the writer's next attempt after a failed one
        self._commits = 0
        # sqlite:///path uses the thin sqlite3 adapter; any other URL (postgresql://...,
        # or sqlite+pysqlite:///path to exercise the same path locally) uses SQLAlchemy.
        self.is_sqlite = url.startswith("sqlite:///")
        self._local = threading.local()
        self._sqlite_conns: list[sqlite3.Connection] = []
        self._checkpointer: threading.Thread | None = None
        # One checkpoint at a time in this process: SQLite refuses a second concurrent
        # checkpoint at once (without its busy handler), so the writer's truncation would
        # fail whenever the background checkpointer happened to be running.
        self._checkpoint_lock = threading.Lock()
        self._stopping = threading.Event()
        self._synchronous = sqlite_synchronous
        self.engine: Engine | None = None
        self.dialect = "sqlite"
        # How many calls may use the store at once (the connection pool's size); None: the
        # thin SQLite adapter, whose calls take tens of microseconds and need no thread.
        self.max_concurrent_calls: int | None = None if self.is_sqlite else PG_POOL_SIZE
        try:
            if self.is_sqlite:
                path = url.split("sqlite:///", 1)[-1]
                if not path or path == ":memory:":
                    raise YidaiError("the audit store must be a file (sqlite:///path)")
                self._path = Path(path)
                self._path.parent.mkdir(parents=True, exist_ok=True)
            else:
                self.dialect = make_url(engine_url(url)).get_backend_name()
                if self.dialect not in ("sqlite", "postgresql"):
                    raise YidaiError(
                        f"audit store {_redact(url)}: only sqlite:///path and "
                        "postgresql://... URLs are supported"
                    )
                self.engine = create_engine(
                    engine_url(url), pool_pre_ping=True, pool_size=PG_POOL_SIZE, max_overflow=0
                )
            # PostgreSQL locks the line row for a drawdown or repayment; SQLite's write
            # transaction (BEGIN IMMEDIATE) already excludes every other writer.
            self._for_update = " FOR UPDATE" if self.dialect == "postgresql" else ""
            if self.dialect != "postgresql" or not self._pg_schema_complete():
                with _file_lock(self._path if self.is_sqlite else None), self._write() as tx:
                    if self.dialect == "postgresql":
                        tx.ddl(_PG_SCHEMA_LOCK)
                    for ddl in (*SCHEMA, *_append_only_ddl(self.dialect)):
                        tx.ddl(ddl)
        except (DBAPIError, ArgumentError, NoSuchModuleError, sqlite3.Error) as exc:
            self.close()
            raise YidaiError(f"cannot open the audit store {_redact(url)}: {exc}") from exc

    def _pg_schema_complete(self) -> bool:
        """Every table, index and append-only trigger exists (then the service's role needs
        no CREATE privilege, and replicas starting together take no lock)."""
        with self._read() as tx:
            return bool(tx.rows(_PG_SCHEMA_PRESENT)[0][0])

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
            _enable_wal(conn)
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            # Checkpoints (the only fsyncs with synchronous=NORMAL) run in a background
            # thread, not inside a request's commit.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.execute(f"PRAGMA journal_size_limit={self._wal_limit}")
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
                        with self._checkpoint_lock:
                            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                        self._bound_wal(conn, background=True)
                    except sqlite3.Error as exc:
                        log.warning("audit WAL checkpoint failed: %s", exc)
            finally:
                conn.close()

        self._checkpointer = threading.Thread(target=run, name="audit-checkpoint", daemon=True)
        self._checkpointer.start()

    def _bound_wal(self, conn: sqlite3.Connection, background: bool = False) -> None:
        """Checkpoint and truncate the WAL once it exceeds the limit.

        ``TRUNCATE`` waits (up to ``wal_truncate_wait_ms``, writers waiting too) for readers
        still on older WAL frames, then resets the log to zero bytes; a passive checkpoint
        alone never resets it while writes and reads keep overlapping.
        """
        try:
            size = os.stat(f"{self._path}-wal").st_size
        except FileNotFoundError:
            return
        if size <= self._wal_limit or (not background and size < self._wal_retry_at):
            return
        with self._checkpoint_lock:
            conn.execute(f"PRAGMA busy_timeout={self._wal_wait_ms}")
            try:
                busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._wal_retry_at = size + self._wal_limit // 4 if busy else 0
        if busy and background:
            log.warning("audit WAL (%d bytes) not truncated yet: a reader is still active", size)

    def _committed(self, conn: sqlite3.Connection) -> None:
        """After a SQLite commit: every ``WAL_CHECK_EVERY`` commits, bound the WAL here (the
        background checkpointer may fall behind a fast writer)."""
        self._commits += 1
        if self._commits % WAL_CHECK_EVERY == 0:
            try:
                self._bound_wal(conn)
            except sqlite3.Error as exc:
                log.warning("audit WAL checkpoint failed: %s", exc)

    def request_digest(self, request_hash: str) -> str:
        """What is stored for a request fingerprint: its HMAC-SHA256 under the store's key."""
        hasher = self._hasher.copy()
        hasher.update(request_hash.encode())
        return hasher.hexdigest()

    @contextmanager
    def _write(self, single: bool = False) -> Iterator[_Tx]:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``, taking the write lock).

        ``single``: the block runs one statement, atomic on its own (SQLite autocommit).
        """
        if self.engine is None:
            conn = self._sqlite()
            if single:
                yield _SqliteTx(conn)
                self._committed(conn)
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._committed(conn)
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
        row = found[0] if found else None
        return self._replay(row, request_hash, key)

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
            "request_hash": self.request_digest(row.request_hash),
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

    # ------------------------------------------------------------------ ledger
    def line_state(self, account_id: str) -> tuple[Line, float] | None:
        """The line and its outstanding balance (read together), or None if no such line."""
        with self._read() as tx:
            line = _line(tx, account_id)
            return None if line is None else (line, _outstanding(tx, account_id))

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
            "drawdowns", _INSERT_DRAW, account_id, amount, module, idempotency_key,
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
        """Check and book one repayment atomically against the line's outstanding balance.

        Never below zero: a repayment above the outstanding balance is rejected
        (``RP_EXCEEDS_OUTSTANDING``), one on no known line too (``RP_UNKNOWN_ACCOUNT``).
        ``respond(line, outstanding, reject_code)`` builds the response (``reject_code``
        None: accepted) while the line is locked.  Rejected repayments are recorded too, so a
        retry with the same idempotency key gets the same answer.
        """

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

        booked = self._book(
            "repayments", _INSERT_REPAYMENT, account_id, amount, module, idempotency_key,
            request_hash, decide,
        )  # fmt: skip
        return booked

    def _book(
        self,
        table: str,
        insert: str,
        account_id: str,
        amount: float,
        module: str,
        idempotency_key: str | None,
        request_hash: str,
        decide: Callable[[Line | None, float], tuple[dict[str, Any], dict[str, Any]]],
    ) -> Booked:
        """Lock the line, read its outstanding balance, let ``decide`` answer, append the row.

        ``decide(line, outstanding)`` returns (the response, with its ``status``; the row's
        own columns).  A replayed idempotency key returns the stored row instead.
        """
        if idempotency_key is not None:
            earlier = self._ledger_replay(table, module, idempotency_key, request_hash)
            if earlier is not None:
                return earlier
        try:
            with self._write() as tx:
                line = _line(tx, account_id, self._for_update)
                outstanding = 0.0 if line is None else _outstanding(tx, account_id)
                response, columns = decide(line, outstanding)
                booked = Booked(str(response["status"]), _dumps(response))
                tx.rows(
                    insert,
                    {
                        **columns,
                        "account_id": account_id,
                        "created_at": response.get("created_at") or utc_now(),
                        "module": module,
                        "idempotency_key": idempotency_key,
                        "request_hash": self.request_digest(request_hash),
                        "amount": amount,
                        "status": booked.status,
                        "response": booked.json,
                    },
                )
        except _INTEGRITY_ERRORS:
            if idempotency_key is None:
                raise
            earlier = self._ledger_replay(table, module, idempotency_key, request_hash)
            if earlier is None:
                raise
            return earlier
        return booked

    def _ledger_replay(self, table: str, module: str, key: str, request_hash: str) -> Booked | None:
        with self._read() as tx:
            found = tx.rows(_LEDGER_BY_IDEM[table], {"module": module, "key": key})
        if not found:
            return None
        return Booked(str(found[0][2]), str(self._replay(found[0], request_hash, key)))

    def _replay(self, row: Any, request_hash: str, key: str) -> str | None:
        """The stored response of ``row`` if it was stored for this request; a conflict if
        not.  Its stored digest may be under the current key, a previous key (a rotation) or
        the plain fingerprint (a row written before digests were keyed)."""
        if row is None:
            return None
        stored = str(row[1])
        accepted = [self.request_digest(request_hash)]
        for previous in self._previous:
            hasher = previous.copy()
            hasher.update(request_hash.encode())
            accepted.append(hasher.hexdigest())
        accepted.append(request_hash)
        if not any(hmac.compare_digest(stored, digest) for digest in accepted):
            raise IdempotencyConflict(
                f"Idempotency-Key {key!r} was already used for a different request"
            )
        return str(row[0])

    def outstanding(self, account_id: str) -> float:
        """Accepted drawdowns minus accepted repayments of an account (to the fen)."""
        with self._read() as tx:
            return _outstanding(tx, account_id)


def _line(tx: _Tx, account_id: str, suffix: str = "") -> Line | None:
    found = tx.rows(_LINE + suffix, {"a": account_id})
    if not found:
        return None
    product, borrower_id, credit_limit = found[0]
    return Line(account_id, product, borrower_id, float(credit_limit))


def _outstanding(tx: _Tx, account_id: str) -> float:
    return to_fen(tx.rows(_OUTSTANDING, {"a": account_id})[0][0])


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url

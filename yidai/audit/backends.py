"""The audit database: its two back-ends, their transactions and the schema.

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
PostgreSQL).

The SQLite write-ahead log is bounded without putting checkpoints on the request path.  A
background thread checkpoints it ``PASSIVE``ly every second (copying and syncing what was
written, never blocking writers).  SQLite restarts the log by itself when a write begins
after a complete checkpoint, but under a steady write load (or with readers always present)
that moment may never come, and the log would grow without bound.  So once the log's
*content* (frames, as the passive checkpoint reports them, not the file's size) exceeds
``wal_limit_bytes``, the same thread follows with a ``RESTART`` checkpoint: it blocks
writers, but only for the few frames written since the passive pass and its two syncs, and
the file is cut back to the limit by ``journal_size_limit`` at the next commit.  Writers of
this process wait for it on a lock (woken at once) rather than in SQLite's busy handler,
which sleeps in steps of up to 100 ms.  Only if the background thread falls behind (the file
reaches 1.5 times the limit) does a writer restart the log itself.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from yidai.core.errors import YidaiError

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.engine import Connection

log = logging.getLogger("yidai.audit")

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


def append_only_ddl(dialect: str) -> list[str]:
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

CHECKPOINT_SECONDS = 1.0
WAL_LIMIT_BYTES = 64 << 20
# The WAL file size (times the limit) at which a writer restarts the log itself because the
# background checkpointer fell behind; the writer looks every WAL_CHECK_EVERY commits.
WAL_WRITER_BOUND = 1.5
WAL_CHECK_EVERY = 8
# How long the restarting checkpoint waits for readers: writers wait while it is pending, so
# briefly; a reader still busy after that delays the restart (the checkpointer tries again a
# second later, a writer once the file has grown by another quarter of the limit).
WAL_TRUNCATE_WAIT_MS = 200
BUSY_TIMEOUT_MS = 30_000
# Connections per process to a server database (SQLAlchemy pool, no overflow).  Every store
# call holds at most one connection at a time, so this many threads calling the store at
# once never wait for the pool: the service runs at most this many calls concurrently.
# 4: enough to overlap network round trips and lock waits (4 / ~3 ms of store time per
# request on a LAN is more than a worker's CPU can serve), few enough that the worker
# threads do not fight over the GIL (10 gave a p99 of ~160 ms at 16 clients on loopback,
# 4 gave ~30 ms; docs/benchmarks.md).
PG_POOL_SIZE = 4


def engine_url(url: str) -> str:
    """The SQLAlchemy URL of an audit-store URL: ``postgresql://`` and ``postgres://`` use
    the psycopg 3 driver (``postgresql+psycopg://``); anything else is kept as given."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def redact(url: str) -> str:
    """The URL without its credentials (for messages)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


class Tx(Protocol):
    """A transaction (or a read-only connection) running the portable statements."""

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]: ...

    def ddl(self, sql: str) -> None: ...


class SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        return self.conn.execute(sql, params or {}).fetchall()

    def ddl(self, sql: str) -> None:
        self.conn.execute(sql)


@functools.lru_cache(maxsize=256)
def _text(sql: str) -> Any:
    """The statement's SQLAlchemy ``text()``, compiled once."""
    # heavy: SQLAlchemy, loaded only by a PostgreSQL store (a SQLite worker starts without it)
    from sqlalchemy import text

    return text(sql)


class AlchemyTx:
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


class Database:
    """The audit database opened for writing: ``sqlite:///path`` or ``postgresql://...``.

    Creates the schema and its append-only triggers if missing; hands out write
    transactions (:meth:`write`) and reads (:meth:`read`); keeps the SQLite WAL bounded.
    """

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "NORMAL",
        wal_limit_bytes: int = WAL_LIMIT_BYTES,
        wal_truncate_wait_ms: int = WAL_TRUNCATE_WAIT_MS,
    ) -> None:
        self.url = url
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
        # checkpoint at once (without its busy handler), so the writer's restart would
        # fail whenever the background checkpointer happened to be running.
        self._checkpoint_lock = threading.Lock()
        # Held by this process's SQLite write transactions and by the restarting checkpoint:
        # a writer that meets a restart waits here, woken as soon as it ends, instead of
        # sleeping in SQLite's busy handler (1, 2, 5, 10, 15, 20, 25 ... ms steps).
        self._write_gate = threading.Lock()
        self._stopping = threading.Event()
        self._synchronous = sqlite_synchronous
        self.engine: Engine | None = None
        self.dialect = "sqlite"
        # A unique index refused an insert: a concurrent request with the same idempotency
        # key won (the caller catches these).
        self.integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
        open_errors: tuple[type[Exception], ...] = (sqlite3.Error,)
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
                # heavy: SQLAlchemy and its driver, only for a server database
                from sqlalchemy import create_engine, make_url
                from sqlalchemy.exc import (
                    ArgumentError,
                    DBAPIError,
                    IntegrityError,
                    NoSuchModuleError,
                )

                open_errors += (DBAPIError, ArgumentError, NoSuchModuleError)
                self.integrity_errors += (IntegrityError,)
                self.dialect = make_url(engine_url(url)).get_backend_name()
                if self.dialect not in ("sqlite", "postgresql"):
                    raise YidaiError(
                        f"audit store {redact(url)}: only sqlite:///path and "
                        "postgresql://... URLs are supported"
                    )
                self.engine = create_engine(
                    engine_url(url), pool_pre_ping=True, pool_size=PG_POOL_SIZE, max_overflow=0
                )
            # PostgreSQL locks the line row for a drawdown or repayment; SQLite's write
            # transaction (BEGIN IMMEDIATE) already excludes every other writer.
            self.for_update = " FOR UPDATE" if self.dialect == "postgresql" else ""
            if self.dialect != "postgresql" or not self._pg_schema_complete():
                with _file_lock(self._path if self.is_sqlite else None), self.write() as tx:
                    if self.dialect == "postgresql":
                        tx.ddl(_PG_SCHEMA_LOCK)
                    for ddl in (*SCHEMA, *append_only_ddl(self.dialect)):
                        tx.ddl(ddl)
        except open_errors as exc:
            self.close()
            raise YidaiError(f"cannot open the audit store {redact(url)}: {exc}") from exc

    def _pg_schema_complete(self) -> bool:
        """Every table, index and append-only trigger exists (then the service's role needs
        no CREATE privilege, and replicas starting together take no lock)."""
        with self.read() as tx:
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
                page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
                while not self._stopping.wait(CHECKPOINT_SECONDS):
                    try:
                        with self._checkpoint_lock:
                            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        if int(row[1]) * page_size > self._wal_limit:
                            self._restart_wal(conn, background=True)
                    except sqlite3.Error as exc:
                        log.warning("audit WAL checkpoint failed: %s", exc)
            finally:
                conn.close()

        self._checkpointer = threading.Thread(target=run, name="audit-checkpoint", daemon=True)
        self._checkpointer.start()

    def _restart_wal(self, conn: sqlite3.Connection, background: bool) -> None:
        """Checkpoint everything and restart the log from its beginning (``RESTART``).

        Waits up to ``wal_truncate_wait_ms`` for readers still on older frames (writers wait
        meanwhile, on :attr:`_write_gate` in this process); the next commit cuts the file back
        to the limit (``journal_size_limit``).  Called by the background checkpointer right
        after a passive pass, so only the frames written since then are copied here.
        """
        with self._checkpoint_lock, self._write_gate:
            conn.execute(f"PRAGMA busy_timeout={self._wal_wait_ms}")
            try:
                if not background:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                busy = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0]
            finally:
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if busy:
            try:
                size = os.stat(f"{self._path}-wal").st_size
            except FileNotFoundError:
                size = 0
            self._wal_retry_at = size + self._wal_limit // 4
            if background:
                log.warning("audit WAL (%d bytes) not restarted yet: a reader is active", size)
        else:
            self._wal_retry_at = 0

    def _committed(self, conn: sqlite3.Connection) -> None:
        """After a SQLite commit, every ``WAL_CHECK_EVERY`` commits (one ``stat`` call):
        restart the log here if the file reached ``WAL_WRITER_BOUND`` times the limit (the
        background checkpointer fell behind a fast writer, or a reader held it back)."""
        self._commits += 1
        if self._commits % WAL_CHECK_EVERY:
            return
        try:
            size = os.stat(f"{self._path}-wal").st_size
        except FileNotFoundError:
            return
        if size <= WAL_WRITER_BOUND * self._wal_limit or size < self._wal_retry_at:
            return
        try:
            self._restart_wal(conn, background=False)
        except sqlite3.Error as exc:
            log.warning("audit WAL checkpoint failed: %s", exc)

    @contextmanager
    def write(self, single: bool = False) -> Iterator[Tx]:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``, taking the write lock).

        ``single``: the block runs one statement, atomic on its own (SQLite autocommit).
        """
        if self.engine is None:
            conn = self._sqlite()
            with self._write_gate:
                if single:
                    yield SqliteTx(conn)
                else:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield SqliteTx(conn)
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
            self._committed(conn)
        else:
            with self.engine.begin() as alchemy:
                yield AlchemyTx(alchemy)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read on this thread's connection (SQLite) or a pooled one (PostgreSQL)."""
        if self.engine is None:
            yield SqliteTx(self._sqlite())
        else:
            with self.engine.connect() as alchemy:
                yield AlchemyTx(alchemy)

"""The audit store: append-only decisions, the ledger of credit lines, drawdowns and
repayments, and payment velocity, in SQLite (embedded default) or PostgreSQL.

Written through :class:`AuditStore` (the scoring service), read through :class:`AuditReader`
(monitoring, the dashboards).  One job per module:

- :mod:`~yidai.audit.backends`: the two back-ends, transactions, SQLite WAL bounds, schema;
- :mod:`~yidai.audit.hashing`: the keyed request hash and the idempotency conflict check;
- :mod:`~yidai.audit.rows`: the rows appended and returned, amounts to the fen, JSON;
- :mod:`~yidai.audit.decision_log`: decisions, replayed by idempotency key;
- :mod:`~yidai.audit.ledger`: credit lines, drawdowns and repayments, booked atomically;
- :mod:`~yidai.audit.payment_events`: scored payments, a payer's intra-day velocity;
- :mod:`~yidai.audit.store`: :class:`AuditStore`, the write facade over the above;
- :mod:`~yidai.audit.reader`: :class:`AuditReader`, the public read API (DataFrames).

The read API (pandas, SQLAlchemy) loads on first use, so a scoring worker writing to SQLite
starts without either.
"""

from typing import TYPE_CHECKING, Any

from yidai.audit.backends import (
    APPEND_ONLY_TABLES,
    BUSY_TIMEOUT_MS,
    CHECKPOINT_SECONDS,
    PG_POOL_SIZE,
    SCHEMA,
    WAL_LIMIT_BYTES,
    WAL_TRUNCATE_WAIT_MS,
    engine_url,
)
from yidai.audit.hashing import (
    HASH_KEY_BYTES,
    IdempotencyConflict,
    load_hash_key,
    load_previous_hash_keys,
)
from yidai.audit.rows import Booked, DecisionRow, Line, PaymentEvent, to_fen, utc_now
from yidai.audit.store import AuditStore

if TYPE_CHECKING:
    from yidai.audit.reader import (
        DECISION_COLUMNS,
        LINE_COLUMNS,
        OUTCOME_COLUMNS,
        PAYMENT_EVENT_COLUMNS,
        AuditReader,
    )

_READ_API = frozenset(
    {"DECISION_COLUMNS", "LINE_COLUMNS", "OUTCOME_COLUMNS", "PAYMENT_EVENT_COLUMNS", "AuditReader"}
)


def __getattr__(name: str) -> Any:
    """The read API, imported on first use."""
    if name in _READ_API:
        # deferred: pandas and SQLAlchemy, which a scoring worker does not need
        from yidai.audit import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'yidai.audit' has no attribute {name!r}")


__all__ = [
    "APPEND_ONLY_TABLES",
    "BUSY_TIMEOUT_MS",
    "CHECKPOINT_SECONDS",
    "DECISION_COLUMNS",
    "HASH_KEY_BYTES",
    "LINE_COLUMNS",
    "OUTCOME_COLUMNS",
    "PAYMENT_EVENT_COLUMNS",
    "PG_POOL_SIZE",
    "SCHEMA",
    "WAL_LIMIT_BYTES",
    "WAL_TRUNCATE_WAIT_MS",
    "AuditReader",
    "AuditStore",
    "Booked",
    "DecisionRow",
    "IdempotencyConflict",
    "Line",
    "PaymentEvent",
    "engine_url",
    "load_hash_key",
    "load_previous_hash_keys",
    "to_fen",
    "utc_now",
]

"""The public read API of the audit store: decisions, payment events, lines and balances
as DataFrames, for monitoring and the dashboards.

A reader never writes: SQLite is opened with ``mode=ro`` (WAL readers do not block the
service's writers; a missing file is not created), PostgreSQL through plain SELECTs.  A
store that does not exist yet, or has no tables yet, reads as empty frames.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from yidai.audit.backends import engine_url, redact
from yidai.audit.rows import to_fen
from yidai.core.errors import YidaiError

#: Columns of :meth:`AuditReader.decisions` (``response`` and ``record`` are JSON text).
DECISION_COLUMNS = (
    "decision_id",
    "created_at",
    "module",
    "product",
    "entity_id",
    "outcome",
    "arm",
    "model_version",
    "policy_version",
    "response",
    "record",
)
#: Columns of :meth:`AuditReader.decision_outcomes`.
OUTCOME_COLUMNS = ("created_at", "product", "outcome", "arm", "amount")
#: Columns of :meth:`AuditReader.payment_events` (``ts``: UTC, microseconds).
PAYMENT_EVENT_COLUMNS = (
    "decision_id",
    "payer_id",
    "ts",
    "amount",
    "counterpart_id",
    "merchant_id",
    "device_id",
    "channel",
)
#: Columns of :meth:`AuditReader.lines`: the line, its accepted drawdowns and repayments.
LINE_COLUMNS = (
    "account_id",
    "product",
    "borrower_id",
    "credit_limit",
    "decision_id",
    "created_at",
    "drawn",
    "repaid",
    "outstanding",
)

_LINES = (
    "SELECT l.account_id, l.product, l.borrower_id, l.credit_limit, l.decision_id,"
    " l.created_at,"
    " (SELECT COALESCE(SUM(d.amount), 0) FROM drawdowns d"
    "  WHERE d.account_id = l.account_id AND d.status = 'accepted'),"
    " (SELECT COALESCE(SUM(r.amount), 0) FROM repayments r"
    "  WHERE r.account_id = l.account_id AND r.status = 'accepted')"
    " FROM credit_lines l"
)
_PG_UNDEFINED_TABLE = "42P01"


def _timestamp(value: date | datetime) -> str:
    """A bound on ``created_at`` (ISO-8601 text): a day, or a time (naive means UTC)."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="microseconds")
    return value.isoformat()


def _epoch_us(value: date | datetime) -> int:
    """Microseconds since the epoch of a time (naive means UTC) or of a day's start (UTC)."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _where(clauses: list[str]) -> str:
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def _requested_amount(record: str) -> float:
    """The amount a decision was asked for: a payment's amount, a credit request's
    requested amount (NaN if neither)."""
    request = (json.loads(record) or {}).get("request") or {}
    amount = request.get("amount", request.get("requested_amount"))
    return np.nan if amount is None else float(amount)


class AuditReader:
    """Read-only access to an audit store URL (``sqlite:///path`` or ``postgresql://...``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._path: Path | None = None
        try:
            parsed = make_url(engine_url(url))
            backend = parsed.get_backend_name()
        except ArgumentError as exc:
            raise YidaiError(f"not an audit store URL: {redact(url)}") from exc
        if backend == "sqlite":
            if not parsed.database or parsed.database == ":memory:":
                raise YidaiError("the audit store must be a file (sqlite:///path)")
            self._path = Path(parsed.database)
        elif backend != "postgresql":
            raise YidaiError(
                f"audit store {redact(url)}: only sqlite:///path and "
                "postgresql://... URLs are supported"
            )

    def __enter__(self) -> AuditReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the PostgreSQL connections (nothing is held open for SQLite)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # ------------------------------------------------------------------ decisions
    def decisions(
        self,
        *,
        decision_id: str | None = None,
        entity_id: str | None = None,
        product: str | None = None,
        since: date | datetime | None = None,
        before: date | datetime | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Decisions (newest first) by id, customer / merchant / SME id, product and
        creation time (``since <= created_at < before``), at most ``limit`` of them:
        :data:`DECISION_COLUMNS`, with the response and audit record as JSON text."""
        clauses, params = self._decision_filter(product, since, before)
        if decision_id is not None:
            clauses.append("decision_id = :decision_id")
            params["decision_id"] = decision_id
        if entity_id is not None:
            clauses.append("entity_id = :entity_id")
            params["entity_id"] = entity_id
        sql = f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions{_where(clauses)}"
        sql += " ORDER BY created_at DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._frame(sql, params, DECISION_COLUMNS)

    def decision_outcomes(
        self,
        *,
        product: str | None = None,
        since: date | datetime | None = None,
        before: date | datetime | None = None,
    ) -> pd.DataFrame:
        """Outcomes of the decisions created in ``[since, before)``: :data:`OUTCOME_COLUMNS`,
        ``amount`` being the payment's amount or the credit request's requested amount."""
        clauses, params = self._decision_filter(product, since, before)
        sql = f"SELECT created_at, product, outcome, arm, record FROM decisions{_where(clauses)}"
        rows = self._frame(sql, params, ("created_at", "product", "outcome", "arm", "record"))
        amounts = [_requested_amount(record) for record in rows["record"]]
        frame = rows.drop(columns="record").assign(amount=pd.Series(amounts, dtype="float64"))
        return frame[list(OUTCOME_COLUMNS)]

    @staticmethod
    def _decision_filter(
        product: str | None, since: date | datetime | None, before: date | datetime | None
    ) -> tuple[list[str], dict[str, Any]]:
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if product is not None:
            clauses.append("product = :product")
            params["product"] = product
        if since is not None:
            clauses.append("created_at >= :since")
            params["since"] = _timestamp(since)
        if before is not None:
            clauses.append("created_at < :before")
            params["before"] = _timestamp(before)
        return clauses, params

    # ------------------------------------------------------------------ payments
    def payment_events(
        self,
        *,
        payer_id: str | None = None,
        since: date | datetime | None = None,
        before: date | datetime | None = None,
    ) -> pd.DataFrame:
        """Scored payments (oldest first) of one payer or all, with ``since <= ts < before``:
        :data:`PAYMENT_EVENT_COLUMNS` (never a card token)."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if payer_id is not None:
            clauses.append("payer_id = :payer")
            params["payer"] = payer_id
        if since is not None:
            clauses.append("ts_us >= :lo")
            params["lo"] = _epoch_us(since)
        if before is not None:
            clauses.append("ts_us < :hi")
            params["hi"] = _epoch_us(before)
        columns = tuple("ts_us" if c == "ts" else c for c in PAYMENT_EVENT_COLUMNS)
        sql = f"SELECT {', '.join(columns)} FROM payment_events{_where(clauses)} ORDER BY ts_us"
        frame = self._frame(sql, params, columns)
        ts = pd.to_datetime(frame["ts_us"].astype("int64"), unit="us", utc=True)
        frame = frame.assign(ts=ts, amount=frame["amount"].astype("float64"))
        return frame[list(PAYMENT_EVENT_COLUMNS)]

    # ------------------------------------------------------------------ ledger
    def lines(self, *, account_id: str | None = None, product: str | None = None) -> pd.DataFrame:
        """Credit lines (newest first) with their balances: :data:`LINE_COLUMNS`, ``drawn``
        and ``repaid`` summing the accepted drawdowns and repayments, ``outstanding`` their
        difference to the fen."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if account_id is not None:
            clauses.append("l.account_id = :account_id")
            params["account_id"] = account_id
        if product is not None:
            clauses.append("l.product = :product")
            params["product"] = product
        sql = f"{_LINES}{_where(clauses)} ORDER BY l.created_at DESC"
        frame = self._frame(sql, params, LINE_COLUMNS[:-1])
        for column in ("credit_limit", "drawn", "repaid"):
            frame[column] = frame[column].astype("float64")
        outstanding = [to_fen(d - r) for d, r in zip(frame["drawn"], frame["repaid"], strict=True)]
        return frame.assign(outstanding=pd.Series(outstanding, index=frame.index, dtype="float64"))

    # ------------------------------------------------------------------ plumbing
    def _frame(self, sql: str, params: dict[str, Any], columns: tuple[str, ...]) -> pd.DataFrame:
        """Run one SELECT; an absent store or table reads as an empty frame."""
        rows = self._rows(sql, params)
        return pd.DataFrame([tuple(row) for row in rows], columns=list(columns))

    def _rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        if self._path is not None:
            if not self._path.exists():
                return []
            try:
                uri = f"file:{self._path}?mode=ro"
                with closing(sqlite3.connect(uri, uri=True, timeout=5)) as con:
                    return con.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise YidaiError(f"cannot read the audit store {self._path}: {exc}") from exc
        try:
            if self._engine is None:
                self._engine = create_engine(engine_url(self.url), pool_pre_ping=True)
            with self._engine.connect() as con:
                return list(con.execute(text(sql), params).fetchall())
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == _PG_UNDEFINED_TABLE:
                return []
            raise YidaiError(f"cannot read the audit store {redact(self.url)}: {exc}") from exc
        except NoSuchModuleError as exc:
            raise YidaiError(f"cannot read the audit store {redact(self.url)}: {exc}") from exc

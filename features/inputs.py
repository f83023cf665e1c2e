"""Input checks of the batch jobs: a job as of a day needs that day's ingested data.

A feature build, training set, limit refresh or monitoring run as of a day the warehouse
holds nothing for would compute profiles from stale or no activity and publish them as if
they were current.  :func:`require_ingested_day` (on an open connection) and
:func:`require_warehouse_day` (on the file) refuse that with an error naming the warehouse
and the day (and the latest day it does hold).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from yidai.core.contracts import CONTRACTS, Contract
from yidai.core.errors import YidaiError
from yidai.core.settings import Settings
from yidai.core.warehouse import connect_tables, tables_location


def _event_contracts(con: duckdb.DuckDBPyConnection) -> list[Contract]:
    """Contracts whose table exists and whose event time is when the event happened
    (a schedule's future due date says nothing about what was delivered)."""
    listed = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    tables = {r[0] for r in listed}  # views too: the Spark engine's lake views
    return [
        c
        for c in CONTRACTS.values()
        if c.name in tables and c.event_time is not None and not c.future_event_time
    ]


def ingested_rows_on(con: duckdb.DuckDBPyConnection, day: dt.date) -> dict[str, bool]:
    """For each event table, whether it holds at least one row whose event time is on ``day``."""
    lo = dt.datetime.combine(day, dt.time())
    hi = lo + dt.timedelta(days=1)
    found: dict[str, bool] = {}
    for c in _event_contracts(con):
        row = con.execute(
            f'SELECT 1 FROM {c.name} WHERE "{c.event_time}" >= CAST(? AS TIMESTAMP) '
            f'AND "{c.event_time}" < CAST(? AS TIMESTAMP) LIMIT 1',
            [lo, hi],
        ).fetchall()
        found[c.name] = bool(row)
    return found


def latest_event_day(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The latest day with an event in any event table (None for a warehouse without any)."""
    latest: dt.date | None = None
    for c in _event_contracts(con):
        row = con.execute(f'SELECT CAST(max("{c.event_time}") AS DATE) FROM {c.name}').fetchall()
        day = row[0][0] if row else None
        if day is not None and (latest is None or day > latest):
            latest = day
    return latest


def require_ingested_day(
    con: duckdb.DuckDBPyConnection, day: dt.date, warehouse: Path | str
) -> None:
    """Raise :class:`YidaiError` unless the warehouse holds ingested rows on ``day``.

    ``warehouse`` only names the file in the message.  A warehouse without any contract
    table was never ingested into; one without an event on ``day`` has not received that
    day's deliveries (or ``day`` is after its data).
    """
    found = ingested_rows_on(con, day)
    if not found:
        raise YidaiError(
            f"warehouse {warehouse} holds no ingested tables; run `yidai ingest` first"
        )
    if any(found.values()):
        return
    latest = latest_event_day(con)
    held = f"its latest event is on {latest}" if latest else "its tables are empty"
    raise YidaiError(
        f"warehouse {warehouse} has no ingested rows for {day} ({held}); ingest that day's "
        f"landing files first (`yidai ingest --day {day}`)"
    )


def require_warehouse_day(
    warehouse: Path | None, day: dt.date, *, settings: Settings | None = None
) -> None:
    """Raise :class:`YidaiError` unless the warehouse file exists (it is never created) and
    holds ingested rows for ``day`` (:func:`require_ingested_day`); ``None``: the active
    engine's tables of ``settings`` (``yidai.core.warehouse.connect_tables``: the warehouse
    or the lake)."""

    con = connect_tables(warehouse, settings=settings, read_only=True)
    try:
        require_ingested_day(con, day, tables_location(warehouse, settings=settings))
    finally:
        con.close()

"""Build the portfolio tables from the warehouse and publish them for the dashboards.

The dashboards never open the DuckDB warehouse: a pipeline task calls
:func:`publish_portfolio` after ingestion, which aggregates the warehouse with DuckDB SQL and
publishes small Parquet tables under ``<serving>/portfolio`` with an atomic pointer swap
(:mod:`yidai.jobs.analytics.dashboard_tables`).

Each ``*_sql`` builder below is one documented aggregation over the contract tables; the
tests run them on hand-made tables in an in-memory DuckDB.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from yidai.core.errors import YidaiError
from yidai.core.settings import get_settings
from yidai.core.warehouse import connect_tables, tables_location
from yidai.jobs.analytics.dashboard_tables import publish_tables
from yidai.jobs.analytics.tiers import DEFAULT_TIERS, amount_tier_sql, payment_tiers

log = logging.getLogger(__name__)

PORTFOLIO_AREA = "portfolio"
REQUIRED_TABLES = (
    "loan_applications",
    "loan_performance",
    "loan_drawdowns",
    "pos_transactions",
    "payments",
    "fraud_reports",
)
MAX_MOB = 24

# First report per transaction (a transaction can be reported twice, e.g. fraud + chargeback).
_FIRST_REPORTS = """
    SELECT ref_type, ref_id, reported_at, fraud_type, amount AS loss_amount
    FROM fraud_reports
    QUALIFY row_number() OVER (PARTITION BY ref_type, ref_id ORDER BY reported_at, report_id) = 1
"""


def applications_daily_sql() -> str:
    """Applications, approvals, requested and booked (approved line) amounts per day and product."""
    return """
        SELECT CAST(ts AS DATE) AS day, product,
               count(*) AS applications,
               count(*) FILTER (WHERE decision = 'approved') AS approved,
               sum(requested_amount) AS requested_amount,
               coalesce(sum(approved_limit) FILTER (WHERE decision = 'approved'), 0)
                   AS booked_amount
        FROM loan_applications
        GROUP BY ALL ORDER BY day, product
    """


def exposure_monthly_sql() -> str:
    """Committed line, drawn balance, delinquent, frozen and charged-off accounts per
    month-end and product, with the definitions of :mod:`yidai.decisioning.exposure` (a tape
    row ``open`` is an active line): committed = line of active lines, drawn = balance of
    active and frozen lines, charged-off loss = charged off - recovered."""
    return """
        SELECT CAST(p.snapshot_date AS DATE) AS snapshot_date, a.product,
               count(*) AS accounts,
               coalesce(sum(p.credit_limit) FILTER (WHERE coalesce(p.status, 'open') = 'open'), 0)
                   AS committed,
               coalesce(sum(p.outstanding)
                   FILTER (WHERE coalesce(p.status, 'open') IN ('open', 'frozen')), 0) AS drawn,
               count(*) FILTER (WHERE p.days_past_due >= 30) AS dpd30_accounts,
               count(*) FILTER (WHERE p.days_past_due >= 90) AS dpd90_accounts,
               coalesce(sum(p.outstanding) FILTER (WHERE p.days_past_due >= 30), 0)
                   AS dpd30_balance,
               count(*) FILTER (WHERE p.status = 'frozen') AS frozen_accounts,
               count(*) FILTER (WHERE p.status = 'charged_off') AS charged_off_accounts,
               coalesce(sum(p.charged_off), 0) AS charged_off,
               coalesce(sum(p.charged_off - p.recovered), 0) AS charged_off_loss
        FROM loan_performance p
        JOIN loan_applications a ON a.application_id = p.account_id
        GROUP BY ALL ORDER BY snapshot_date, product
    """


def vintages_sql(as_of: date) -> str:
    """Cumulative 30+/90+ DPD counts by product, booking month and months on book.

    ``accounts`` is the cohort size (accounts opened that month); ``ever30`` and
    ``ever90`` count accounts whose month-end days past due reached 30 / 90 at any month on
    book ``<= mob``.  A cohort gets a row for ``mob`` only once it is that old at ``as_of``.
    """
    return f"""
        WITH booked AS (
            SELECT application_id, product, CAST(date_trunc('month', ts) AS DATE) AS booking_month
            FROM loan_applications  -- the accounts opened (a line review opens none)
            WHERE decision = 'approved' AND coalesce(account_id, application_id) = application_id
        ), firsts AS (
            SELECT b.application_id,
                   min(datediff('month', b.booking_month, date_trunc('month', p.snapshot_date)))
                       FILTER (WHERE p.days_past_due >= 30) AS first30,
                   min(datediff('month', b.booking_month, date_trunc('month', p.snapshot_date)))
                       FILTER (WHERE p.days_past_due >= 90) AS first90
            FROM booked b LEFT JOIN loan_performance p ON p.account_id = b.application_id
            GROUP BY b.application_id
        ), grid AS (
            SELECT DISTINCT product, booking_month, m.mob
            FROM booked, range(0, {MAX_MOB + 1}) AS m(mob)
            WHERE booking_month + to_months(CAST(m.mob AS INTEGER))
                  <= date_trunc('month', DATE '{as_of.isoformat()}')
        )
        SELECT g.product, g.booking_month, CAST(g.mob AS INTEGER) AS mob,
               count(*) AS accounts,
               count(*) FILTER (WHERE f.first30 <= g.mob) AS ever30,
               count(*) FILTER (WHERE f.first90 <= g.mob) AS ever90
        FROM grid g
        JOIN booked b USING (product, booking_month)
        JOIN firsts f USING (application_id)
        GROUP BY ALL ORDER BY g.product, g.booking_month, mob
    """


def drawdowns_daily_sql() -> str:
    """Drawdown count, amount and drawing accounts per day and product."""
    return """
        SELECT CAST(d.ts AS DATE) AS day, a.product,
               count(*) AS drawdowns, sum(d.amount) AS amount,
               count(DISTINCT d.account_id) AS accounts
        FROM loan_drawdowns d
        JOIN loan_applications a ON a.application_id = d.account_id
        GROUP BY ALL ORDER BY day, product
    """


def fraud_events_sql(tiers: tuple[tuple[str, float], ...] = DEFAULT_TIERS) -> str:
    """Every reported fraud with its transaction: time, amount tier, outcome, where it happened.

    ``caught`` is true when the bank blocked the transaction (POS ``declined``, payment
    ``failed``); otherwise the fraud went through and was missed.
    """
    return f"""
        WITH fr AS ({_FIRST_REPORTS})
        SELECT fr.ref_type, fr.ref_id, t.ts, fr.reported_at, fr.fraud_type, fr.loss_amount,
               t.amount AS txn_amount, {amount_tier_sql("t.amount", tiers)} AS tier,
               t.status, t.status = 'declined' AS caught,
               t.merchant_id, t.terminal_id, 'pos' AS channel
        FROM fr JOIN pos_transactions t ON fr.ref_type = 'pos' AND t.txn_id = fr.ref_id
        UNION ALL
        SELECT fr.ref_type, fr.ref_id, p.ts, fr.reported_at, fr.fraud_type, fr.loss_amount,
               p.amount, {amount_tier_sql("p.amount", tiers)},
               p.status, p.status = 'failed',
               NULL, NULL, p.channel
        FROM fr JOIN payments p ON fr.ref_type = 'payment' AND p.payment_id = fr.ref_id
        ORDER BY ts
    """


def txn_tiers_sql(tiers: tuple[tuple[str, float], ...] = DEFAULT_TIERS) -> str:
    """Card transactions and outgoing online payments per day, channel kind and amount tier."""
    return f"""
        SELECT CAST(ts AS DATE) AS day, 'pos' AS ref_type,
               {amount_tier_sql("amount", tiers)} AS tier,
               count(*) AS txns, sum(amount) AS amount,
               count(*) FILTER (WHERE status = 'declined') AS blocked
        FROM pos_transactions WHERE status IN ('approved', 'declined')
        GROUP BY ALL
        UNION ALL
        SELECT CAST(ts AS DATE), 'payment', {amount_tier_sql("amount", tiers)},
               count(*), sum(amount), count(*) FILTER (WHERE status = 'failed')
        FROM payments WHERE payment_type IN ('e_payment', 'transfer_out')
        GROUP BY ALL
        ORDER BY day, ref_type, tier
    """


def terminal_risk_sql() -> str:
    """Per POS terminal: volume, reported frauds, and cards later defrauded (skimming signal).

    ``cards_later_defrauded`` counts distinct cards that made a genuine transaction at the
    terminal and suffered a reported fraud *later* (anywhere): the footprint of skimming.
    """
    return f"""
        WITH fr AS ({_FIRST_REPORTS}),
        tx AS (
            SELECT t.terminal_id, t.merchant_id, t.card_token, t.ts, t.amount,
                   fr.ref_id IS NOT NULL AS is_fraud, fr.loss_amount
            FROM pos_transactions t
            LEFT JOIN fr ON fr.ref_type = 'pos' AND fr.ref_id = t.txn_id
        ), card_fraud AS (
            SELECT card_token, min(ts) AS first_fraud_ts FROM tx WHERE is_fraud GROUP BY 1
        )
        SELECT tx.terminal_id, any_value(tx.merchant_id) AS merchant_id,
               count(*) AS txns, sum(tx.amount) AS amount,
               count(*) FILTER (WHERE tx.is_fraud) AS frauds,
               coalesce(sum(tx.loss_amount), 0) AS fraud_amount,
               count(DISTINCT tx.card_token) AS cards,
               count(DISTINCT tx.card_token) FILTER (
                   WHERE NOT tx.is_fraud AND c.first_fraud_ts > tx.ts
               ) AS cards_later_defrauded
        FROM tx LEFT JOIN card_fraud c USING (card_token)
        GROUP BY tx.terminal_id ORDER BY tx.terminal_id
    """


def merchant_cashout_sql() -> str:
    """Per merchant, the cash-out footprints: round amounts, few cards swiped many times.

    ``round_share``: share of approved transactions in whole hundreds of CNY;
    ``top3_card_share``: share of turnover from the merchant's three biggest cards;
    ``swipes_per_card``: approved transactions per distinct card;
    ``cash_out_reports``: confirmed ``merchant_cash_out`` reports on its transactions.
    """
    return f"""
        WITH tx AS (
            SELECT txn_id, merchant_id, card_token, amount FROM pos_transactions
            WHERE status = 'approved'
        ), per_card AS (
            SELECT merchant_id, card_token, count(*) AS n, sum(amount) AS amt,
                   count(*) FILTER (WHERE amount >= 100 AND amount % 100 = 0) AS n_round
            FROM tx GROUP BY ALL
        ), ranked AS (
            SELECT *, row_number() OVER (PARTITION BY merchant_id ORDER BY amt DESC, card_token)
                AS rk
            FROM per_card
        ), reports AS (
            SELECT t.merchant_id, count(*) AS cash_out_reports
            FROM ({_FIRST_REPORTS}) fr
            JOIN pos_transactions t ON fr.ref_type = 'pos' AND t.txn_id = fr.ref_id
            WHERE fr.fraud_type = 'merchant_cash_out'
            GROUP BY 1
        )
        SELECT r.merchant_id, sum(n) AS txns, sum(amt) AS amount, count(*) AS cards,
               sum(n_round) / sum(n) AS round_share,
               coalesce(sum(amt) FILTER (WHERE rk <= 3), 0) / sum(amt) AS top3_card_share,
               sum(n) / count(*) AS swipes_per_card,
               coalesce(any_value(rep.cash_out_reports), 0) AS cash_out_reports
        FROM ranked r LEFT JOIN reports rep USING (merchant_id)
        GROUP BY r.merchant_id ORDER BY r.merchant_id
    """


def portfolio_tables(
    con: duckdb.DuckDBPyConnection,
    as_of: date,
    tiers: tuple[tuple[str, float], ...] = DEFAULT_TIERS,
) -> dict[str, pd.DataFrame]:
    """Every portfolio table, computed on a connection holding the contract tables."""
    queries = {
        "applications_daily": applications_daily_sql(),
        "exposure_monthly": exposure_monthly_sql(),
        "vintages": vintages_sql(as_of),
        "drawdowns_daily": drawdowns_daily_sql(),
        "fraud_events": fraud_events_sql(tiers),
        "txn_tiers": txn_tiers_sql(tiers),
        "terminal_risk": terminal_risk_sql(),
        "merchant_cashout": merchant_cashout_sql(),
    }
    return {name: con.execute(sql).df() for name, sql in queries.items()}


def warehouse_as_of(con: duckdb.DuckDBPyConnection) -> date:
    """The latest event day in the warehouse (applications or POS transactions)."""
    row = con.execute(
        "SELECT greatest((SELECT max(ts) FROM loan_applications),"
        " (SELECT max(ts) FROM pos_transactions))"
    ).fetchone()
    if row is None or row[0] is None:
        raise YidaiError(
            "the warehouse holds no applications or transactions yet; run `yidai ingest`"
        )
    value = row[0]
    return value.date() if isinstance(value, datetime) else value


def publish_portfolio(
    warehouse: Path | None = None, serving: Path | None = None, as_of: date | None = None
) -> str:
    """Aggregate the warehouse (opened read-only) and publish ``<serving>/portfolio``.

    Returns the published version.  Call it from the pipeline after ingestion, inside the
    warehouse pool (a read-only DuckDB open fails while another process writes the file).
    """
    settings = get_settings()
    serving = serving or settings.serving
    con = connect_tables(warehouse, read_only=True)  # None: the active engine's tables
    try:
        listed = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        present = {r[0] for r in listed}
        missing = [t for t in REQUIRED_TABLES if t not in present]
        if missing:
            raise YidaiError(
                f"{tables_location(warehouse)} lacks tables {missing}; run `yidai ingest`"
            )
        as_of = as_of or warehouse_as_of(con)
        tiers = payment_tiers()
        tables = portfolio_tables(con, as_of, tiers)
    finally:
        con.close()
    meta: dict[str, object] = {"as_of": as_of.isoformat(), "tiers": [lab for lab, _ in tiers]}
    version = publish_tables(serving / PORTFOLIO_AREA, tables, meta)
    log.info("published portfolio tables %s as of %s", version, as_of)
    return version

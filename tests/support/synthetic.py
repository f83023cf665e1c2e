"""Contract-shaped synthetic warehouse data written straight into DuckDB (tests, benchmarks).

Not a simulator (no latent signal worth modelling): it only gives every table of the
contracts plausible, deterministic rows at any size, generated inside DuckDB so that 10M rows
take seconds.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from features.engine import fetch_one
from yidai.core.contracts import MCC_CODES
from yidai.core.warehouse import ensure_tables

_MCCS = "[" + ", ".join(f"'{m}'" for m in MCC_CODES) + "]"


def _r(i: str, k: int) -> str:
    """A deterministic pseudo-random number in [0, 1) from row id ``i`` and salt ``k``."""
    return f"((hash({i}, {k}) % 1000003) / 1000003.0)"


def synthetic_warehouse(
    con: duckdb.DuckDBPyConnection,
    *,
    n_pos: int = 20_000,
    n_payments: int = 5_000,
    n_orders: int = 2_000,
    start: dt.date = dt.date(2025, 10, 1),
    days: int = 365,
    seed: int = 7,
) -> dict[str, int]:
    """Fill the contract tables with synthetic rows; returns the row count per table."""
    ensure_tables(con)
    n_cust = max(n_pos // 40, 50)
    n_merch = max(n_pos // 4000, 10)
    n_sme = max(n_payments // 200, 10)
    n_sellers = 40
    s = seed * 100
    t0 = f"TIMESTAMP '{start.isoformat()}'"
    span = f"INTERVAL (CAST({_r('i', s + 1)} * {days * 86400} AS BIGINT)) SECOND"
    lineage = "'synthetic', now()"
    con.execute(
        f"""INSERT INTO customers SELECT 'C' || i, {t0} - INTERVAL (i % 900) DAY,
        ['18-24','25-34','35-44','45-54','55+'][1 + i % 5], CAST(1 + i % 4 AS VARCHAR),
        ['low','lower_mid','mid','upper_mid','high'][1 + i % 5], {lineage}
        FROM range({n_cust}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO cards SELECT 'K' || i, 'C' || i, {t0} - INTERVAL (i % 800) DAY,
        CASE WHEN i % 3 = 0 THEN 'credit' ELSE 'debit' END, {lineage} FROM range({n_cust}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO merchants SELECT 'M' || i, {t0} - INTERVAL (i % 700) DAY,
        ['restaurant','supermarket','general_store','gas_station','other'][1 + i % 5],
        {_MCCS}[1 + i % {len(MCC_CODES)}], CAST(1 + i % 4 AS VARCHAR), 'ACC' || i, {lineage}
        FROM range({n_merch}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO terminals SELECT 'T' || i, 'M' || (i // 2), {t0} - INTERVAL 30 DAY,
        {lineage} FROM range({2 * n_merch}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO smes SELECT 'S' || i, {t0} - INTERVAL (i % 600) DAY, 'trade',
        CAST(1 + i % 4 AS VARCHAR), {lineage} FROM range({n_sme}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO mall_sellers SELECT 'SL' || i, {t0} - INTERVAL 100 DAY,
        CASE WHEN i % 2 = 0 THEN 'b2b' ELSE 'b2c' END,
        CASE WHEN i % 2 = 0 THEN 'S' || (i % {n_sme}) END,
        ['electronics','apparel','home','food','beauty','books','auto','industrial',
         'office'][1 + i % 9], {lineage} FROM range({n_sellers}) t(i)"""
    )
    # POS: customers pick a home merchant most of the time; 10% foreign cards (no customer).
    con.execute(
        f"""INSERT INTO pos_transactions SELECT 'P' || i, {t0} + {span},
        CASE WHEN c < 0 THEN 'X' || (i % 997) ELSE 'K' || c END,
        CASE WHEN c < 0 THEN NULL ELSE 'C' || c END,
        'M' || m, 'T' || (2 * m + i % 2), {_MCCS}[1 + m % {len(MCC_CODES)}],
        CASE WHEN {_r("i", s + 5)} < 0.02 THEN 500.0 * (1 + i % 4)
             ELSE round(5 + exp(1 + 5 * {_r("i", s + 6)}), 2) END,
        ['chip','contactless','magstripe','manual'][
          1 + CAST(floor({_r("i", s + 7)} ^ 3 * 4) AS INT)],
        CASE WHEN u < 0.90 THEN 'approved' WHEN u < 0.94 THEN 'declined'
             WHEN u < 0.98 THEN 'refund' ELSE 'chargeback' END, {lineage}
        FROM (SELECT i,
          CASE WHEN {_r("i", s + 2)} < 0.1 THEN -1
               ELSE CAST(floor({_r("i", s + 3)} ^ 2 * {n_cust}) AS BIGINT) END AS c,
          CAST(floor({_r("i", s + 4)} ^ 1.5 * {n_merch}) AS BIGINT) AS m,
          {_r("i", s + 8)} AS u FROM range({n_pos}) t(i))"""
    )
    con.execute(
        f"""INSERT INTO payments SELECT 'Y' || i, {t0} + {span},
        CASE WHEN sme THEN 'sme' ELSE 'customer' END,
        CASE WHEN sme THEN 'S' || (i % {n_sme}) ELSE 'C' || (i % {n_cust}) END,
        typ, CASE WHEN typ = 'bill' THEN ['telecom','utilities','transport','education','tax',
          'other'][1 + i % 6] END,
        'CP' || (i % 37), round(10 + exp(1 + 6 * {_r("i", s + 11)}), 2),
        ['app','online_banking','mobile_banking','self_service','other'][1 + i % 5],
        CASE WHEN {_r("i", s + 12)} < 0.05 THEN 'DN' || i ELSE 'D' || (i % {n_cust}) END,
        CASE WHEN {_r("i", s + 13)} < 0.05 THEN 'failed' ELSE 'success' END,
        CASE WHEN typ = 'bill' THEN CAST({t0} + {span} AS DATE)
             + CAST(round({_r("i", s + 14)} * 10 - 2) AS INTEGER) END, {lineage}
        FROM (SELECT i, {_r("i", s + 9)} < 0.2 AS sme,
          ['e_payment','bill','transfer_out','transfer_in'][
            1 + CAST(floor({_r("i", s + 10)} * 4) AS INT)]
            AS typ FROM range({n_payments}) t(i))"""
    )
    con.execute(
        f"""INSERT INTO mall_orders SELECT 'O' || i, {t0} + {span},
        CASE WHEN i % 5 = 0 THEN 'sme' ELSE 'customer' END,
        CASE WHEN i % 5 = 0 THEN 'S' || (i % {n_sme}) ELSE 'C' || (i % {n_cust}) END,
        'SL' || (i % {n_sellers}), 'home', round(20 + exp(2 + 4 * {_r("i", s + 15)}), 2),
        ['card','e_payment','instalment'][1 + i % 3],
        CASE WHEN {_r("i", s + 16)} < 0.85 THEN 'paid' WHEN {_r("i", s + 16)} < 0.93
             THEN 'cancelled' ELSE 'refunded' END, {lineage}
        FROM range({n_orders}) t(i)"""
    )
    # Loan book: applications across the year, monthly performance tape for approved ones.
    n_apps = max(n_cust // 5, 30)
    con.execute(
        f"""INSERT INTO loan_applications SELECT 'A' || i, {t0} + {span}, prod,
        CASE prod WHEN 'personal' THEN 'C' || (i % {n_cust}) WHEN 'merchant'
             THEN 'M' || (i % {n_merch}) ELSE 'S' || (i % {n_sme}) END,
        5000 + 100 * (i % 50), dec, CASE WHEN dec = 'approved' THEN 5000 ELSE 0 END,
        CASE WHEN dec = 'approved' THEN 0.08 END,
        CASE WHEN dec = 'approved' THEN 'A' || i END, {lineage}
        FROM (SELECT i, ['personal','merchant','sme'][1 + i % 3] AS prod,
          CASE WHEN {_r("i", s + 17)} < 0.7 THEN 'approved' ELSE 'declined' END AS dec
          FROM range({n_apps}) t(i))"""
    )
    con.execute(
        f"""INSERT INTO loan_performance
        SELECT a.application_id, last_day(a.ts + INTERVAL (m) MONTH), 5000,
               round(2500 * {_r("hash(a.application_id)", s + 18)}, 2),
               CASE WHEN {_r("hash(a.application_id)", s + 19)} < 0.15
                    THEN least(30 * m, 180) ELSE 0 END,
               CASE WHEN {_r("hash(a.application_id)", s + 19)} < 0.15 AND m >= 1
                    THEN 'frozen' ELSE 'open' END, 0, 0, {lineage}
        FROM loan_applications a, range(0, 13) r(m)
        WHERE a.decision = 'approved'
          AND last_day(a.ts + INTERVAL (m) MONTH) < {t0} + INTERVAL {days} DAY"""
    )
    con.execute(
        f"""INSERT INTO loan_repayments
        SELECT a.application_id || '-' || m, a.application_id,
               a.ts + INTERVAL (m + 1) MONTH, 500,
               a.ts + INTERVAL (m + 1) MONTH + INTERVAL (d) DAY, 500, d, {lineage}
        FROM (SELECT a.*, m,
                greatest(CAST(10 * {_r("hash(a.application_id)", s + 20)} AS INT) - 5, 0) AS d
              FROM loan_applications a, range(0, 6) r(m) WHERE a.decision = 'approved') a
        WHERE a.ts + INTERVAL (m + 1) MONTH < {t0} + INTERVAL {days} DAY"""
    )
    # Fraud reports on ~1% of POS transactions and payments, 3-40 days later.
    con.execute(
        f"""INSERT INTO fraud_reports
        SELECT 'R' || txn_id, ts + INTERVAL (3 + CAST({_r("hash(txn_id)", s + 21)} * 37 AS INT))
               DAY, 'pos', txn_id, 'compromised_card', amount, {lineage}
        FROM pos_transactions WHERE status <> 'refund' AND {_r("hash(txn_id)", s + 22)} < 0.01
        UNION ALL
        SELECT 'R' || payment_id, ts + INTERVAL (3 + CAST({_r("hash(payment_id)", s + 23)} * 37
               AS INT)) DAY, 'payment', payment_id, 'account_takeover', amount, {lineage}
        FROM payments WHERE payment_type <> 'transfer_in'
          AND {_r("hash(payment_id)", s + 24)} < 0.01"""
    )
    tables = [
        "customers",
        "cards",
        "merchants",
        "terminals",
        "smes",
        "mall_sellers",
        "pos_transactions",
        "payments",
        "mall_orders",
        "loan_applications",
        "loan_performance",
        "loan_repayments",
        "fraud_reports",
    ]
    counts: dict[str, int] = {}
    for t in tables:
        row = fetch_one(con, f"SELECT count(*) FROM {t}")
        counts[t] = int(row[0]) if row else 0
    return counts


def synthetic_merchant_profiles(
    n: int,
    seed: int,
    *,
    seasonal_sd: float = 0.1,
    delinquent_share: float = 0.0,
    min_tenure_days: float = 200.0,
) -> pd.DataFrame:
    """Seeded merchant credit profile columns (v2's and v4's) plus a ``label`` drawn from a known
    logistic PD (low turnover, high volatility and chargebacks raise it), for the limit
    refresh's tests and benchmark."""
    rng = np.random.default_rng(seed)
    t90 = rng.lognormal(11.8, 0.8, n)
    cv = rng.uniform(0.05, 0.8, n)
    cb = rng.uniform(0, 0.012, n)
    frame = pd.DataFrame(
        {
            "merchant_net_turnover_30d": t90 / 3 * rng.uniform(0.7, 1.3, n),
            "merchant_net_turnover_90d": t90,
            "merchant_net_turnover_180d": 2 * t90 * rng.uniform(0.8, 1.2, n),
            "merchant_turnover_trend_90d": rng.normal(1, 0.15, n),
            "merchant_turnover_volatility_180d": cv,
            "merchant_daily_volatility_90d": cv * 2,
            "merchant_active_days_30d": rng.integers(15, 31, n).astype(float),
            "merchant_active_days_90d": rng.integers(50, 91, n).astype(float),
            "merchant_txn_count_30d": rng.integers(100, 2000, n).astype(float),
            "merchant_avg_ticket_90d": rng.uniform(20, 300, n),
            "merchant_top_card_share_90d": rng.uniform(0.01, 0.3, n),
            "merchant_distinct_cards_90d": rng.integers(50, 3000, n).astype(float),
            "merchant_chargeback_rate_90d": cb,
            "merchant_refund_ratio_90d": rng.uniform(0, 0.05, n),
            "merchant_round_share_90d": rng.uniform(0, 0.1, n),
            "merchant_seasonal_decline_30d": rng.normal(0, seasonal_sd, n),
            "merchant_credit_utilisation_180d": rng.uniform(0, 1, n),
            "merchant_max_dpd_180d": (
                np.where(rng.random(n) < delinquent_share, 30.0, 0.0)
                if delinquent_share > 0
                else np.zeros(n)
            ),
            "merchant_tenure_days_life": rng.uniform(min_tenure_days, 3000, n),
        }
    )
    logit = -6.0 - 1.2 * (np.log(t90) - 11.8) + 2.0 * cv + 150 * cb
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    # the v2 columns, drawn after the label so the v1 columns and labels stay as they were
    night = rng.uniform(0, 0.08, n)
    refunds = rng.uniform(0, 0.06, n)
    frame = frame.assign(
        merchant_night_share_90d=night * rng.uniform(0.8, 1.2, n),
        merchant_night_share_180d=night,
        merchant_refund_rate_90d=refunds * rng.uniform(0.8, 1.2, n),
        merchant_refund_rate_180d=refunds,
        merchant_chargeback_rate_180d=cb * rng.uniform(0.8, 1.2, n),
    )
    # v4's other banks' cardholders, drawn last so every earlier column stays as it was
    return frame.assign(
        merchant_offus_night_share_90d=night * rng.uniform(0.6, 1.4, n),
        merchant_offus_night_share_180d=night * rng.uniform(0.8, 1.2, n),
        merchant_offus_refund_rate_90d=refunds * rng.uniform(0.6, 1.4, n),
        merchant_offus_refund_rate_180d=refunds * rng.uniform(0.8, 1.2, n),
        merchant_offus_ticket_premium_180d=rng.normal(0, 0.1, n),
        merchant_offus_card_repeat_90d=rng.uniform(0.3, 0.8, n),
    )

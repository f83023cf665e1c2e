"""The demo book as of its last day, against issues 16 and 17's "Done when" (prints figures).

    .venv/bin/python benchmarks/check_demo_book.py --home /tmp/h1-demo [--as-of 2026-09-30]

Reads a finished demo home (``make demo``'s ``YIDAI_HOME``) and prints: the month-end tape's
open lines with a balance above their line, and whether each is within the accrual rule
(``line x (1 + rate x CHARGE_OFF_DPD / 365)``: a delinquent balance accrues interest until it
is charged off); the published merchant limits (live version): frozen / active lines, each
frozen line's reason, active lines above their line; whether the Merchant limits page's tiles
and bars reconcile (``yidai.jobs.analytics.merchant_lines``); the limit refresh runs per day
(a day the circuit breaker refused has no version); the last monitoring run's drift rows at
or above the alert threshold (``monitoring_daily`` alerts on them).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from models.drift import DriftThresholds
from simulator.loans import CHARGE_OFF_DPD
from yidai.jobs.analytics.dashboard_tables import read_meta, read_table
from yidai.jobs.analytics.merchant_lines import exposure_by_grade, line_kpis
from yidai.jobs.limits import read_limit_runs, read_limits_summary, read_limits_table
from yidai.jobs.limits.refresh import read_loan_book


def tape_over_line(warehouse: Path, as_of: date) -> pd.DataFrame:
    """Open accounts on the latest month-end row up to ``as_of`` with a balance above the line."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(
            """
            WITH last AS (
                SELECT p.*, a.product, a.annual_rate
                FROM loan_performance p
                JOIN loan_applications a ON a.application_id = p.account_id
                WHERE p.snapshot_date < $cutoff
                QUALIFY row_number() OVER (PARTITION BY p.account_id
                                           ORDER BY p.snapshot_date DESC) = 1
            )
            SELECT product, status, account_id, snapshot_date, credit_limit, outstanding,
                   days_past_due, annual_rate
            FROM last WHERE status IN ('open', 'frozen') AND outstanding > credit_limit + 0.005
            ORDER BY product, account_id
            """,
            {"cutoff": pd.Timestamp(as_of) + pd.Timedelta(days=1)},
        ).df()
    finally:
        con.close()


def account_rates(warehouse: Path) -> pd.DataFrame:
    """Each merchant line's annual rate (its opening application's)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(
            "SELECT application_id AS account_id, annual_rate FROM loan_applications "
            "WHERE product = 'merchant'"
        ).df()
    finally:
        con.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 9, 30))
    args = parser.parse_args()
    home: Path = args.home
    serving = home / "serving"

    print(f"== tape (loan_performance) as of {args.as_of}: open lines above their line")
    over = tape_over_line(home / "warehouse" / "yidai.duckdb", args.as_of)
    bound = over["credit_limit"] * (1 + over["annual_rate"] * CHARGE_OFF_DPD / 365)
    over["within_accrual_rule"] = over["outstanding"] <= bound + 0.005
    print(over.groupby(["product", "status"]).size().to_string() if len(over) else "none")
    print(f"beyond the accrual rule: {int((~over['within_accrual_rule']).sum())}")
    print(f"with days past due > 0: {int((over['days_past_due'] > 0).sum())} of {len(over)}")

    print("\n== published merchant limits (live version)")
    limits = read_limits_table(serving)
    summary = read_limits_summary(serving)
    print(f"version {summary.get('version')} as of {summary.get('as_of')}")
    status = limits["status"].astype(str)
    active, frozen = int((status == "active").sum()), int((status == "frozen").sum())
    print(f"active {active}, frozen {frozen}: frozen / active = {frozen / max(active, 1):.1%}")
    print(f"frozen / open (active + frozen) = {frozen / max(active + frozen, 1):.1%}")
    print("frozen lines by reason:")
    print(limits.loc[status == "frozen", "reason_code"].astype(str).value_counts().to_string())
    no_reason = limits.loc[status == "frozen", "reason_code"].isna().sum()
    print(f"frozen without a reason: {int(no_reason)}")
    above = limits[(status == "active") & (limits["outstanding"] > limits["credit_line"] + 0.005)]
    print(f"active lines with outstanding above the published line: {len(above)}")
    if len(above):
        book = read_loan_book(home / "warehouse" / "yidai.duckdb", args.as_of)
        rates = account_rates(home / "warehouse" / "yidai.duckdb")
        above = above.merge(book[["merchant_id", "account_id", "book_line", "dpd"]], how="left")
        above = above.merge(rates, on="account_id", how="left")
        bound = above["book_line"] * (1 + above["annual_rate"] * CHARGE_OFF_DPD / 365)
        above["past_book_line"] = above["outstanding"] > above["book_line"] + 0.005
        above["within_accrual_rule"] = above["outstanding"] <= bound + 0.005
        cols = ["merchant_id", "credit_line", "book_line", "outstanding", "dpd", "reason_code"]
        print(above[[*cols, "past_book_line", "within_accrual_rule"]].to_string())
        beyond = int((~above["past_book_line"] | ~above["within_accrual_rule"]).sum())
        print(f"above the line other than by accrual past the book's line: {beyond}")
    print("decisions:", limits["decision"].astype(str).value_counts().to_dict())

    print("\n== Merchant limits page: tiles vs bars")
    kpis = line_kpis(limits)
    bars = exposure_by_grade(limits)
    bars_total = float((bars["drawn"] + bars["available"]).sum())
    print(json.dumps({k: round(v, 4) for k, v in kpis.items()}))
    print(f"bars total {bars_total:,.2f} vs exposure tile {kpis['exposure']:,.2f}")
    reconciles = np.isclose(bars_total, kpis["exposure"]) and np.isclose(
        kpis["exposure"], kpis["drawn"] + kpis["available"]
    )
    print(f"reconcile: {bool(reconciles)}")

    print("\n== limit refresh runs")
    runs = read_limit_runs(serving)
    if len(runs):
        cols = [c for c in ("as_of", "version", "merchants", "frozen", "active") if c in runs]
        print(runs[cols].to_string())

    print("\n== monitoring (last published run)")
    area = serving / "monitoring"
    meta = read_meta(area)
    print(f"as of {meta.get('as_of')}")
    drift = read_table(area, "drift")
    if drift is None:
        print("no drift table published")
        return 0
    alert = DriftThresholds().alert
    psi = pd.to_numeric(drift["psi"], errors="coerce")
    cols = [c for c in ("model", "feature", "psi", "status", "reference", "moved") if c in drift]
    print(f"rows at or above the alert threshold {alert}: {int((psi >= alert).sum())}")
    print(drift.loc[psi >= alert, cols].to_string() if (psi >= alert).any() else "none")
    print("largest PSIs:")
    print(drift.assign(psi=psi).nlargest(10, "psi")[cols].to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())

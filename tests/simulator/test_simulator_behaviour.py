"""Seasonality, fraud scenarios, the loan book and the learnable credit signal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from simulator.signal import signal_report
from yidai.core.errors import YidaiError

if TYPE_CHECKING:
    from conftest import SimRun


def _glob(run: SimRun, source: str) -> str:
    files = [
        str(f)
        for f in sorted((run.landing / source).glob("dt=*/part-*.parquet"))
        if not f.name.startswith("part-zz-")
    ]
    return f"read_parquet({files!r})"


def test_double_eleven_peak_and_spring_festival_dip(tiny_run: SimRun) -> None:
    con = duckdb.connect()
    daily = dict(
        con.execute(
            f"select ts::date, count(*) from {_glob(tiny_run, 'mall_orders')} "
            "where ts::date between '2025-10-15' and '2025-11-30' group by 1"
        ).fetchall()
    )
    import datetime as dt

    peak = daily[dt.date(2025, 11, 11)]
    others = [v for d, v in daily.items() if d != dt.date(2025, 11, 11)]
    assert peak > 3 * np.mean(others)
    weekly = dict(
        con.execute(
            "select date_trunc('week', ts)::date, count(*) "
            f"from {_glob(tiny_run, 'pos_transactions')} "
            "where status = 'approved' group by 1"
        ).fetchall()
    )
    festival_week = weekly[dt.date(2026, 2, 16)]  # Spring Festival: 2026-02-17
    march = [weekly[dt.date(2026, 3, 2)], weekly[dt.date(2026, 3, 9)], weekly[dt.date(2026, 3, 16)]]
    assert festival_week < 0.7 * np.mean(march)


def test_fraud_scenarios_are_present_and_reported_late(tiny_run: SimRun) -> None:
    con = duckdb.connect()
    fraud = pq.read_table(tiny_run.truth / "fraud.parquet").to_pandas()
    assert set(fraud["fraud_type"]) == {
        "compromised_card",
        "skimming",
        "account_takeover",
        "merchant_cash_out",
        "chargeback",
    }
    pos_rows = con.execute(f"select count(*) from {_glob(tiny_run, 'pos_transactions')}").fetchone()
    pos_fraud = fraud[(fraud.ref_type == "pos") & (fraud.fraud_type != "chargeback")]
    assert pos_rows is not None
    assert 0.0005 < len(pos_fraud) / pos_rows[0] < 0.01
    reports = con.execute(
        f"select r.ref_id, r.reported_at, r.fraud_type from {_glob(tiny_run, 'fraud_reports')} r"
    ).df()
    merged = reports.merge(fraud, on="ref_id", suffixes=("_rep", ""))
    assert len(merged) >= 0.95 * len(reports), "reports refer to fraudulent rows of the truth"
    merged = merged[merged["reported_at_rep"].notna()]  # a null here is an injected defect
    delay = (merged["reported_at_rep"] - merged["ts"]).dt.total_seconds() / 86_400
    assert (delay > 0).all()
    assert delay.median() >= 1.0
    assert fraud["reported_at"].isna().any(), "some fraud is never (or not yet) reported"
    # scenario fingerprints
    detail = (
        con.execute(
            "select p.txn_id, p.amount as txn_amount, p.entry_mode, p.customer_id "
            f"from {_glob(tiny_run, 'pos_transactions')} p"
        )
        .df()
        .merge(fraud, left_on="txn_id", right_on="ref_id")
    )
    skim = detail[detail.fraud_type == "skimming"]
    assert (skim.entry_mode == "magstripe").mean() > 0.7
    cash = detail[detail.fraud_type == "merchant_cash_out"]
    assert (cash.txn_amount % 1000 == 0).all() and cash.customer_id.isna().all()
    card = detail[detail.fraud_type == "compromised_card"]
    assert card.txn_amount.median() > 1000
    ato = fraud[fraud.fraud_type == "account_takeover"].merge(
        con.execute(
            f"select payment_id, device_id, payer_id from {_glob(tiny_run, 'payments')}"
        ).df(),
        left_on="ref_id",
        right_on="payment_id",
    )
    usual = con.execute(
        f"select distinct payer_id, device_id from {_glob(tiny_run, 'payments')} "
        "where payment_id not in "
        f"(select ref_id from read_parquet('{tiny_run.truth}/fraud.parquet'))"
    ).df()
    seen = set(zip(usual.payer_id, usual.device_id, strict=True))
    assert not any((p, d) in seen for p, d in zip(ato.payer_id, ato.device_id, strict=True))


def test_disputed_sales_are_reported_up_to_the_period_end(tiny_run: SimRun) -> None:
    """The reports of disputed sales do not depend on whether their chargeback (15-60 days
    later) falls inside the period: the last month's sales are disputed and reported at the
    same rate as the earlier months' (they once fell to a tenth, a drift the monitoring saw)."""
    con = duckdb.connect()
    rates = con.execute(
        f"""
        with sales as (
            select date_trunc('month', ts) as month, count(*) as n
            from {_glob(tiny_run, "pos_transactions")} where status = 'approved' group by 1
        ), reported as (
            select date_trunc('month', f.ts) as month, count(*) as n
            from read_parquet('{tiny_run.truth}/fraud.parquet') f
            join {_glob(tiny_run, "fraud_reports")} r on r.ref_id = f.ref_id
            where f.fraud_type = 'chargeback' group by 1
        )
        select s.month, r.n / s.n from sales s join reported r using (month) order by 1
        """
    ).fetchall()
    earlier = np.mean([rate for _, rate in rates[1:-1]])
    last_month, last_rate = rates[-1]
    assert last_rate > 0.8 * earlier, (last_month, last_rate, earlier)


def test_loan_book_matches_truth(tiny_run: SimRun) -> None:
    con = duckdb.connect()
    apps = pq.read_table(tiny_run.truth / "applications.parquet").to_pandas()
    assert set(apps["product"]) == {"personal", "merchant", "sme"}
    assert apps["true_pd"].between(0, 1, inclusive="neither").all()
    assert (apps["decision"] == "declined").any()
    assert (apps["ts"] >= np.datetime64("2025-11-01")).all(), "history exists before applying"
    tape = con.execute(
        f"select account_id, max(days_past_due) as dpd from {_glob(tiny_run, 'loan_performance')} "
        "group by 1"
    ).df()
    booked = apps[apps["decision"] == "approved"].merge(tape, on="account_id", how="left")
    assert booked["dpd"].notna().mean() > 0.95
    opened = set(apps["account_id"].dropna())
    stray = set(tape["account_id"]) - opened  # only ids the injected defects broke
    assert len(stray) <= 0.02 * len(opened)
    end = np.datetime64("2026-09-30")
    months_seen = (end - booked["ts"].values.astype("datetime64[D]")).astype(int) // 31
    # ``defaulted`` is the truth on the label's horizon; ``default_month`` says when any
    # default falls (also after the performance window)
    ever = booked["default_month"].notna()
    assert (ever | ~booked["defaulted"]).all()
    visible = booked[ever & (booked["default_month"] <= months_seen)]
    # a default shows on the tape (a missed due date can fall up to a month after the miss)
    assert len(visible) > 0 and (visible["dpd"] >= 30).all()
    # 90 days past due once the miss had a month to fall due and three more to age
    aged = booked[ever & (booked["default_month"] + 1 <= months_seen)]
    assert len(aged) > 0 and (aged["dpd"] >= 90).mean() > 0.7
    # an account none of whose approvals defaults never reaches 90 days past due
    bad_accounts = set(booked.loc[ever, "account_id"])
    never = booked[~booked["account_id"].isin(bad_accounts)]
    assert len(never) > 0 and (never["dpd"].fillna(0) < 90).all()


def test_behaviour_recovers_true_pd(tiny_run: SimRun) -> None:
    report = signal_report(tiny_run.landing, tiny_run.truth)
    assert set(report) == {"personal", "merchant", "sme"}
    for product, row in report.items():
        # merchants and SMEs leave as clear traces as people do
        assert row["spearman_recovered"] > 0.8, (product, row)
        assert row["proxy_expected_auc"] > 0.7, (product, row)
        # a line's true PD follows the borrower's state over the months after the
        # application (its default hazard), which past behaviour only foreshadows
        slack = 0.05 if product == "personal" else 0.08
        assert row["proxy_expected_auc"] > row["oracle_expected_auc"] - slack, (product, row)
        # on the label's 6-month horizon (90+ DPD: a miss within about 2-3 months)
        assert 0.015 <= row["mean_true_pd"] <= 0.10, (product, row)
    apps = pq.read_table(tiny_run.truth / "applications.parquet").to_pandas()
    ranked = apps.sort_values("true_pd")
    low, high = np.array_split(ranked["defaulted"].to_numpy(), 2)
    assert high.mean() > 2 * low.mean(), "defaults rise with true_pd"


def test_shocks_show_in_merchant_turnover_and_sme_bills(tiny_run: SimRun) -> None:
    """A turnover collapse cuts a merchant's POS turnover; SMEs in trouble pay bills late."""
    con = duckdb.connect()
    entities = f"read_parquet('{tiny_run.truth}/entities.parquet')"
    start = tiny_run.config.start.isoformat()
    change = con.execute(
        f"""
        with e as (select entity_id, shock_month from {entities}
                   where entity_type = 'merchant' and shock_month between 2 and 9),
        t as (select merchant_id, date_diff('month', date '{start}', ts::date) as m,
                     sum(amount) as turnover
              from {_glob(tiny_run, "pos_transactions")} where status = 'approved'
              group by all)
        select e.entity_id,
            ln(sum(turnover) filter (m between shock_month and shock_month + 1)
               / sum(turnover) filter (m between shock_month - 2 and shock_month - 1))
        from e join t on t.merchant_id = e.entity_id group by all
        """
    ).fetchall()
    assert len(change) >= 3
    assert np.median([c for _, c in change if c is not None]) < np.log(0.75)
    late = con.execute(
        f"""
        select e.latent_score < 0 as weak,
            avg((y.ts::date > y.due_date)::int) as late_share
        from {_glob(tiny_run, "payments")} y
        join {entities} e on e.entity_type = 'sme' and e.entity_id = y.payer_id
        where y.payment_type = 'bill' group by all
        """
    ).fetchall()
    share = dict(late)
    assert share[True] > 2 * share[False]


def test_cli_simulate_refuses_non_empty_landing(tmp_path: Path) -> None:
    from yidai.cli import app

    runner = CliRunner()
    args = [
        "simulate", "--preset", "tiny", "--months", "3", "--customers", "200",
        "--merchants", "20", "--smes", "10", "--sellers", "10",
        "--landing", str(tmp_path / "landing"), "--truth", str(tmp_path / "truth"),
    ]  # fmt: skip
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "pos_transactions" in first.output
    assert (tmp_path / "truth" / "applications.parquet").exists()
    second = runner.invoke(app, args)
    assert isinstance(second.exception, YidaiError)
    assert "--overwrite" in str(second.exception)
    third = runner.invoke(app, [*args, "--overwrite"])
    assert third.exit_code == 0, third.output
    with pytest.raises(YidaiError, match="unknown preset"):
        runner.invoke(app, ["simulate", "--preset", "nope"], catch_exceptions=False)

"""merchant_credit_v3/v4 and sme_credit_v2/v3 (issue 18): the latest month of a line borrower's
behaviour, its category and its line's repayments; merchant_credit_v4: other banks'
cardholders at the shop; sme_credit_v4: transfers sent per transfer received. All recomputed
independently in pandas."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

import features
from tests.support.feature_checks import compare_feature, event_window, payments_of, profiles_at
from yidai.core.contracts import RISKY_MCCS


def _repayments(con: duckdb.DuckDBPyConnection, product: str) -> pd.DataFrame:
    return con.execute(
        """SELECT r.paid_at AS ts, r.days_past_due, a.applicant_id
           FROM loan_repayments r JOIN loan_applications a ON a.application_id = r.account_id
           WHERE r.paid_at IS NOT NULL AND a.product = ?""",
        [product],
    ).df()


def test_merchant_latest_month_category_and_repayments(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date
) -> None:
    built = profiles_at(wh, "merchant_credit_v3", "merchant", as_of)
    merchants = wh.execute("SELECT merchant_id, onboarded_at, mcc FROM merchants").df()
    known = merchants[merchants["onboarded_at"] < pd.Timestamp(as_of) + pd.Timedelta(days=1)]
    risky = known.set_index("merchant_id")["mcc"].isin(RISKY_MCCS).astype(float)
    assert 0 < risky.sum() < len(risky)
    compare_feature(risky, built, "merchant_risky_mcc_life")

    pos = wh.execute("SELECT * FROM pos_transactions").df()
    last = event_window(pos, as_of, 30)
    approved = last["status"] == "approved"
    per = (
        pd.DataFrame(
            {
                "txn": approved,
                "night": approved & (last["ts"].dt.hour < 6),
                "refund": last["status"] == "refund",
                "chargeback": last["status"] == "chargeback",
                "gross": np.where(approved, last["amount"], 0.0),
            }
        )
        .groupby(last["merchant_id"])
        .sum()
    )
    txn = per["txn"].where(per["txn"] > 0)
    compare_feature(per["night"] / txn, built, "merchant_night_share_30d")
    compare_feature(per["refund"] / txn, built, "merchant_refund_rate_30d")
    compare_feature(per["chargeback"] / txn, built, "merchant_chargeback_rate_30d")
    compare_feature(per["gross"] / txn, built, "merchant_avg_ticket_30d")
    cards = last[approved].assign(day=last["ts"].dt.normalize())
    card_days = cards.groupby("merchant_id")[["card_token", "day"]].apply(
        lambda g: g["card_token"].nunique() / len(g.drop_duplicates())
    )
    compare_feature(card_days, built, "merchant_distinct_card_ratio_30d")

    signed = pos.assign(
        net=np.select(
            [pos["status"] == "approved", pos["status"] == "refund"],
            [pos["amount"], -pos["amount"]],
            0.0,
        )
    )
    recent = event_window(signed, as_of, 30).groupby("merchant_id")["net"].sum()
    sixty = event_window(signed, as_of, 60).groupby("merchant_id")["net"].sum()
    before = (sixty - recent.reindex(sixty.index).fillna(0)).replace(0, np.nan)
    seen = event_window(signed, as_of, 90)["merchant_id"].unique()
    change = (recent.reindex(seen) / before.reindex(seen)).dropna()
    built_change = built["merchant_turnover_month_change_90d"]
    np.testing.assert_allclose(
        built_change.reindex(change.index).to_numpy(float), change.to_numpy(float), rtol=1e-6
    )

    paid = event_window(_repayments(wh, "merchant"), as_of, 180)
    late = (paid["days_past_due"] > 0).groupby(paid["applicant_id"])
    assert late.sum().gt(0).any()
    compare_feature(late.mean(), built, "merchant_late_repayment_ratio_180d")
    np.testing.assert_array_equal(
        built["merchant_late_repayments_180d"].reindex(late.sum().index).to_numpy(float),
        late.sum().to_numpy(float),
    )


def test_merchant_other_banks_cardholders(wh: duckdb.DuckDBPyConnection, as_of: dt.date) -> None:
    """merchant_credit_v4 reads other banks' cards (no customer of ours) apart: their hours,
    refunds, tickets against our cardholders' at the same shop, and repeat cards."""
    built = profiles_at(wh, "merchant_credit_v4", "merchant", as_of)
    pos = wh.execute("SELECT * FROM pos_transactions").df()
    for days in (90, 180):
        rows = event_window(pos, as_of, days)
        offus = rows["customer_id"].isna()
        approved = (rows["status"] == "approved") & offus
        per = (
            pd.DataFrame(
                {
                    "txn": approved,
                    "night": approved & (rows["ts"].dt.hour < 6),
                    "refund": (rows["status"] == "refund") & offus,
                }
            )
            .groupby(rows["merchant_id"])
            .sum()
        )
        txn = per["txn"].where(per["txn"] > 0)
        assert per["night"].gt(0).any() and per["refund"].gt(0).any()
        compare_feature(per["night"] / txn, built, f"merchant_offus_night_share_{days}d")
        compare_feature(per["refund"] / txn, built, f"merchant_offus_refund_rate_{days}d")

    rows = event_window(pos, as_of, 180)
    ok = rows[rows["status"] == "approved"].assign(log_ticket=lambda f: np.log(f["amount"]))
    mean_log = ok.groupby([ok["merchant_id"], ok["customer_id"].isna()])["log_ticket"].mean()
    premium = (mean_log.xs(True, level=1) - mean_log.xs(False, level=1)).dropna()
    seen = rows["merchant_id"].unique()
    compare_feature(premium.reindex(seen), built, "merchant_offus_ticket_premium_180d")

    offus = event_window(pos, as_of, 90)
    offus = offus[(offus["status"] == "approved") & offus["customer_id"].isna()]
    repeat = (
        1
        - offus.groupby("merchant_id")["card_token"].nunique() / offus.groupby("merchant_id").size()
    )
    assert repeat.gt(0).any()
    compare_feature(repeat, built, "merchant_offus_card_repeat_90d")


def _failed_ratio(outgoing: pd.DataFrame) -> pd.Series:
    """Per SME, the share of its outgoing payments that failed."""
    return (outgoing["status"] == "failed").groupby(outgoing["payer_id"]).mean()


def _bill_ontime_ratio(bills: pd.DataFrame) -> pd.Series:
    """Per SME, the share of its bills paid successfully by the due date (or without one)."""
    due = pd.to_datetime(bills["due_date"])
    ontime = (bills["status"] == "success") & (due.isna() | (bills["ts"].dt.normalize() <= due))
    return ontime.groupby(bills["payer_id"]).mean()


def _bill_days_late(bills: pd.DataFrame) -> pd.Series:
    """Per SME, the mean days after the due date its paid bills were paid (0: on time)."""
    paid = bills[(bills["status"] == "success") & bills["due_date"].notna()]
    late = (paid["ts"].dt.normalize() - pd.to_datetime(paid["due_date"])).dt.days.clip(lower=0)
    return late.groupby(paid["payer_id"]).mean()


def _transfers_out_per_in(pays: pd.DataFrame) -> pd.Series:
    """Per SME with a transfer, its transfers out (failed too) per transfer in (NaN: none in)."""
    kind = pays["payment_type"]
    out_n = (kind == "transfer_out").groupby(pays["payer_id"]).sum()
    in_n = (kind == "transfer_in").groupby(pays["payer_id"]).sum()
    moving = out_n.index[(out_n + in_n) > 0]
    return (out_n / in_n.where(in_n > 0)).reindex(moving)


def test_sme_failed_payments_bill_lateness_and_instalments(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date
) -> None:
    built = profiles_at(wh, "sme_credit_v2", "sme", as_of)
    pays = payments_of(wh, "sme")
    out = pays[pays["payment_type"] != "transfer_in"]
    for days in (30, 90):
        failed = _failed_ratio(event_window(out, as_of, days))
        assert failed.gt(0).any() or days == 30
        compare_feature(failed, built, f"sme_failed_payment_ratio_{days}d")
    bills = pays[(pays["payment_type"] == "bill")]
    rows = event_window(bills, as_of, 90)
    compare_feature(_bill_ontime_ratio(rows), built, "sme_bill_ontime_ratio_90d")
    late = _bill_days_late(rows)
    assert late.gt(0).any()
    compare_feature(late, built, "sme_bill_days_late_90d")

    ok = event_window(pays[pays["status"] == "success"], as_of, 30)
    inflow = ok["amount"].where(ok["payment_type"] == "transfer_in", 0.0)
    outflow = ok["amount"].where(ok["payment_type"] != "transfer_in", 0.0)
    sums = pd.DataFrame({"i": inflow, "o": outflow}).groupby(ok["payer_id"]).sum()
    compare_feature(sums["o"] / sums["i"].replace(0, np.nan), built, "sme_outflow_to_inflow_30d")

    share = _check_instalment_share(wh, built, as_of, 90)
    assert 0 < share.mean() < 1 and len(share) >= 3  # the synthetic SME buyers are few


def _distinct_payer_ratio(inflows: pd.DataFrame) -> pd.Series:
    """Per SME, its distinct payers over its payer-days (one payer paying on one day)."""
    payer_days = inflows.groupby(["payer_id", inflows["ts"].dt.normalize(), "counterparty_id"])
    distinct = inflows.groupby("payer_id")["counterparty_id"].nunique()
    return distinct / payer_days.size().groupby(level="payer_id").size()


def _check_instalment_share(
    wh: duckdb.DuckDBPyConnection, built: pd.DataFrame, as_of: dt.date, days: int
) -> pd.Series:
    """``sme_b2b_instalment_share_<days>d`` recomputed from the SMEs' mall orders of the
    window (NaN for an SME without one); returns the recomputed shares."""
    orders = wh.execute("SELECT * FROM mall_orders WHERE buyer_type = 'sme'").df()
    rows = event_window(orders, as_of, days)
    share = (rows["payment_method"] == "instalment").groupby(rows["buyer_id"]).mean()
    got = built[f"sme_b2b_instalment_share_{days}d"]
    np.testing.assert_allclose(got.reindex(share.index).to_numpy(float), share.to_numpy(float))
    assert got.drop(share.index).isna().all()
    return share


def test_sme_six_months_of_bill_lateness_failures_instalments_and_payers(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date
) -> None:
    """sme_credit_v3's 180-day windows (and the 90-day payer ratio), recomputed from events."""
    built = profiles_at(wh, "sme_credit_v3", "sme", as_of)
    pays = payments_of(wh, "sme")
    failed = _failed_ratio(event_window(pays[pays["payment_type"] != "transfer_in"], as_of, 180))
    assert failed.gt(0).any()
    compare_feature(failed, built, "sme_failed_payment_ratio_180d")
    late = _bill_days_late(event_window(pays[pays["payment_type"] == "bill"], as_of, 180))
    assert late.gt(0).any()
    compare_feature(late, built, "sme_bill_days_late_180d")
    inflows = pays[(pays["payment_type"] == "transfer_in") & (pays["status"] == "success")]
    inflows = inflows[inflows["counterparty_id"].notna()]
    for days in (90, 180):  # (every synthetic payer pays once: the ratio's windows only)
        rows = event_window(inflows, as_of, days)
        compare_feature(
            _distinct_payer_ratio(rows), built, f"sme_distinct_counterparty_ratio_{days}d"
        )
    _check_instalment_share(wh, built, as_of, 180)


def _one_sme_paying(
    con: duckdb.DuckDBPyConnection,
    rows_into: Any,
    start: dt.datetime,
    payments: list[tuple[int, str, str, str]],
) -> None:
    """SME ``S1``, onboarded 90 days before ``start``, and its payments as (days after
    ``start``, payment type, counterparty, status)."""
    rows_into(con, "smes", [{"sme_id": "S1", "onboarded_at": start - dt.timedelta(days=90)}])
    rows_into(
        con,
        "payments",
        [
            {"payment_id": f"p{i}", "ts": start + dt.timedelta(days=day), "payer_type": "sme",
             "payer_id": "S1", "payment_type": kind, "counterparty_id": counterparty,
             "amount": 500.0, "channel": "online_banking", "status": status}
            for i, (day, kind, counterparty, status) in enumerate(payments)
        ],
    )  # fmt: skip


def test_sme_repeat_payers_over_90_and_180_days(
    empty_wh: duckdb.DuckDBPyConnection, rows_into: Any
) -> None:
    """Distinct payers over payer-days: a payer paying on two days counts twice below, two
    payments of one payer on one day once; each window sees only its own days."""
    start = dt.datetime(2025, 1, 1, 10)
    paid = [(0, "P1"), (1, "P1"), (1, "P2"), (1, "P2"), (100, "P1"), (150, "P1")]
    _one_sme_paying(
        empty_wh, rows_into, start, [(day, "transfer_in", payer, "success") for day, payer in paid]
    )
    as_of = (start + dt.timedelta(days=179)).date()
    features.build_features(empty_wh, as_of, ["sme_credit_v3"])
    built = profiles_at(empty_wh, "sme_credit_v3", "sme", as_of)
    # 180 days: P1 and P2 over 5 payer-days (P1 on days 0, 1, 100, 150; P2 on day 1)
    assert built.loc["S1", "sme_distinct_counterparty_ratio_180d"] == pytest.approx(2 / 5)
    # 90 days (days 90-179): P1 on days 100 and 150
    assert built.loc["S1", "sme_distinct_counterparty_ratio_90d"] == pytest.approx(1 / 2)


def test_sme_transfers_sent_per_transfer_received(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date
) -> None:
    """sme_credit_v4: every transfer out (failed ones too: each is an order the SME had to
    send) per transfer in, over 30, 90 and 180 days; bills and e-payments count in neither."""
    built = profiles_at(wh, "sme_credit_v4", "sme", as_of)
    pays = payments_of(wh, "sme")
    assert (pays["payment_type"] == "transfer_out").any() and (pays["status"] == "failed").any()
    for days in (30, 90, 180):
        ratio = _transfers_out_per_in(event_window(pays, as_of, days))
        compare_feature(ratio, built, f"sme_transfers_out_per_in_{days}d")


def test_sme_a_year_of_bills_failures_transfers_payers_and_instalments(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date
) -> None:
    """sme_credit_v5's 365-day windows, recomputed from events."""
    built = profiles_at(wh, "sme_credit_v5", "sme", as_of)
    pays = event_window(payments_of(wh, "sme"), as_of, 365)
    kind = pays["payment_type"]
    compare_feature(
        _failed_ratio(pays[kind != "transfer_in"]), built, "sme_failed_payment_ratio_365d"
    )
    bills = pays[kind == "bill"]
    compare_feature(_bill_ontime_ratio(bills), built, "sme_bill_ontime_ratio_365d")
    compare_feature(_bill_days_late(bills), built, "sme_bill_days_late_365d")
    compare_feature(_transfers_out_per_in(pays), built, "sme_transfers_out_per_in_365d")
    inflows = pays[(kind == "transfer_in") & (pays["status"] == "success")]
    ratio = _distinct_payer_ratio(inflows[inflows["counterparty_id"].notna()])
    compare_feature(ratio, built, "sme_distinct_counterparty_ratio_365d")
    _check_instalment_share(wh, built, as_of, 365)


def test_sme_transfers_count_orders_by_direction_within_the_window(
    empty_wh: duckdb.DuckDBPyConnection, rows_into: Any
) -> None:
    """Three transfers out (one failed) per two in over 30 days; a bill, an e-payment and a
    transfer 31 days back count in no 30-day ratio but in the 90-day one."""
    start = dt.datetime(2025, 3, 1, 10)
    made = [
        (0, "transfer_out", "success"),
        (1, "transfer_out", "failed"),
        (2, "transfer_out", "success"),
        (3, "transfer_in", "success"),
        (4, "transfer_in", "success"),
        (5, "bill", "success"),
        (6, "e_payment", "success"),
        (-31, "transfer_in", "success"),
    ]
    _one_sme_paying(
        empty_wh, rows_into, start, [(day, kind, "C1", status) for day, kind, status in made]
    )
    as_of = (start + dt.timedelta(days=6)).date()
    features.build_features(empty_wh, as_of, ["sme_credit_v4"])
    built = profiles_at(empty_wh, "sme_credit_v4", "sme", as_of)
    assert built.loc["S1", "sme_transfers_out_per_in_30d"] == pytest.approx(3 / 2)
    assert built.loc["S1", "sme_transfers_out_per_in_90d"] == pytest.approx(3 / 3)


_LATER_VERSIONS = [
    ("merchant_credit_v2", "merchant_credit_v3"),
    ("merchant_credit_v2", "merchant_credit_v4"),
    ("sme_credit_v1", "sme_credit_v2"),
    ("sme_credit_v2", "sme_credit_v3"),
    ("sme_credit_v3", "sme_credit_v4"),
    ("sme_credit_v4", "sme_credit_v5"),
    ("personal_credit_v2", "personal_credit_v3"),
]


@pytest.mark.parametrize(("old", "new"), _LATER_VERSIONS)
def test_new_versions_keep_the_earlier_declarations_and_values(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date, old: str, new: str
) -> None:
    """The new version starts with every feature of the one before, unchanged, and their
    profile values are the same in both tables."""
    before, after = features.FEATURE_SETS[old], features.FEATURE_SETS[new]
    assert list(after.features[: len(before.features)]) == list(before.features)
    assert len(after.columns) > len(before.columns)
    shared = before.profile_columns(before.entity)
    a = profiles_at(wh, old, before.entity, as_of)[shared]
    b = profiles_at(wh, new, after.entity, as_of)[shared]
    pd.testing.assert_frame_equal(a.sort_index(), b.sort_index())

"""Point in time: nothing at or after the decision leaks in; labels only as known at as-of."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

import features
from yidai.core.errors import YidaiError

T = dt.datetime


def _world(con: duckdb.DuckDBPyConnection, rows_into: Any) -> None:
    rows_into(
        con,
        "customers",
        [
            {
                "customer_id": "C1",
                "opened_at": T(2025, 1, 1),
                "age_band": "25-34",
                "city_tier": "1",
                "income_band": "mid",
            }
        ],
    )
    rows_into(
        con,
        "merchants",
        [
            {
                "merchant_id": "M1",
                "onboarded_at": T(2025, 1, 1),
                "merchant_type": "restaurant",
                "mcc": "5812",
                "city_tier": "1",
                "settlement_account": "S",
            }
        ],
    )
    pos = [  # (id, ts, card, customer, terminal, amount)
        ("p1", T(2026, 3, 9, 10), "K1", "C1", "T1", 100.0),
        ("p2", T(2026, 3, 10, 23, 59, 59), "K1", "C1", "T1", 1000.0),
        ("p3", T(2026, 3, 11, 0, 0, 1), "K1", "C1", "T1", 5000.0),  # 1 s after decision 2
        ("e0", T(2026, 3, 11, 9, 0, 0), "K9", None, "T1", 10.0),
        ("e1", T(2026, 3, 11, 9, 30, 0), "K9", None, "T1", 20.0),
        ("e2", T(2026, 3, 11, 9, 30, 1), "K9", None, "T2", 30.0),  # 1 s after e1
        ("e3", T(2026, 3, 12, 15, 0, 0), "K9", None, "T1", 40.0),
        ("e4", T(2026, 3, 13, 15, 0, 0), "K9", None, "T1", 50.0),
    ]
    rows_into(
        con,
        "pos_transactions",
        [
            {
                "txn_id": i,
                "ts": ts,
                "card_token": card,
                "customer_id": cust,
                "merchant_id": "M1",
                "terminal_id": term,
                "mcc": "5812",
                "amount": amt,
                "entry_mode": "chip",
                "status": "approved",
            }
            for i, ts, card, cust, term, amt in pos
        ],
    )
    rows_into(con, "fraud_reports", [
        {"report_id": "r0", "reported_at": T(2026, 3, 12, 10), "ref_type": "pos", "ref_id": "e0",
         "fraud_type": "compromised_card", "amount": 10.0},
        {"report_id": "r1", "reported_at": T(2026, 3, 20, 23, 59, 59), "ref_type": "pos",
         "ref_id": "e1", "fraud_type": "compromised_card", "amount": 20.0},
        {"report_id": "r2", "reported_at": T(2026, 3, 21, 0, 0, 1), "ref_type": "pos",
         "ref_id": "e2", "fraud_type": "compromised_card", "amount": 30.0},
    ])  # fmt: skip


def test_credit_rows_after_the_decision_never_count(
    empty_wh: duckdb.DuckDBPyConnection, rows_into: Any
) -> None:
    _world(empty_wh, rows_into)
    spine = pd.DataFrame({
        "entity_id": ["C1", "C1"],
        "decision_ts": [T(2026, 3, 10, 12), T(2026, 3, 11, 0, 0, 0)],
        "label": [0, 1],
        "requested_amount": [3000.0, 3000.0],
        "application_id": ["a", "b"],
    })  # fmt: skip
    df = features.build_training_set(empty_wh, spine, "personal_credit_v1")
    assert list(df.columns[: len(spine.columns)]) == list(spine.columns)
    assert (
        list(df.columns[len(spine.columns) :])
        == features.FEATURE_SETS["personal_credit_v1"].columns
    )
    # decision 1 (noon of the 10th): only the 9th (the same-day 23:59:59 row is after it)
    assert df.loc[0, "customer_spend_amount_30d"] == 100.0
    # decision 2 (midnight): the 23:59:59 row counts, the 00:00:01 row one second later not
    assert df.loc[1, "customer_spend_amount_30d"] == 1100.0
    assert df.loc[1, "customer_spend_count_90d"] == 2.0
    assert df["application_id"].tolist() == ["a", "b"]  # extra spine columns kept


def test_fraud_velocity_and_flags_use_only_earlier_events(
    empty_wh: duckdb.DuckDBPyConnection, rows_into: Any
) -> None:
    _world(empty_wh, rows_into)
    spine = features.fraud_spine(
        empty_wh, dt.date(2026, 3, 20), label_delay_days=0, start=dt.date(2026, 3, 11)
    )
    df = features.build_training_set(empty_wh, spine, "payment_fraud_v1").set_index("event_id")
    assert df.loc["e1", "payer_txn_count_1h"] == 1 and df.loc["e1", "payer_txn_amount_1h"] == 10
    assert df.loc["e2", "payer_txn_count_1h"] == 2 and df.loc["e2", "payer_txn_amount_1h"] == 30
    assert df.loc["e0", "payer_txn_count_24h"] == 0
    assert df.loc["e0", "payer_new_counterpart_now"] == 1  # first time at T1
    assert df.loc["e1", "payer_new_counterpart_now"] == 0  # T1 seen earlier the same day
    assert df.loc["e2", "payer_new_counterpart_now"] == 1  # T2 is new
    assert df.loc["e3", "payer_new_counterpart_now"] == 0  # T1 seen on a previous day
    assert df.loc["e3", "payer_txn_count_7d"] == 3  # the 11th's three events
    # the report on e0 arrives on the 12th at 10:00: unknown to the profile of the 11th close
    assert df.loc["e3", "counterpart_fraud_reports_1d"] == 0
    assert df.loc["e4", "counterpart_fraud_reports_1d"] == 1
    assert df.loc["e4", "merchant_fraud_reports_7d"] == 1


def test_fraud_v2_history_features_by_hand(
    empty_wh: duckdb.DuckDBPyConnection, rows_into: Any
) -> None:
    """payment_fraud_v2 on the same events, computed by hand: the payer's amounts up to the
    previous close, the previous event (recent, else the profile), reports as they arrive."""
    _world(empty_wh, rows_into)
    spine = features.fraud_spine(
        empty_wh, dt.date(2026, 3, 20), label_delay_days=0, start=dt.date(2026, 3, 11)
    )
    df = features.build_training_set(empty_wh, spine, "payment_fraud_v2").set_index("event_id")
    # e3 (12th 15:00): the profile of the 11th close holds e0, e1, e2 (10, 20, 30 CNY)
    assert df.loc["e3", "payer_avg_amount_7d"] == 20.0
    assert df.loc["e3", "payer_median_amount_30d"] == 20.0
    assert df.loc["e3", "payer_amount_sd_30d"] == pytest.approx(10.0)
    assert df.loc["e3", "payer_amount_zscore_30d"] == pytest.approx((40 - 20) / 10)
    assert df.loc["e3", "payer_amount_to_median_7d"] == 2.0
    # the last event before the close was e2 at 09:30:01: 14.5 h minus 1 s before midnight
    assert df.loc["e3", "payer_last_event_age_30d"] == pytest.approx(14.5 - 1 / 3600)
    # e3 has no event in the 24 h before it: e2 through the profile, 29.5 h - 1 s earlier
    assert df.loc["e3", "payer_hours_since_previous_now"] == pytest.approx(29.5 - 1 / 3600)
    assert df.loc["e2", "payer_hours_since_previous_now"] == pytest.approx(1 / 3600)  # e1
    assert df.loc["e4", "payer_hours_since_previous_now"] == 24.0  # e3, among the recent
    assert np.isnan(df.loc["e0", "payer_hours_since_previous_now"])  # nothing before
    assert np.isnan(df.loc["e0", "payer_median_amount_7d"])
    # the 11th's close: T1 had p3 (card K1), e0 and e1 that day
    assert df.loc["e3", "counterpart_txn_count_1d"] == 3
    assert df.loc["e3", "counterpart_txn_amount_1d"] == 5000.0 + 10.0 + 20.0
    # e0's report arrives on the 12th 10:00: not in e3's rate (11th close), in e4's
    # (12th: 1 report, 1 event at T1; 7 events at M1 over the 7 days)
    assert df.loc["e3", "counterpart_fraud_rate_1d"] == 0.0
    assert df.loc["e4", "counterpart_fraud_rate_1d"] == 1.0
    assert df.loc["e4", "merchant_fraud_rate_7d"] == pytest.approx(1 / 7)
    # 2026-03-11 was a Wednesday, 2026-03-14 a Saturday
    assert df["event_weekend_now"].sum() == 0


def test_fraud_labels_only_as_known_at_as_of(
    empty_wh: duckdb.DuckDBPyConnection, rows_into: Any
) -> None:
    _world(empty_wh, rows_into)
    spine = features.fraud_spine(empty_wh, dt.date(2026, 3, 20), label_delay_days=0)
    labels = dict(zip(spine["event_id"], spine["label"], strict=True))
    assert labels["e0"] == 1 and labels["e1"] == 1  # reported by 23:59:59 of the as-of day
    assert labels["e2"] == 0  # reported one second after the as-of day
    later = features.fraud_spine(empty_wh, dt.date(2026, 3, 21), label_delay_days=0)
    assert dict(zip(later["event_id"], later["label"], strict=True))["e2"] == 1
    delayed = features.fraud_spine(empty_wh, dt.date(2026, 3, 20), label_delay_days=8)
    assert delayed["decision_ts"].max() < T(2026, 3, 13)  # the last 8 days are left out


def _book(
    con: duckdb.DuckDBPyConnection,
    rows_into: Any,
    apps: list[tuple[str, dt.datetime, str]],
    tape: list[tuple[str, dt.datetime, int]],
) -> None:
    """Personal loan applications of C1 ``(id, ts, decision)`` and their month-end tape rows
    ``(account, snapshot date, days past due)``."""
    rows_into(
        con,
        "loan_applications",
        [
            {
                "application_id": a,
                "ts": ts,
                "product": "personal",
                "applicant_id": "C1",
                "requested_amount": 5000.0,
                "decision": d,
                "approved_limit": 5000.0 if d == "approved" else 0.0,
            }
            for a, ts, d in apps
        ],
    )
    rows_into(con, "loan_performance", [
        {"account_id": account, "snapshot_date": day, "credit_limit": 5000.0,
         "outstanding": 4000.0, "days_past_due": dpd}
        for account, day, dpd in tape
    ])  # fmt: skip


def _loans(con: duckdb.DuckDBPyConnection, rows_into: Any) -> None:
    apps = [
        ("A1", T(2026, 3, 10), "approved"),
        ("A2", T(2026, 1, 5), "approved"),
        ("A3", T(2026, 1, 6), "declined"),
    ]
    tape = [
        ("A1", T(2026, 8, 31), 90),
        ("A2", T(2026, 6, 30), 30),
        ("A2", T(2026, 8, 31), 95),  # after A2's 6-month window
    ]
    _book(con, rows_into, apps, tape)


def test_every_decision_has_the_same_exposure_whatever_its_day_of_the_month(
    empty_wh: duckdb.DuckDBPyConnection, rows_into: Any
) -> None:
    """Issue 18: a first miss 85 days after the booking is a default in a 6-month window for
    a booking on the 2nd and on the 30th alike (the latter's 90 days past due show only on the
    month-end row after its window: the rows inside it alone labelled it good); 113 days after
    is not, though that tape row shows 97 days past due."""
    apps = [
        ("B1", T(2026, 1, 2), "approved"),  # first miss 2026-03-28 (+85 days)
        ("B2", T(2026, 1, 30), "approved"),  # first miss 2026-04-25 (+85 days)
        ("B3", T(2026, 1, 2), "approved"),  # first miss 2026-04-25 (+113 days)
    ]
    tape = [
        ("B1", T(2026, 6, 30), 94),
        ("B2", T(2026, 6, 30), 66),
        ("B2", T(2026, 7, 31), 97),
        ("B3", T(2026, 6, 30), 66),
        ("B3", T(2026, 7, 31), 97),
    ]
    _book(empty_wh, rows_into, apps, tape)
    spine = features.credit_spine(empty_wh, "personal", dt.date(2026, 8, 31), 6)
    assert dict(zip(spine["application_id"], spine["label"], strict=True)) == {
        "B1": 1,
        "B2": 1,
        "B3": 0,
    }


def test_credit_labels_only_for_matured_accounts(
    empty_wh: duckdb.DuckDBPyConnection, rows_into: Any
) -> None:
    _loans(empty_wh, rows_into)
    early = features.credit_spine(empty_wh, "personal", dt.date(2026, 9, 1), 6)
    assert early["application_id"].tolist() == ["A2"]  # A1 not matured, A3 declined
    assert early["label"].tolist() == [0]  # its 95 DPD came after 6 months
    late = features.credit_spine(empty_wh, "personal", dt.date(2026, 9, 10), 6)
    assert dict(zip(late["application_id"], late["label"], strict=True)) == {"A2": 0, "A1": 1}
    everyone = features.credit_spine(
        empty_wh, "personal", dt.date(2026, 9, 1), 6, include_declined=True
    )
    got = dict(zip(everyone["application_id"], everyone["label"], strict=True))
    assert set(got) == {"A1", "A2", "A3"} and pd.isna(got["A1"]) and pd.isna(got["A3"])


def test_bad_spines_get_clear_errors(empty_wh: duckdb.DuckDBPyConnection, rows_into: Any) -> None:
    _world(empty_wh, rows_into)
    good = pd.DataFrame({"entity_id": ["C1"], "decision_ts": [T(2026, 3, 10)], "label": [0],
                         "requested_amount": [1.0]})  # fmt: skip
    with pytest.raises(YidaiError, match=r"lacks the columns \['label'\]"):
        features.build_training_set(empty_wh, good.drop(columns="label"), "personal_credit_v1")
    with pytest.raises(YidaiError, match="missing or unreadable decision_ts"):
        features.build_training_set(empty_wh, good.assign(decision_ts=[None]), "personal_credit_v1")
    with pytest.raises(YidaiError, match="after the data"):
        features.build_training_set(
            empty_wh, good.assign(decision_ts=[T(2027, 1, 1)]), "personal_credit_v1"
        )
    with pytest.raises(YidaiError, match="request has no field 'requested_amount'"):
        features.build_training_set(
            empty_wh, good.drop(columns="requested_amount"), "personal_credit_v1"
        )
    with pytest.raises(YidaiError, match="needs the event fields"):
        features.build_training_set(empty_wh, good, "payment_fraud_v1")
    with pytest.raises(YidaiError, match="unknown feature set"):
        features.build_training_set(empty_wh, good, "personal_credit_v9")
    with pytest.raises(YidaiError, match="unknown product"):
        features.credit_spine(empty_wh, "mortgage", dt.date(2026, 3, 1))


def test_each_feature_is_complete_from_its_sources_first_day_plus_its_own_window(
    wh: duckdb.DuckDBPyConnection, empty_wh: duckdb.DuckDBPyConnection
) -> None:
    """A payment feature's window fills from the first payment, a line feature's from the
    first loan snapshot (later: the book opens after the traces begin)."""
    from features.training import complete_history_from

    fs = features.get_feature_set("sme_credit_v5")
    assert complete_history_from(empty_wh, fs) == {}
    days = complete_history_from(wh, fs)
    assert set(days) == set(fs.columns)

    def first(sql: str) -> pd.Timestamp:
        return pd.Timestamp(wh.execute(sql).fetchall()[0][0]).normalize()

    transfers = first(
        "SELECT min(ts) FROM payments WHERE payer_type = 'sme' "
        "AND payment_type IN ('transfer_in', 'transfer_out')"
    )
    tape = first(
        "SELECT min(p.snapshot_date) FROM loan_performance p JOIN loan_applications a "
        "ON a.application_id = p.account_id WHERE a.product = 'sme'"
    )
    assert tape > transfers  # the two histories really start apart
    assert days["sme_transfers_out_per_in_30d"] == transfers + pd.Timedelta(days=30)
    assert days["sme_transfers_out_per_in_365d"] == transfers + pd.Timedelta(days=365)
    assert days["sme_credit_utilisation_180d"] == tape + pd.Timedelta(days=180)
    assert days["sme_max_dpd_180d"] == tape + pd.Timedelta(days=180)
    # a request feature has no window and no source: it counts from the earliest source day
    assert days["sme_requested_to_inflow_now"] == min(days.values())

"""The credit v2 (and personal v3) features, recomputed independently in pandas from the
warehouse rows."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

import features
from tests.support.feature_checks import compare_feature, event_window, payments_of, profiles_at
from yidai.core.contracts import RISKY_MCCS
from yidai.core.errors import YidaiError


def test_bill_days_early_is_the_mean_lead_over_the_due_date(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date
) -> None:
    built = profiles_at(wh, "personal_credit_v2", "customer", as_of)
    bills = payments_of(wh, "customer")
    bills = bills[(bills["payment_type"] == "bill") & (bills["status"] == "success")]
    bills = bills[bills["due_date"].notna()]
    lead = (pd.to_datetime(bills["due_date"]) - bills["ts"].dt.normalize()).dt.days
    bills = bills.assign(lead=lead)
    assert (bills["lead"] < 0).any() and (bills["lead"] > 0).any()  # late and early payers
    expected = event_window(bills, as_of, 180).groupby("payer_id")["lead"].mean()
    compare_feature(expected, built, "customer_bill_days_early_180d")


def test_inflow_variability_is_the_sample_sd_of_log_amounts(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date
) -> None:
    built = profiles_at(wh, "personal_credit_v2", "customer", as_of)
    inflows = payments_of(wh, "customer")
    inflows = inflows[(inflows["payment_type"] == "transfer_in") & (inflows["status"] == "success")]
    rows = event_window(inflows, as_of, 180)
    # NaN below two inflows (pandas' std with ddof=1 says the same)
    expected = np.log(rows["amount"].round(2)).groupby(rows["payer_id"]).std(ddof=1)
    assert expected.isna().any() and expected.notna().any()
    compare_feature(expected, built, "customer_inflow_variability_180d")


def test_merchant_refund_and_night_rates_count_card_payments(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date
) -> None:
    built = profiles_at(wh, "merchant_credit_v2", "merchant", as_of)
    pos = event_window(wh.execute("SELECT * FROM pos_transactions").df(), as_of, 180)
    approved = pos["status"] == "approved"
    per = (
        pd.DataFrame(
            {
                "txn": approved,
                "night": approved & (pos["ts"].dt.hour < 6),
                "refund": pos["status"] == "refund",
            }
        )
        .groupby(pos["merchant_id"])
        .sum()
    )
    assert per["refund"].sum() > 0 and per["night"].sum() > 0
    txn = per["txn"].where(per["txn"] > 0)
    compare_feature(per["refund"] / txn, built, "merchant_refund_rate_180d")
    compare_feature(per["night"] / txn, built, "merchant_night_share_180d")


def test_epayment_failure_share_and_mean_log_amount(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date
) -> None:
    built = profiles_at(wh, "personal_credit_v2", "customer", as_of)
    epay = event_window(payments_of(wh, "customer"), as_of, 180)
    epay = epay[epay["payment_type"] == "e_payment"]
    failed = (epay["status"] == "failed").groupby(epay["payer_id"]).mean()
    assert failed.gt(0).any()
    compare_feature(failed, built, "customer_epay_failed_ratio_180d")
    # logs are rounded to 1e-6 before they are summed (exact sums in any build order)
    logs = np.round(np.log(epay["amount"].round(2)), 6).groupby(epay["payer_id"]).mean()
    compare_feature(logs, built, "customer_epay_log_amount_180d")


@pytest.mark.parametrize("base", ["personal_credit", "merchant_credit"])
def test_v2_profiles_keep_the_v1_values(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date, base: str
) -> None:
    """The columns v2 shares with v1 hold the same values in both profile tables."""
    v1 = features.FEATURE_SETS[f"{base}_v1"]
    v2 = features.FEATURE_SETS[f"{base}_v2"]
    entity = v1.entity
    shared = [c for c in v1.profile_columns(entity) if c in v2.columns]
    assert len(shared) >= len(v1.profile_columns(entity)) - 1
    old = profiles_at(wh, v1.name, entity, as_of)[shared]
    new = profiles_at(wh, v2.name, entity, as_of)[shared]
    pd.testing.assert_frame_equal(old.sort_index(), new.sort_index())


def test_default_builds_the_active_sets_and_the_extra_ones(
    empty_wh: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default only the sets the models train on are built (v1 stays declared and builds
    on request); ``YIDAI_EXTRA_FEATURE_SETS`` keeps an older version built during an upgrade."""
    from yidai.core.settings import reset_settings_cache

    day = dt.date(2026, 3, 1)
    built = features.build_features(empty_wh, day)
    assert {k.split("/")[0] for k in built} == {
        *features.CREDIT_FEATURE_SETS.values(),
        features.FRAUD_FEATURE_SET,
    }
    monkeypatch.setenv("YIDAI_EXTRA_FEATURE_SETS", "personal_credit_v1, payment_fraud_v1")
    reset_settings_cache()
    try:
        built = features.build_features(empty_wh, day)
        assert "personal_credit_v1/customer" in built and "merchant_credit_v1/merchant" not in built
        monkeypatch.setenv("YIDAI_EXTRA_FEATURE_SETS", "personal_credit_v9")
        reset_settings_cache()
        with pytest.raises(YidaiError, match="unknown feature set 'personal_credit_v9'"):
            features.build_features(empty_wh, day)
    finally:
        monkeypatch.delenv("YIDAI_EXTRA_FEATURE_SETS")
        reset_settings_cache()


def test_personal_v3_rates_count_card_events_and_payment_hours(
    wh: duckdb.DuckDBPyConnection, as_of: dt.date
) -> None:
    """personal_credit_v3: declined, night, risky-MCC and refunded card payments as rates of
    events over 90 and 180 days, and the night share of the customer's own payments."""
    built = profiles_at(wh, "personal_credit_v3", "customer", as_of)
    pos = wh.execute("SELECT * FROM pos_transactions WHERE customer_id IS NOT NULL").df()
    for days in (90, 180):
        rows = event_window(pos, as_of, days)
        approved = rows["status"] == "approved"
        per = (
            pd.DataFrame(
                {
                    "txn": approved,
                    "declined": rows["status"] == "declined",
                    "night": approved & (rows["ts"].dt.hour < 6),
                    "risky": approved & rows["mcc"].isin(RISKY_MCCS),
                    "refund": rows["status"] == "refund",
                }
            )
            .groupby(rows["customer_id"])
            .sum()
        )
        assert (per[["declined", "night", "risky", "refund"]].sum() > 0).all()
        txn = per["txn"].where(per["txn"] > 0)
        attempted = (per["txn"] + per["declined"]).where(lambda n: n > 0)
        compare_feature(per["declined"] / attempted, built, f"customer_declined_rate_{days}d")
        compare_feature(per["night"] / txn, built, f"customer_night_rate_{days}d")
        compare_feature(per["risky"] / txn, built, f"customer_risky_mcc_rate_{days}d")
        compare_feature(per["refund"] / txn, built, f"customer_refund_rate_{days}d")
    own = event_window(payments_of(wh, "customer"), as_of, 180)
    own = own[own["payment_type"] != "transfer_in"]
    night = (own["ts"].dt.hour < 6).groupby(own["payer_id"]).mean()
    assert night.gt(0).any()
    compare_feature(night, built, "customer_payment_night_share_180d")

"""Credit risk monitoring (yidai.jobs.analytics.credit_risk): DPD buckets, roll rates worked
out by hand, calibration over time with its binomial test, score bands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from yidai.core.errors import YidaiError
from yidai.jobs.analytics import credit_risk as cr


def test_dpd_buckets() -> None:
    dpd = pd.Series([0, 1, 30, 31, 60, 61, 90, 91, 400, 95])
    status = pd.Series(["open"] * 9 + ["charged_off"])
    assert cr.dpd_bucket(dpd, status).tolist() == [
        "current", "1-30", "1-30", "31-60", "31-60", "61-90", "61-90", "90+", "90+",
        "charged_off",
    ]  # fmt: skip
    with pytest.raises(YidaiError, match="days_past_due"):
        cr.dpd_bucket(pd.Series([0, -1]))


def tape() -> pd.DataFrame:
    """Four accounts over three month ends (worked out by hand in the test)."""
    rows = [
        ("A", "2026-01-31", 0, "open"),
        ("A", "2026-02-28", 20, "open"),
        ("A", "2026-03-31", 50, "frozen"),
        ("B", "2026-01-31", 0, "open"),
        ("B", "2026-02-28", 0, "open"),
        ("B", "2026-03-31", 0, "open"),
        ("C", "2026-01-31", 95, "frozen"),
        ("C", "2026-02-28", 125, "charged_off"),
        ("D", "2026-01-31", 0, "open"),  # repaid: no row in February
    ]
    frame = pd.DataFrame(rows, columns=["account_id", "snapshot_date", "days_past_due", "status"])
    return frame.assign(product="personal")


def test_roll_rates_by_hand() -> None:
    rates = cr.roll_rates(tape())
    jan = rates[rates["month"] == pd.Timestamp("2026-01-01")].set_index(
        ["from_bucket", "to_bucket"]
    )
    assert jan.loc[("current", "1-30"), "rate"] == pytest.approx(1 / 3)  # A of A, B, D
    assert jan.loc[("current", "current"), "rate"] == pytest.approx(1 / 3)  # B
    assert jan.loc[("current", "closed"), "rate"] == pytest.approx(1 / 3)  # D repaid
    assert jan.loc[("90+", "charged_off"), "rate"] == 1.0  # C
    feb = rates[rates["month"] == pd.Timestamp("2026-02-01")].set_index(
        ["from_bucket", "to_bucket"]
    )
    assert feb.loc[("1-30", "31-60"), "n"] == 1 and feb.loc[("current", "current"), "n"] == 1
    assert "charged_off" not in set(feb.index.get_level_values(0))  # absorbing
    assert pd.Timestamp("2026-03-01") not in set(rates["month"])  # no next month yet
    sums = rates.groupby(["product", "month", "from_bucket"])["rate"].sum()
    assert np.allclose(sums, 1.0)

    forward = cr.roll_forward(rates).set_index(["month", "transition"])["rate"]
    assert forward[(pd.Timestamp("2026-01-01"), "current → 1-30")] == pytest.approx(1 / 3)
    assert forward[(pd.Timestamp("2026-01-01"), "90+ → charged_off")] == 1.0
    assert forward[(pd.Timestamp("2026-02-01"), "1-30 → 31-60")] == 1.0

    matrix = cr.roll_matrix(rates, pd.Timestamp("2026-01-01"))
    assert list(matrix.index) == ["current", "90+"]
    assert list(matrix.columns) == [*cr.DPD_BUCKETS, cr.CLOSED]
    assert np.allclose(matrix.sum(axis=1), 1.0)
    assert cr.roll_rates(tape().iloc[0:0]).empty


def test_score_bands() -> None:
    bands = cr.score_band(pd.Series([612.3, 650.0, 699.9, np.nan]))
    assert bands.iloc[:3].tolist() == ["600-649", "650-699", "650-699"]
    assert pd.isna(bands.iloc[3])
    assert cr.band_order(["700-749", "550-599", "600-649"]) == ["550-599", "600-649", "700-749"]


def scored(seed: int = 4, bias: float = 1.0) -> pd.DataFrame:
    """Two years of matured loans whose labels are drawn from ``bias`` times the PD."""
    rng = np.random.default_rng(seed)
    n = 40_000
    pd_ = rng.beta(1.2, 30, n)
    label = (rng.random(n) < np.minimum(pd_ * bias, 1)).astype(float)
    months = pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 730, n), unit="D")
    grade = np.where(pd_ < 0.02, "A", np.where(pd_ < 0.05, "B", "C"))
    return pd.DataFrame(
        {
            "booking_month": months.to_period("M").start_time,
            "pd": pd_,
            "label": label,
            "grade": grade,
        }
    )


def test_calibration_over_time_and_its_binomial_test() -> None:
    frame = scored()
    frame.loc[frame.index[:100], "label"] = np.nan  # not matured: left out
    calib = cr.calibration_over_time(frame, "grade")
    assert len(calib) == 8 * 3 and calib["n"].sum() == len(frame) - 100
    one = calib.iloc[0]
    part = frame[
        (frame["booking_month"].dt.to_period("Q").dt.start_time == one["period"])
        & (frame["grade"] == one["grade"])
        & frame["label"].notna()
    ]
    assert one["defaults"] == part["label"].sum()
    assert one["observed_rate"] == pytest.approx(part["label"].mean())
    assert one["expected_rate"] == pytest.approx(part["pd"].mean())
    z = (part["label"].sum() - part["pd"].sum()) / np.sqrt((part["pd"] * (1 - part["pd"])).sum())
    assert one["z"] == pytest.approx(z)
    # a calibrated model is mostly green; one that halves the risk is red everywhere
    assert (calib["status"] == "green").mean() >= 0.8
    biased = cr.calibration_over_time(scored(bias=2.0), "grade")
    assert (biased["status"] == "red").mean() >= 0.8 and biased["ratio"].median() > 1.7
    monthly = cr.calibration_over_time(frame, "grade", period="M")
    assert monthly["period"].nunique() == 24
    with pytest.raises(YidaiError, match="no column 'band'"):
        cr.calibration_over_time(frame, "band")

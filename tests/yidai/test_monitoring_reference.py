"""Monitoring compares like with like: no truncated-history reference, no tiny current side
(yidai.jobs.monitoring.reference_window, current_start, psi_bins, monitor_model)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from tests.support.champions import Champion
from yidai.jobs.monitoring import (
    SCORE,
    current_start,
    drift_table,
    monitor_model,
    psi_bins,
    reference_window,
)

AS_OF = date(2026, 9, 30)
HISTORY_START = date(2025, 10, 1)


def truncated_history(seed: int = 5) -> pd.DataFrame:
    """A year of decisions from the first day of history: ``turnover_180d`` sums over the
    days observed so far (truncated for the first 180 days), then is stable; one decision a
    day on average (a low-volume product)."""
    rng = np.random.default_rng(seed)
    n = 2_000
    days = np.sort(rng.uniform(0, 365, n))
    ts = pd.Timestamp(HISTORY_START) + pd.to_timedelta(days, unit="D")
    daily = rng.lognormal(5, 0.3, n)
    turnover = daily * np.minimum(days, 180.0)
    score = 1 / (1 + np.exp(-(-3 + rng.normal(0, 1, n))))
    return pd.DataFrame({"ts": ts, "label": np.nan, "score": score, "turnover_180d": turnover})


def test_a_training_window_with_truncated_history_is_replaced_by_a_complete_baseline() -> None:
    train = (pd.Timestamp("2025-11-01"), pd.Timestamp("2025-12-27"))
    recent = pd.Timestamp("2026-09-24")
    complete = pd.Timestamp(HISTORY_START) + pd.Timedelta(days=180)
    start, end, kind = reference_window(train, recent, complete)
    assert (kind, start, end - start) == ("baseline", complete, train[1] - train[0])
    assert reference_window(train, recent, pd.Timestamp("2025-10-15")) == (*train, "training")
    assert reference_window(train, recent, None) == (*train, "training")


def test_the_current_window_widens_to_enough_decisions_but_not_forever() -> None:
    ts = pd.Series(pd.date_range("2026-01-01", "2026-09-30", freq="12h"))  # 2 a day
    end = pd.Timestamp("2026-10-01")
    assert current_start(ts, end, 7, 0, 60) == pd.Timestamp("2026-09-24")
    start = current_start(ts, end, 7, 100, 60)
    assert 100 <= ((ts >= start) & (ts < end)).sum() <= 102  # whole days: one more at most
    assert current_start(ts, end, 7, 10_000, 60) == end - pd.Timedelta(days=60)
    assert psi_bins(5_000, 20) == 2 and psi_bins(5_000, 100) == 5 and psi_bins(10**5, 10**4) == 10


def test_psi_of_an_unchanged_feature_stays_low_on_a_small_sample() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(size=2_000)})
    current = pd.DataFrame({"x": rng.normal(size=19)})
    fixed = drift_table(reference, current, ["x"], bins=10)["psi"].iloc[0]
    adaptive = drift_table(reference, current, ["x"])
    assert adaptive["bins"].iloc[0] == 2
    assert adaptive["psi"].iloc[0] < 0.25 < fixed  # 10 bins on 19 rows: empty bins alone


def test_monitor_model_on_a_young_history_measures_real_drift_only() -> None:
    history = truncated_history()
    champion = Champion(
        "merchant_pd",
        "1",
        ["turnover_180d"],
        metadata={"windows": {"train": "2025-11-01..2025-12-26"}},
    )
    naive, _, naive_info = monitor_model(champion, history, as_of=AS_OF, recent_days=7, fraud=False)
    assert naive_info["reference"] == "training"
    assert naive.set_index("feature").loc["turnover_180d", "status"] == "drift"

    complete = {"turnover_180d": pd.Timestamp(HISTORY_START) + pd.Timedelta(days=180)}
    drift, _, info = monitor_model(
        champion,
        history,
        as_of=AS_OF,
        recent_days=7,
        fraud=False,
        complete_from=complete,
        min_current_rows=100,
    )
    assert info["reference"] == "baseline"
    assert info["reference_window"].startswith("2026-03-30")
    assert info["n_current"] >= 100
    psi = drift.set_index("feature")["psi"]
    assert psi["turnover_180d"] < 0.25 and psi[SCORE] < 0.25


def test_each_feature_is_compared_from_its_own_windows_complete_history() -> None:
    """A 30-day feature, complete a month into the history, keeps the training window as
    its reference, although the model's longest (180-day) window moves the score's and the
    180-day feature's to a baseline after half a year; the month trend and the
    characteristic analysis read the same per-feature references."""
    from yidai.jobs.monitoring import characteristics, drift_trend

    history = truncated_history()
    days = (pd.to_datetime(history["ts"]) - pd.Timestamp(HISTORY_START)).dt.days.to_numpy()
    daily = history["turnover_180d"] / np.maximum(np.minimum(days, 180.0), 1.0)
    history["sme_transfers_out_per_in_30d"] = daily * np.minimum(days, 30.0)
    history = history.rename(columns={"turnover_180d": "sme_transfers_out_per_in_180d"})
    names = ["sme_transfers_out_per_in_30d", "sme_transfers_out_per_in_180d"]
    model = Champion(
        "sme_pd", "1", names, metadata={"windows": {"train": "2025-11-01..2025-12-26"}}
    )
    start = pd.Timestamp(HISTORY_START)
    complete = {names[0]: start + pd.Timedelta(days=30), names[1]: start + pd.Timedelta(days=180)}
    drift, _, info = monitor_model(
        model, history, as_of=AS_OF, recent_days=7, fraud=False,
        complete_from=complete, min_current_rows=100,
    )  # fmt: skip
    rows = drift.set_index("feature")
    assert list(drift["feature"]) == [SCORE, *names]  # the model's order, score first
    trained = "2025-11-01..2025-12-26"
    assert tuple(rows.loc[names[0], ["reference", "reference_window"]]) == ("training", trained)
    assert rows.loc[names[1], "reference_window"].startswith("2026-03-30")
    assert rows.loc[SCORE, "reference_window"] == info["reference_window"]
    assert info["reference_window"].startswith("2026-03-30") and info["reference"] == "baseline"
    assert (rows["psi"] < 0.25).all()
    # the same reference rows: the trend starts at the earliest one, the characteristic
    # analysis compares the 30-day feature from its own window
    trend = drift_trend(model, history, drift, info)
    assert trend["month"].min() == pd.Timestamp("2025-11-01")
    assert set(trend.loc[trend["feature"] == names[0], "reference_window"]) == {trained}
    chars = characteristics(model, history, drift, info, top=2)
    assert set(chars["feature"]) == set(names)
    n_reference = chars.groupby("feature")["n_reference"].sum()
    assert n_reference[names].tolist() == rows.loc[names, "n_reference"].tolist()

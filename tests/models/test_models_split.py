"""Out-of-time split layout: credit and fraud windows, and the warning on a thin test window."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from models.training import MIN_TEST_POSITIVES, SplitConfig, split_out_of_time
from yidai.core.errors import YidaiError
from yidai.core.settings import Settings


def test_credit_split_tests_the_last_two_months_calibrates_on_the_two_before(
    make_frame: Callable[..., pd.DataFrame], tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path)
    config = SplitConfig.for_kind("credit", settings)
    frame = make_frame(n=8000, seed=3, months=8)
    parts = split_out_of_time(frame, config)
    last = pd.to_datetime(frame["ts"]).max().normalize()
    test_ts = pd.to_datetime(parts.test["ts"])
    cal_ts = pd.to_datetime(parts.calibration["ts"])
    assert test_ts.min() >= last - pd.Timedelta(days=config.test_days - 1)
    assert cal_ts.max() < test_ts.min() and pd.to_datetime(parts.train["ts"]).max() < cal_ts.min()
    assert (cal_ts.max() - cal_ts.min()).days >= config.calibration_days - 2
    assert len(parts.train) + len(parts.calibration) + len(parts.test) == len(frame)
    set_delay = Settings(home=tmp_path, fraud_label_delay_days=21)
    assert SplitConfig.for_kind("fraud", set_delay).gap_days == 21
    assert SplitConfig.for_kind("fraud", settings, label_delay_days=9).gap_days == 9
    with pytest.raises(YidaiError, match="measured on the data"):
        SplitConfig.for_kind("fraud", settings)  # unset: training_split measures it


def test_fixed_protocol_windows(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    week = SplitConfig.for_kind("fraud", settings, label_delay_days=7, train_days=7, test_days=7)
    assert (week.train_days, week.calibration_days, week.gap_days, week.test_days) == (5, 2, 7, 7)
    with pytest.raises(YidaiError, match="at least 2"):
        SplitConfig.for_kind("credit", settings, train_days=1)


def test_thin_test_window_warns_and_empty_one_refuses(
    make_frame: Callable[..., pd.DataFrame], caplog: pytest.LogCaptureFixture
) -> None:
    frame = make_frame(n=3000, seed=4, months=8)
    with caplog.at_level(logging.WARNING, logger="models.training"):
        parts = split_out_of_time(frame, SplitConfig(test_days=10, calibration_days=30))
    assert parts.test["label"].sum() < MIN_TEST_POSITIVES
    assert any("only" in r.getMessage() and "positives" in r.getMessage() for r in caplog.records)
    caplog.clear()
    big = make_frame(n=60000, seed=4, months=8)
    with caplog.at_level(logging.WARNING, logger="models.training"):
        split_out_of_time(big, SplitConfig(test_days=61, calibration_days=61))
    assert not caplog.records
    with pytest.raises(YidaiError, match="too short"):
        split_out_of_time(frame, SplitConfig(test_days=400, calibration_days=30))


def test_credit_defaults_stay_small_while_the_defaults_are_few() -> None:
    """Line reviews multiply a credit set's rows, not its defaults: below
    ``SMALL_TRAINING_POSITIVES`` defaults the small-set values hold whatever the rows;
    without a count of positives (fraud) the rows alone decide, as before."""
    from models.training import (
        SMALL_TRAINING_POSITIVES,
        SMALL_TRAINING_SET,
        default_hyperparameters,
    )

    small = default_hyperparameters(SMALL_TRAINING_SET - 1)
    large = default_hyperparameters(SMALL_TRAINING_SET)
    assert small["num_leaves"] < large["num_leaves"]
    many_rows = 3 * SMALL_TRAINING_SET
    assert default_hyperparameters(many_rows, SMALL_TRAINING_POSITIVES - 1) == small
    assert default_hyperparameters(many_rows, SMALL_TRAINING_POSITIVES) == large
    assert default_hyperparameters(many_rows) == large
    # a book four times the benchmark's: 5,421 defaults in a personal training window
    assert default_hyperparameters(many_rows, 5_421) == small


def test_line_models_anchor_their_pd_level_on_the_long_run_default_rate(
    credit_frame: pd.DataFrame, feature_names: list[str], monotone: dict[str, int]
) -> None:
    """A line model's calibrated PDs average to the default rate of all labelled decisions
    before the test window, not to the calibration window's own (here planted low); the
    personal model keeps its window's rate."""
    from models.training import TrainingData, fit_and_evaluate, get_spec, long_run_rate

    frame = credit_frame.rename(columns={"application_id": "id"})
    split = SplitConfig(test_days=60, calibration_days=60)
    parts = split_out_of_time(frame, split)
    # the calibration window's defaults: keep one in three (a window that happened to be good)
    in_window = frame.index.isin(parts.calibration.index) & (frame["label"] == 1)
    frame.loc[frame.index[in_window][::3].union(frame.index[in_window][1::3]), "label"] = 0
    parts = split_out_of_time(frame, split)
    data = TrainingData(
        frame, feature_names, "synthetic_v1", "fp", monotone, {f: "other" for f in feature_names}
    )
    rate = long_run_rate(parts.train, parts.calibration)
    window_rate = parts.calibration["label"].mean()
    assert window_rate < 0.6 * rate
    cal = parts.calibration[feature_names]
    for model, level in (("merchant_pd", rate), ("personal_pd", window_rate)):
        fitted = fit_and_evaluate(get_spec(model), data, split=split, refit=False)
        mean_pd = fitted.estimator.predict_pd(cal).mean()
        assert mean_pd == pytest.approx(level, rel=0.03), (model, mean_pd, level, window_rate)
        logged = fitted.params["calibration_level_rate"]
        assert logged == (round(rate, 6) if model == "merchant_pd" else "window")

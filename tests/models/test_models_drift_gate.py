"""The drift policy shared by the alert and the promotion gate (models.drift): severity
thresholds, declared structural features, and the gate blocking a drifted challenger."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
import pytest

from models.drift import (
    STRUCTURAL_DRIFT,
    DriftThresholds,
    gate_drift,
    is_structural,
)
from models.registry import ChampionScore, GateConfig, promotion_decision
from models.training import (
    SplitConfig,
    TrainingData,
    drift_reference,
    fit_and_evaluate,
    get_spec,
)


def test_every_structural_feature_is_a_declared_feature_with_a_reason() -> None:
    from features import FEATURE_SETS

    declared = {f.name for fs in FEATURE_SETS.values() for f in fs.features}
    assert STRUCTURAL_DRIFT and set(STRUCTURAL_DRIFT) <= declared
    assert all(len(reason) > 20 for reason in STRUCTURAL_DRIFT.values())
    assert is_structural("sme_tenure_days_life") and not is_structural(
        "sme_credit_utilisation_180d"
    )


def test_severities_follow_the_thresholds() -> None:
    t = DriftThresholds()
    assert [t.status(v) for v in (0.0, 0.099, 0.1, 0.249, 0.25, 3.0)] == [
        "stable", "stable", "shift", "shift", "drift", "drift",
    ]  # fmt: skip
    assert t.status(math.nan) == "unknown"
    with pytest.raises(ValueError, match="watch <= alert"):
        DriftThresholds(watch=0.3, alert=0.2)


def test_gate_drift_splits_structural_from_blocking_features() -> None:
    found = gate_drift(
        {"sme_tenure_days_life": 0.9, "x_amount_180d": 0.4, "y": 0.3, "z": 0.1, "w": math.nan},
        0.25,
    )
    assert found.drifted == [("x_amount_180d", 0.4), ("y", 0.3)]
    assert found.structural == [("sme_tenure_days_life", 0.9)]
    assert "x_amount_180d 0.40, y 0.30" in found.describe(0.25)
    assert "sme_tenure_days_life 0.90" in found.structural_note()


def _decide(feature_psi: dict[str, float]) -> tuple[bool, str]:
    decision = promotion_decision(
        metric="auc",
        new_value=0.80,
        score_psi=0.02,
        champion=ChampionScore(version="1", value=0.75),
        gate=GateConfig(),
        feature_psi=feature_psi,
    )
    return decision.promote, decision.reason


def test_the_gate_blocks_a_challenger_whose_features_drifted_past_the_alert_threshold() -> None:
    promote, reason = _decide({"sme_credit_utilisation_180d": 0.31, "sme_tenure_days_life": 0.8})
    assert not promote
    assert "sme_credit_utilisation_180d 0.31" in reason and "promote by hand" in reason
    # structural drift alone does not block, and is named in the verdict
    promote, reason = _decide({"sme_tenure_days_life": 0.8, "sme_credit_utilisation_180d": 0.2})
    assert promote and "structural drift not blocking" in reason and "0.80" in reason
    assert _decide({"a": 0.249})[0]


def _launch_frame(make_frame: Callable[..., pd.DataFrame]) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Eight months of decisions whose first two saw a truncated history: their
    ``customer_spend_avg_90d`` sits far below its level once 90 days of history exist."""
    frame = make_frame(n=6000, seed=11, months=8).rename(columns={"application_id": "id"})
    complete_from = frame["ts"].min().normalize() + pd.Timedelta(days=60)
    early = (frame["ts"] < complete_from).to_numpy()
    frame.loc[early, "customer_spend_avg_90d"] = frame.loc[early, "customer_spend_avg_90d"] - 3.0
    return frame, complete_from


@pytest.mark.parametrize("knows_history", [False, True])
def test_the_gate_measures_each_features_drift_from_its_first_complete_window(
    make_frame: Callable[..., pd.DataFrame],
    feature_names: list[str],
    monotone: dict[str, int],
    knows_history: bool,
) -> None:
    """The launch months' truncated features read as drift (and would block every
    challenger) unless the gate compares each feature from where its window is complete,
    even when a longer window (here the 180-day DPD, complete only for the last days of
    the training window) leaves too few rows to start the whole set there."""
    frame, spend_complete = _launch_frame(make_frame)
    first = frame["ts"].min().normalize()
    complete_from = dict.fromkeys(feature_names, first)
    complete_from["customer_spend_avg_90d"] = spend_complete
    complete_from["customer_dpd_max_180d"] = first + pd.Timedelta(days=135)
    data = TrainingData(
        frame, feature_names, "synthetic_v1", "fp-abc", monotone,
        {f: "other" for f in feature_names},
        complete_from=complete_from if knows_history else {},
    )  # fmt: skip
    fitted = fit_and_evaluate(
        get_spec("personal_pd"), data, split=SplitConfig(test_days=60, calibration_days=45),
        refit=False,
    )  # fmt: skip
    psi = fitted.evaluation.feature_psi["customer_spend_avg_90d"]
    notes = " ".join(fitted.evaluation.notes)
    if knows_history:
        assert psi < 0.1, (psi, notes)
        assert "drift of customer_spend_avg_90d against the" in notes, notes
        assert "drift of customer_dpd_max_180d against the whole training window" in notes
    else:
        assert psi >= 0.25 and "windows complete" not in notes, (psi, notes)


def test_each_feature_and_the_score_get_their_own_complete_rows() -> None:
    ts = pd.date_range("2025-01-01", periods=1000, freq="h")
    train = pd.DataFrame({"ts": ts})
    days = {"a_7d": ts[0], "b_90d": ts[400], "c_180d": ts[-10], "d_365d": ts[-10]}
    ref = drift_reference(train, days, ["a_7d", "b_90d", "c_180d", "d_365d", "e_unknown"])
    assert ref.features["a_7d"].all() and ref.features["e_unknown"].all()
    assert ref.features["b_90d"].sum() == 600 and not ref.features["b_90d"][:400].any()
    # too few rows saw the longest windows complete: they keep the whole window ...
    assert ref.features["c_180d"].all() and ref.features["d_365d"].all()
    # ... and the score starts at the longest window that leaves enough rows
    assert (ref.score == ref.features["b_90d"]).all()
    notes = " ".join(ref.notes)
    assert "only 10 of its 1000" in notes and "c_180d, d_365d against the whole" in notes
    assert "400 earlier ones" in notes and "score drift against the 600" in notes
    complete = drift_reference(train, {"a_7d": ts[0]}, ["a_7d"])
    assert complete.score.all() and complete.features["a_7d"].all() and not complete.notes
    unknown = drift_reference(train, {}, ["a_7d"])
    assert unknown.score.all() and not unknown.notes

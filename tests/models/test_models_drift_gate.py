"""The drift policy shared by the alert and the promotion gate (models.drift): severity
thresholds, declared structural features, and the gate blocking a drifted challenger."""

from __future__ import annotations

import math

import pytest

from models.drift import (
    STRUCTURAL_DRIFT,
    DriftThresholds,
    gate_drift,
    is_structural,
)
from models.registry import ChampionScore, GateConfig, promotion_decision


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

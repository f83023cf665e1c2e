"""Scorecard challengers registered in a real MLflow store beside the LightGBM models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from models.challengers import (
    credit_models,
    fit_scorecard,
    load_scorecard,
    register_scorecard,
    scorecard_name,
    train_scorecard_challenger,
)
from models.registry import list_versions
from models.training import SplitConfig, TrainingData
from yidai.core.errors import YidaiError
from yidai.core.settings import Settings

SPLIT = SplitConfig(test_days=60, calibration_days=45)


def test_a_registered_scorecard_loads_scores_alike_and_carries_its_iv_report(
    mlflow_settings: Settings,
    credit_frame: pd.DataFrame,
    feature_names: list[str],
    monotone: dict[str, int],
) -> None:
    data = TrainingData(
        frame=credit_frame.rename(columns={"application_id": "id"}),
        feature_names=feature_names,
        feature_set="synthetic_v1",
        feature_set_version="fp-abc123",
        monotone=monotone,
        reason_groups={f: "other" for f in feature_names},
    )
    card, facts = fit_scorecard(data, SPLIT)
    assert facts["metrics"]["oracle_gap"] < 0.05
    assert facts["windows"]["train"] < facts["windows"]["test"]
    result = register_scorecard("personal_pd", card, facts, data, settings=mlflow_settings)
    assert result.name == "personal_pd_scorecard" and result.characteristics == card.features_

    loaded = load_scorecard("personal_pd", settings=mlflow_settings)
    X = credit_frame[feature_names].head(200)
    np.testing.assert_allclose(loaded.predict_pd(X), card.predict_pd(X))
    assert (loaded.feature_set, loaded.version) == ("synthetic_v1", result.version)
    np.testing.assert_allclose(loaded.score_points(loaded.predict_pd(X)), card.score(X))
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    report = {a.path for a in client.list_artifacts(result.run_id, "report")}
    assert {"report/iv_report.md", "report/iv_report.html", "report/model_card.md"} <= report
    run = client.get_run(result.run_id)
    assert run.data.metrics["oot_auc"] == pytest.approx(result.metrics["oot_auc"])
    assert run.data.tags["yidai.champion_of"] == "personal_pd"
    listed = list_versions([scorecard_name("personal_pd")], settings=mlflow_settings)
    assert listed[0].aliases == ("challenger",) and "by hand" in listed[0].gate_reason


def test_only_credit_models_get_a_scorecard(mlflow_settings: Settings) -> None:
    assert credit_models() == ["personal_pd", "merchant_pd", "sme_pd"]
    with pytest.raises(YidaiError, match="credit models, not payment_fraud"):
        train_scorecard_challenger("payment_fraud", settings=mlflow_settings)

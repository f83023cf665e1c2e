"""Training framework + MLflow registry on a real SQLite tracking store: logging, the promotion
gate, the loader, and clean failures."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from models.registry import (
    CHAMPION,
    ChampionScore,
    GateConfig,
    GateDecision,
    list_versions,
    load_model,
    log_and_register,
    promote,
    promotion_decision,
    schema_rows,
)
from models.training import (
    ModelSpec,
    SplitConfig,
    TrainingData,
    fit_and_evaluate,
    train_and_register,
)
from yidai.core.errors import YidaiError
from yidai.core.settings import Settings
from yidai.jobs.monitoring import DEFAULT_PSI_THRESHOLD

FAST = {"n_estimators": 60, "learning_rate": 0.15, "early_stopping_rounds": 15}
SPLIT = SplitConfig(test_days=60, calibration_days=45)
_counter = itertools.count()


def _spec() -> ModelSpec:
    return ModelSpec(f"synthetic_pd_{next(_counter)}", "credit", "synthetic_v1", None, "test")


def _data(frame: pd.DataFrame, features: list[str], monotone: dict[str, int]) -> TrainingData:
    return TrainingData(
        frame=frame.rename(columns={"application_id": "id"}),
        feature_names=features,
        feature_set="synthetic_v1",
        feature_set_version="fp-abc123",
        monotone=monotone,
        reason_groups={f: "other" for f in features},
    )


def _client(settings: Settings) -> MlflowClient:
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def test_gate_decisions() -> None:
    gate = GateConfig(margin=0.01, max_score_psi=0.2)
    first = promotion_decision(
        metric="oot_auc", new_value=0.7, score_psi=0.05, champion=None, gate=gate
    )
    assert first.promote and first.alias == CHAMPION
    champ = ChampionScore("3", 0.75)
    better = promotion_decision(
        metric="oot_auc", new_value=0.761, score_psi=0.05, champion=champ, gate=gate
    )
    assert better.promote and "beats champion v3" in better.reason
    marginal = promotion_decision(
        metric="oot_auc", new_value=0.755, score_psi=0.05, champion=champ, gate=gate
    )
    assert not marginal.promote and marginal.alias == "challenger"
    unstable = promotion_decision(
        metric="oot_auc", new_value=0.9, score_psi=0.3, champion=champ, gate=gate
    )
    assert not unstable.promote and "PSI" in unstable.reason
    unscorable = promotion_decision(
        metric="oot_auc",
        new_value=0.9,
        score_psi=0.01,
        champion=ChampionScore("3", None, "features changed"),
        gate=gate,
    )
    assert not unscorable.promote and "features changed" in unscorable.reason
    # Features drifted between training and the OOT window beyond the monitoring alert's
    # threshold: a better model stays challenger (a first version is champion, with a warning).
    psi = {"sme_credit_utilisation_180d": 3.58, "sme_tenure_days": 0.4, "stable": 0.01}
    drifted = promotion_decision(
        metric="oot_auc", new_value=0.9, score_psi=0.05, champion=champ, gate=gate,
        feature_psi=psi,
    )  # fmt: skip
    assert not drifted.promote and "by hand" in drifted.reason
    assert drifted.reason.index("sme_credit_utilisation_180d 3.58") < drifted.reason.index(
        "sme_tenure_days 0.40"
    )
    assert "stable" not in drifted.reason
    first_drifted = promotion_decision(
        metric="oot_auc", new_value=0.7, score_psi=0.05, champion=None, gate=gate, feature_psi=psi
    )
    assert first_drifted.promote and "WARNING features drifted" in first_drifted.reason
    assert GateConfig().max_feature_psi == DEFAULT_PSI_THRESHOLD  # the alert's threshold


def test_register_load_and_gate(
    mlflow_settings: Settings,
    credit_frame: pd.DataFrame,
    feature_names: list[str],
    monotone: dict[str, int],
) -> None:
    spec = _spec()
    data = _data(credit_frame, feature_names, monotone)
    first = train_and_register(
        spec, data, settings=mlflow_settings, split=SPLIT, estimator_params=FAST
    )
    assert first.alias == CHAMPION and first.version == "1"
    metrics = first.metrics
    assert metrics["oracle_gap"] == pytest.approx(metrics["oracle_auc"] - metrics["oot_auc"])
    assert metrics["oracle_gap"] < 0.04
    assert metrics["score_psi"] < 0.1 and metrics["max_feature_psi"] < 0.1
    # Out of time: train < calibration < test windows, the test window is the latest.
    ends = [first.windows[k].split("..") for k in ("train", "calibration", "test")]
    assert ends[0][1] < ends[1][0] and ends[1][1] < ends[2][0]
    assert first.rows["test"] > 0.2 * len(credit_frame)

    model = load_model(spec.name, settings=mlflow_settings)
    assert (model.version, model.alias, model.run_id) == ("1", CHAMPION, first.run_id)
    assert model.feature_names == feature_names
    assert (model.feature_set, model.feature_set_version) == ("synthetic_v1", "fp-abc123")
    X = credit_frame[feature_names].to_numpy()
    pd_hat = model.predict_pd(X)
    assert pd_hat.shape == (len(X),) and ((pd_hat > 0) & (pd_hat < 1)).all()
    # The registered model is the refit on all labelled data: trees through the day before
    # the latest calibration window, which ends on the last labelled day.
    last_day = f"{pd.Timestamp(credit_frame['ts'].max()):%Y-%m-%d}"
    assert model.metadata["fitted_through"] == last_day
    assert first.windows["refit_calibration"].endswith(last_day)
    assert first.windows["refit_train"][:10] == first.windows["train"][:10]
    assert first.rows["refit_train"] > first.rows["train"]
    assert model.metadata["oot_primary"] == pytest.approx(first.metrics["oot_auc"])
    run_params = _client(mlflow_settings).get_run(first.run_id).data.params
    assert int(run_params["refit_n_estimators"]) == int(run_params["best_iteration"])
    assert run_params["refit_fitted_through"] == last_day
    assert np.allclose(model.predict_pd(X[0]), pd_hat[:1])
    assert model.grade(pd_hat[:3]).shape == (3,)
    assert np.all(np.diff(model.score_points(np.array([0.01, 0.02, 0.2]))) < 0)
    reasons = model.reason_codes(X[:4], top_k=2)
    assert len(reasons) == 4 and all(len(r) <= 2 for r in reasons)

    # Run content: metrics, feature columns, plots, model card, dataset inputs.
    client = _client(mlflow_settings)
    run = client.get_run(first.run_id)
    inputs = {
        next(t.value for t in d.tags if t.key == "mlflow.data.context"): d.dataset
        for d in run.inputs.dataset_inputs
    }
    assert set(inputs) == {"training", "evaluation"}
    assert (
        inputs["training"].name == "synthetic_v1@fp-abc123:training" and inputs["training"].digest
    )
    assert inputs["training"].digest != inputs["evaluation"].digest
    described = client.get_model_version(spec.name, first.version).description
    assert described.startswith("Gate: champion - first registered version")
    assert "fp-abc123" in described  # the model card follows
    assert run.data.metrics["oot_auc"] == pytest.approx(first.metrics["oot_auc"])
    assert run.data.tags["yidai.feature_set_version"] == "fp-abc123"
    report = {a.path for a in client.list_artifacts(first.run_id, "report")}
    for name in ("roc.png", "ks.png", "calibration.png", "score_distribution.png",
                 "feature_importance.png", "model_card.md"):  # fmt: skip
        assert f"report/{name}" in report

    # Same data again: not better by the margin -> challenger, reason logged; champion stays.
    second = train_and_register(
        spec, data, settings=mlflow_settings, split=SPLIT, estimator_params=FAST
    )
    assert second.alias == "challenger" and "does not beat" in second.gate_reason
    # The refit champion learned from this test window: its own out-of-time AUC is the bar.
    assert "its own out-of-time oot_auc" in second.gate_reason
    assert second.metrics["champion_oot_auc"] == pytest.approx(first.metrics["oot_auc"])
    assert str(client.get_model_version_by_alias(spec.name, CHAMPION).version) == "1"
    assert client.get_run(second.run_id).data.tags["yidai.gate.alias"] == "challenger"
    assert load_model(spec.name, "challenger", settings=mlflow_settings).version == "2"

    # A negative margin lets an equal model through: the alias moves.
    third = train_and_register(
        spec,
        data,
        settings=mlflow_settings,
        split=SPLIT,
        gate=GateConfig(margin=-1.0),
        estimator_params=FAST,
    )
    assert third.alias == CHAMPION
    assert load_model(spec.name, settings=mlflow_settings).version == third.version

    # The registry listing (newest first, aliases, run metrics, the gate's reason).
    listed = list_versions([spec.name, "never_registered"], latest=2, settings=mlflow_settings)
    assert [(v.version, v.aliases) for v in listed] == [
        (third.version, (CHAMPION,)),
        (second.version, ("challenger",)),
    ]
    assert listed[0].metrics["oot_auc"] == pytest.approx(third.metrics["oot_auc"])
    assert listed[0].metrics["oracle_gap"] == pytest.approx(third.metrics["oracle_gap"])
    assert listed[1].gate_reason == second.gate_reason and listed[1].feature_set == "synthetic_v1"

    # A manual rollback to v1: the displaced champion becomes challenger, the reason is kept.
    promote(spec.name, "1", reason="rollback after review", settings=mlflow_settings)
    assert load_model(spec.name, settings=mlflow_settings).version == "1"
    assert load_model(spec.name, "challenger", settings=mlflow_settings).version == third.version
    assert client.get_model_version(spec.name, "1").tags["gate_reason"] == (
        "manual: rollback after review"
    )
    # recorded in MLflow: the gate's own verdict kept beside, the reason on the training run
    assert client.get_model_version(spec.name, "1").tags["gate_reason_before_manual"]
    assert client.get_run(first.run_id).data.tags["yidai.gate.manual_reason"] == (
        "rollback after review"
    )
    with pytest.raises(YidaiError, match="has no version '99'"):
        promote(spec.name, "99", reason="typo", settings=mlflow_settings)
    with pytest.raises(YidaiError, match="needs a reason"):
        promote(spec.name, "2", reason=" ", settings=mlflow_settings)
    assert load_model(spec.name, settings=mlflow_settings).version == "1"

    # Loader refusals.
    with pytest.raises(YidaiError, match="online snapshot has version other"):
        load_model(spec.name, settings=mlflow_settings, expected_feature_set_version="other")
    with pytest.raises(YidaiError, match="alias 'nope'"):
        load_model(spec.name, "nope", settings=mlflow_settings)
    with pytest.raises(YidaiError, match="needs 5 features"):
        model.predict_pd(X[:, :3])


def test_a_champion_on_another_feature_set_version_is_scored_on_its_own_features(
    mlflow_settings: Settings,
    credit_frame: pd.DataFrame,
    feature_names: list[str],
    monotone: dict[str, int],
) -> None:
    """After a model moves to a new feature-set version, the gate rebuilds the champion's own
    columns for the same test decisions; if they cannot be rebuilt the new model stays
    challenger with the reason."""
    spec = _spec()
    v1 = _data(credit_frame, feature_names, monotone)
    # a champion from before the refit (trained on the training window only) is comparable
    # on a later test window
    first = train_and_register(
        spec, v1, settings=mlflow_settings, split=SPLIT, estimator_params=FAST, refit=False
    )
    assert first.alias == CHAMPION
    # v2: the same signal under new column names, plus a column v1 never had
    renamed = {f: f"{f}_v2" for f in feature_names}
    frame = v1.frame.rename(columns=renamed).assign(extra_v2=0.0)
    v2_features = [*renamed.values(), "extra_v2"]
    hints = {renamed[k]: s for k, s in monotone.items()}
    groups = {f: "other" for f in v2_features}
    v2 = TrainingData(frame, v2_features, "synthetic_v2", "fp-v2", hints, groups)
    spec2 = ModelSpec(spec.name, "credit", "synthetic_v2", None, "test")

    # no way to rebuild v1 (the synthetic set is not in the feature store): challenger, why
    second = train_and_register(
        spec2, v2, settings=mlflow_settings, split=SPLIT, estimator_params=FAST
    )
    assert second.alias == "challenger"
    assert "could not be rebuilt" in second.gate_reason and "synthetic_v1" in second.gate_reason

    rebuilt: list[str] = []

    def v1_rows(feature_set: str, rows: pd.DataFrame) -> pd.DataFrame:
        rebuilt.append(feature_set)
        return rows.rename(columns={v: k for k, v in renamed.items()})

    third = train_and_register(
        spec2, v2, settings=mlflow_settings, split=SPLIT, estimator_params=FAST,
        gate=GateConfig(margin=-1.0), champion_rows=v1_rows,
    )  # fmt: skip
    assert rebuilt == ["synthetic_v1"]
    assert third.alias == CHAMPION and "beats champion v1" in third.gate_reason
    # the champion was scored on exactly its own OOT AUC's rows and columns
    assert third.metrics["champion_oot_auc"] == pytest.approx(first.metrics["oot_auc"])


def _registered_names(settings: Settings) -> set[str]:
    return {r.name for r in _client(settings).search_registered_models()}


def test_bad_training_sets_register_nothing(
    mlflow_settings: Settings,
    credit_frame: pd.DataFrame,
    feature_names: list[str],
    monotone: dict[str, int],
) -> None:
    spec = _spec()
    data = _data(credit_frame, feature_names, monotone)
    empty = _data(credit_frame.iloc[:0], feature_names, monotone)
    one_class = _data(credit_frame.assign(label=0), feature_names, monotone)
    lacking = _data(credit_frame.drop(columns=feature_names[1]), feature_names, monotone)
    for bad, message in ((empty, "empty"), (one_class, "single class"), (lacking, "lacks")):
        with pytest.raises(YidaiError, match=message):
            train_and_register(spec, bad, settings=mlflow_settings, split=SPLIT)
    short = _data(credit_frame.iloc[-300:], feature_names, monotone)
    with pytest.raises(YidaiError, match="too short"):
        train_and_register(spec, short, settings=mlflow_settings, split=SPLIT)
    assert spec.name not in _registered_names(mlflow_settings)
    unreachable = Settings(
        home=mlflow_settings.home, mlflow_tracking_uri="http://127.0.0.1:9/mlflow"
    )
    with pytest.raises(YidaiError, match="unreachable"):
        train_and_register(spec, data, settings=unreachable, split=SPLIT)
    with pytest.raises(YidaiError, match="unreachable"):
        load_model(spec.name, settings=unreachable)


def test_failure_after_version_creation_leaves_nothing_registered(
    mlflow_settings: Settings,
    credit_frame: pd.DataFrame,
    feature_names: list[str],
    monotone: dict[str, int],
    tmp_path: Path,
) -> None:
    from models.registry import ModelPackage
    from models.scorecard import Scorecard

    spec = _spec()
    fitted = fit_and_evaluate(
        spec, _data(credit_frame, feature_names, monotone), split=SPLIT, estimator_params=FAST
    )
    package = ModelPackage(
        name=spec.name,
        estimator=fitted.estimator,
        scorecard=Scorecard(),
        feature_set="synthetic_v1",
        feature_set_version="fp",
        reason_groups={},
        params=fitted.params,
        metrics=fitted.evaluation.metrics,
        primary_metric="oot_auc",
    )
    bad = GateDecision(True, "test")
    object.__setattr__(bad, "alias", "v1")  # MLflow rejects version-like aliases
    with pytest.raises(MlflowException):
        log_and_register(package, bad, settings=mlflow_settings)
    assert spec.name not in _registered_names(mlflow_settings)
    runs = _client(mlflow_settings).search_runs(
        [_client(mlflow_settings).get_experiment_by_name(f"yidai/{spec.name}").experiment_id]
    )
    assert [r.info.status for r in runs] == ["FAILED"]
    # A missing report folder fails before anything is registered.
    package.artifacts_dir = tmp_path / "missing"
    with pytest.raises(YidaiError, match="report folder"):
        log_and_register(package, GateDecision(True, "test"), settings=mlflow_settings)
    assert spec.name not in _registered_names(mlflow_settings)


def test_the_logged_dataset_schema_is_inferred_from_the_rows_that_decide_it() -> None:
    from mlflow.data.pandas_dataset import from_pandas

    rng = np.random.default_rng(7)
    n = 5_000
    late_gap = rng.normal(size=n)
    late_gap[4_321] = np.nan  # one missing value, far down the frame
    frame = pd.DataFrame(
        {
            "ts": pd.date_range("2026-01-01", periods=n, freq="h"),
            "label": rng.integers(0, 2, n).astype("float64"),
            "complete": rng.normal(size=n),
            "late_gap": late_gap,
            "sparse": np.where(rng.random(n) < 0.3, np.nan, 1.0),
            "empty": np.full(n, np.nan),
            "segment": rng.choice(["a", "b"], n),
        }
    )
    rows = schema_rows(frame)
    assert len(rows) <= 1 + frame.shape[1]
    assert rows["late_gap"].isna().any() and rows["sparse"].isna().any()
    whole = from_pandas(frame, targets="label").schema
    assert whole is not None
    assert from_pandas(rows, targets="label").schema == whole
    required = {c.name: c.required for c in whole.inputs}
    assert required["complete"] and not required["late_gap"] and not required["empty"]
    assert schema_rows(frame.iloc[:0]).empty

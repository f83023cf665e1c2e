"""train_model wired to the real feature store: a contract-shaped DuckDB warehouse, the daily
feature build, the point-in-time training set, MLflow, the online snapshot and the loader.

(The end-to-end run on the simulator - simulate, ingest, build, train - is exercised by hand and
reported in docs/benchmarks.md; it takes minutes, beyond this area's test budget.)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from models.registry import load_model
from models.training import train_model
from yidai.core.catalogue import FRAUD_MODEL
from yidai.core.errors import YidaiError
from yidai.core.settings import Settings

AS_OF = dt.date(2026, 9, 30)
FRAUD_SET = FRAUD_MODEL.feature_set  # the active payment-fraud set
FAST = {"n_estimators": 40, "learning_rate": 0.2, "early_stopping_rounds": 10}


@pytest.fixture(scope="module")
def warehouse_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse with a year of synthetic rows, feature history and today's snapshot."""
    from features import build_features, build_features_history, publish_snapshot
    from tests.support.synthetic import synthetic_warehouse
    from yidai.core.warehouse import connect

    home = tmp_path_factory.mktemp("models_integration")
    con = connect(home / "warehouse" / "yidai.duckdb")
    try:
        synthetic_warehouse(con, n_pos=12_000, n_payments=4_000, n_orders=1_000)
        build_features_history(con, dt.date(2025, 10, 1), AS_OF, [FRAUD_SET])
        build_features(con, AS_OF, [FRAUD_SET])
        publish_snapshot(con, home / "serving", AS_OF, [FRAUD_SET])
    finally:
        con.close()
    return home


@pytest.fixture
def settings(warehouse_home: Path, mlflow_settings: Settings) -> Settings:
    return Settings(home=warehouse_home, mlflow_tracking_uri=mlflow_settings.tracking_uri)


def test_fraud_model_from_the_feature_store(settings: Settings) -> None:
    from features import FEATURE_SETS, build_training_set, fraud_spine, load_snapshot
    from features.training import measured_label_delay
    from yidai.core.warehouse import connect

    result = train_model("payment_fraud", settings=settings, estimator_params=FAST)
    fs = FEATURE_SETS[FRAUD_SET]
    assert (result.feature_set, result.feature_set_version) == (fs.name, fs.fingerprint)
    assert result.alias == "champion"
    for metric in ("oot_average_precision", "oot_card_precision_top_k",
                   "oot_card_fraud_share_top_k", "oot_amount_weighted_recall", "score_psi",
                   "max_feature_psi"):  # fmt: skip
        assert np.isfinite(result.metrics[metric]), metric
    assert "oracle_auc" not in result.metrics  # no simulator truth in this warehouse
    # Fraud: the test window starts a label delay after calibration ends; unset, the delay
    # is measured: 90% of this warehouse's reports come 3-40 days after the payment.
    cal_end = dt.date.fromisoformat(result.windows["calibration"].split("..")[1])
    test_start = dt.date.fromisoformat(result.windows["test"].split("..")[0])
    assert settings.fraud_label_delay_days is None
    con = connect(settings.warehouse, read_only=True)
    try:
        delay = measured_label_delay(con, AS_OF, 0.9)
    finally:
        con.close()
    assert 34 <= delay <= 40
    assert (test_start - cal_end).days == delay + 1

    # The service's path: the published snapshot's fingerprint must match the model's.
    snapshot = load_snapshot(settings.serving, FRAUD_SET)
    model = load_model(
        "payment_fraud", settings=settings, expected_feature_set_version=snapshot.fingerprint
    )
    assert model.feature_names == fs.columns
    con = connect(settings.warehouse)
    try:
        spine = fraud_spine(con, AS_OF).tail(50)
        rows = build_training_set(con, spine, FRAUD_SET)
    finally:
        con.close()
    p = model.predict_pd(rows[fs.columns].to_numpy())
    assert p.shape == (50,) and ((p > 0) & (p < 1)).all()
    reasons = model.reason_codes(rows[fs.columns].to_numpy(), top_k=3)
    assert any(reasons) and all(r.text_zh and r.text_en for row in reasons for r in row)


def test_a_tuned_fraud_model_logs_its_search(settings: Settings) -> None:
    """``tune_trials``: an Optuna search on rolling out-of-time folds of the training window
    (average precision), its best parameters used and logged, every trial in a table."""
    import pandas as pd

    result = train_model(
        "payment_fraud",
        settings=settings,
        estimator_params={"n_estimators": 60, "early_stopping_rounds": 10},
        tune_trials=2,
    )
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    run = client.get_run(result.run_id)
    params = run.data.params
    assert params["tune_trials"] == "2"
    assert 0 < float(params["tune_best_mean_average_precision"]) <= 1
    folds = params["tune_folds"].split(",")
    assert len(folds) == 3 and folds == sorted(folds)  # rolling: later and later blocks
    assert params["tune_folds"].split(",")[-1].split("..")[1] < params["window_calibration"]
    path = client.download_artifacts(result.run_id, "report/tuning_trials.csv", str(settings.home))
    trials = pd.read_csv(path)
    assert len(trials) == 2 and trials["mean_average_precision"].between(0, 1).all()
    best = trials.loc[trials["mean_average_precision"].idxmax()]
    assert int(params["num_leaves"]) == int(best["num_leaves"])  # the best trial's settings
    assert float(params["learning_rate"]) == pytest.approx(best["learning_rate"])


def test_too_little_credit_history_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(YidaiError, match=r"too short|single class"):
        train_model("personal_pd", settings=settings, estimator_params=FAST)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    assert "personal_pd" not in {m.name for m in client.search_registered_models()}
    with pytest.raises(YidaiError, match="unknown model"):
        train_model("no_such_model", settings=settings)


def test_the_gate_rebuilds_an_older_feature_set_from_the_warehouse(settings: Settings) -> None:
    """``warehouse_rows``: the v1 columns of decisions that carry v2 columns, point in time,
    equal to building v1 for them directly (how a v1 champion is scored against v2 models)."""
    from features import FEATURE_SETS, build_training_set, credit_spine
    from models.training import warehouse_rows
    from yidai.core.warehouse import connect

    con = connect(settings.warehouse)
    try:
        spine = credit_spine(con, "personal", AS_OF, 1, include_declined=True)
        v2 = build_training_set(con, spine, "personal_credit_v2")
        expected = build_training_set(con, spine, "personal_credit_v1")
    finally:
        con.close()
    assert len(spine) >= 10 and spine["label"].notna().any()
    got = warehouse_rows(settings)("personal_credit_v1", v2.rename(columns={"decision_ts": "ts"}))
    v1_columns = FEATURE_SETS["personal_credit_v1"].columns
    assert "customer_mcc_diversity_90d" in v1_columns and "customer_mcc_diversity_90d" not in v2
    np.testing.assert_array_equal(got[v1_columns].to_numpy(), expected[v1_columns].to_numpy())
    assert got["label"].equals(expected["label"])


@pytest.fixture(scope="module")
def busy_weeks_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sixty busy days (about 900 card and payment events a day, ~1% fraud reported 3-40
    days later), the fraud feature history over them, and a home of its own (own MLflow)."""
    from features import build_features_history
    from tests.support.synthetic import synthetic_warehouse
    from yidai.core.warehouse import connect

    home = tmp_path_factory.mktemp("fraud_protocol")
    start = AS_OF - dt.timedelta(days=59)
    con = connect(home / "warehouse" / "yidai.duckdb")
    try:
        synthetic_warehouse(
            con, n_pos=40_000, n_payments=14_000, n_orders=300, start=start, days=60, seed=11
        )
        build_features_history(con, start, AS_OF, [FRAUD_SET])
    finally:
        con.close()
    return home


def test_a_one_week_fraud_protocol_from_the_cli(
    busy_weeks_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``yidai train --label-delay-days 7 --train-days 7 --test-days 7``: a training week
    (its last 2 days stop the boosting and fit the calibrator), a 7-day gap, a test week; the
    negatives are sampled outside those windows only; the champion is the refit."""
    from typer.testing import CliRunner

    from features import fraud_spine
    from yidai.cli import app
    from yidai.core.settings import reset_settings_cache
    from yidai.core.warehouse import connect

    store = busy_weeks_home / "mlflow" / "mlflow.db"
    settings = Settings(home=busy_weeks_home, mlflow_tracking_uri=f"sqlite:///{store}")
    monkeypatch.setenv("YIDAI_HOME", str(settings.home))
    monkeypatch.setenv("YIDAI_MLFLOW_TRACKING_URI", settings.tracking_uri)
    reset_settings_cache()
    args = ["train", "--model", "payment_fraud", "--as-of", AS_OF.isoformat()]
    args += ["--label-delay-days", "7", "--train-days", "7", "--test-days", "7"]
    result = CliRunner().invoke(app, args)
    reset_settings_cache()
    assert result.exit_code == 0, result.output

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    version = client.get_model_version_by_alias("payment_fraud", "champion")
    params = client.get_run(version.run_id).data.params
    span = {
        k: [dt.date.fromisoformat(d) for d in params[f"window_{k}"].split("..")]
        for k in ("train", "calibration", "test", "refit_train", "refit_calibration")
    }
    assert (span["train"][1] - span["train"][0]).days + 1 == 5
    assert (span["calibration"][1] - span["calibration"][0]).days + 1 == 2
    assert (span["test"][0] - span["calibration"][1]).days == 7 + 1
    assert (span["test"][1] - span["test"][0]).days + 1 == 7
    # Labels known at the end of AS_OF count for events up to 7 days before it.
    assert span["test"][1] == AS_OF - dt.timedelta(days=7)
    # The refit: the same window lengths, moved to the last labelled day.
    assert span["refit_calibration"][1] == span["test"][1]
    assert (span["refit_train"][1] - span["refit_train"][0]).days + 1 == 5
    assert params["refit_fitted_through"] == span["test"][1].isoformat()
    # The test window is complete: every labelled event of it, none sampled away.
    con = connect(settings.warehouse, read_only=True)
    try:
        spine = fraud_spine(con, AS_OF, 7, start=span["test"][0])
    finally:
        con.close()
    run = client.get_run(version.run_id)
    assert run.data.metrics["oot_rows"] == len(spine)
    assert np.isfinite(run.data.metrics["oot_card_precision_top_k"])

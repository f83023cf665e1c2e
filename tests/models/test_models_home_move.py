"""Relocatable homes: a home copied elsewhere trains and loads in the copy, never the original.

A real SQLite MLflow store with a trained, registered model; ``yidai home move OLD NEW``
copies it and re-points the store and the MLmodel files; the original is moved out of the
way (anything still pointing at it would fail or recreate it) and compared byte for byte
after the copy has trained a second version and loaded the champion.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from models.registry import ensure_experiment, load_model, tracking_client
from models.training import ModelSpec, SplitConfig, TrainingData, train_and_register
from yidai.cli import app
from yidai.core.errors import YidaiError
from yidai.core.settings import Settings

FAST = {"n_estimators": 40, "learning_rate": 0.2, "early_stopping_rounds": 10}
SPLIT = SplitConfig(test_days=60, calibration_days=45)
SPEC = ModelSpec("relocated_pd", "credit", "synthetic_v1", None, "test")


def _train(home: Path, frame: pd.DataFrame, features: list[str]) -> str:
    data = TrainingData(
        frame=frame.rename(columns={"application_id": "id"}),
        feature_names=features,
        feature_set="synthetic_v1",
        feature_set_version="fp-abc123",
        monotone={},
        reason_groups={f: "other" for f in features},
    )
    result = train_and_register(
        SPEC, data, settings=Settings(home=home), split=SPLIT, estimator_params=FAST
    )
    return result.version


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_copied_home_trains_and_loads_in_the_copy_only(
    tmp_path: Path,
    credit_frame: pd.DataFrame,
    feature_names: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    original, copy, away = tmp_path / "home", tmp_path / "restored" / "home", tmp_path / "away"
    assert _train(original, credit_frame, feature_names) == "1"
    before = _tree_digest(original)

    # A plain copy refuses to train into (or load from) the original, naming the fix.
    shutil.copytree(original, tmp_path / "plain-copy")
    plain = Settings(home=tmp_path / "plain-copy")
    with pytest.raises(YidaiError, match="yidai home move"):
        load_model(SPEC.name, settings=plain)
    with pytest.raises(YidaiError, match="outside the home"):  # training would write there
        ensure_experiment(tracking_client(plain), SPEC.name, plain)

    result = CliRunner().invoke(app, ["home", "move", str(original), str(copy)])
    assert result.exit_code == 0, result.output
    assert "now point into this home" in result.output
    original.rename(away)  # anything still pointing at the original fails or recreates it
    try:
        assert _train(copy, credit_frame, feature_names) == "2"
        model = load_model(SPEC.name, settings=Settings(home=copy))
        assert model.version in {"1", "2"}
        assert model.predict_pd(credit_frame[feature_names].to_numpy()[:5]).shape == (5,)
        v1 = load_model(SPEC.name, "challenger", settings=Settings(home=copy))
        assert v1.version in {"1", "2"} and v1.version != model.version
        assert not original.exists()
        for mlmodel in (copy / "mlflow" / "artifacts").rglob("MLmodel"):
            assert str(original) not in mlmodel.read_text()
    finally:
        away.rename(original)
    assert _tree_digest(original) == before
    # running it again changes nothing
    again = CliRunner().invoke(app, ["home", "move", str(original), str(copy)])
    assert again.exit_code == 0 and "0 artifact location(s)" in again.output

"""Scorecard challengers: a WoE points scorecard beside each LightGBM credit champion, on the
same training set and out-of-time windows, registered in MLflow as ``<model>_scorecard``
(alias ``challenger``; a credit committee promotes it by hand) with its information-value
report, points table and model card as artifacts of the run."""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.evaluation import evaluate
from models.registry import (
    CHALLENGER,
    ensure_experiment,
    register_version,
    tracking_client,
    version_by_alias,
)
from models.training import (
    SplitConfig,
    TrainingData,
    drift_reference,
    get_spec,
    load_training_data,
    split_out_of_time,
)
from models.woe_scorecard import WoEScorecard, describe
from yidai.core.catalogue import MODEL_NAMES
from yidai.core.errors import YidaiError
from yidai.core.settings import Settings, get_settings

log = logging.getLogger(__name__)
SUFFIX = "_scorecard"


def scorecard_name(model: str) -> str:
    """The registered name of a credit model's scorecard challenger."""
    return f"{model}{SUFFIX}"


def credit_models() -> list[str]:
    """The models that get a scorecard challenger (the credit PD models)."""
    return [n for n in MODEL_NAMES if get_spec(n).kind == "credit"]


@dataclass(frozen=True)
class ChallengerResult:
    """A registered scorecard challenger."""

    name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    characteristics: list[str]


def fit_scorecard(data: TrainingData, split: SplitConfig) -> tuple[WoEScorecard, dict[str, Any]]:
    """Fit on the training and calibration windows (a scorecard needs no early stopping),
    evaluate on the test window; returns the card and its out-of-time metrics."""
    data.check()
    parts = split_out_of_time(data.frame, split)
    fit_rows = pd.concat([parts.train, parts.calibration])
    features = data.feature_names
    card = WoEScorecard(monotone=data.monotone).fit(fit_rows[features], fit_rows["label"])
    test = parts.test
    reference = drift_reference(fit_rows, data.complete_from, features)
    evaluation = evaluate(
        kind="credit",
        y_test=test["label"].to_numpy(),
        p_test=card.predict_pd(test[features]),
        p_train=card.predict_pd(fit_rows.loc[reference.score, features]),
        X_train=fit_rows[features],
        X_test=test[features],
        reference_rows=reference.features,
        oracle_score=test["true_pd"].to_numpy() if "true_pd" in test else None,
    )
    first_day = parts.windows["train"].split("..")[0]
    last_day = parts.windows["calibration"].split("..")[1]
    windows = {"train": f"{first_day}..{last_day}", "test": parts.windows["test"]}
    return card, {"metrics": evaluation.metrics, "windows": windows, "rows": len(fit_rows)}


def _write_report(folder: Path, card: WoEScorecard, model: str, facts: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    card.iv_report_.to_csv(folder / "iv_report.csv", index=False)
    (folder / "iv_report.html").write_text(  # the MLflow UI renders HTML artifacts
        f"<h2>Information value: {scorecard_name(model)}</h2>"
        + card.iv_report_.to_html(index=False, float_format=lambda v: f"{v:.4f}"),
        encoding="utf-8",
    )
    card.points_table_.to_csv(folder / "points_table.csv", index=False)
    (folder / "iv_report.md").write_text(
        f"# Information value: {scorecard_name(model)}\n\n{card.iv_report_markdown()}",
        encoding="utf-8",
    )
    m = facts["metrics"]
    gap = f"{m['oracle_gap']:+.4f}" if "oracle_gap" in m else "n/a (no simulator truth)"
    (folder / "model_card.md").write_text(
        f"# {scorecard_name(model)}: scorecard challenger of {model}\n\n"
        f"WoE binning (optbinning, monotonic trends from the feature hints), logistic "
        f"regression on the WoE of {len(card.features_)} characteristics with IV >= "
        f"{card.min_iv}, scaled to {card.scaling.base_score:.0f} points at odds "
        f"{card.scaling.base_odds:.0f}:1 and {card.scaling.pdo:.0f} points to double the odds.\n\n"
        f"- fitted on {facts['rows']:,} decisions, {facts['windows']['train']}\n"
        f"- out of time {facts['windows']['test']}: AUC {m['oot_auc']:.4f}, KS "
        f"{m['oot_ks']:.4f}, Brier {m['oot_brier']:.5f}; oracle gap {gap}\n"
        f"- reason codes: the characteristics where the applicant lost the most points\n\n"
        f"## Points\n\n{_points_markdown(card)}\n## Information value\n\n"
        f"{card.iv_report_markdown()}",
        encoding="utf-8",
    )


def _points_markdown(card: WoEScorecard) -> str:
    lines = [
        "| characteristic | bin | count | bad rate | WoE | points |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in card.points_table_.itertuples(index=False):
        if r.Variable in card.features_ and r.Count > 0:
            lines.append(
                f"| {r.Variable} | {r.Bin} | {r.Count:,} | {r[4]:.2%} | {r.WoE:.3f} "
                f"| {r.Points:.1f} |"
            )
    return "\n".join(lines) + "\n"


class _PyfuncScorecard:
    """MLflow pyfunc wrapper: ``predict`` returns the PD of each row."""

    def __init__(self, card: WoEScorecard) -> None:
        self.card = card

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        return self.card.predict_pd(model_input)


def register_scorecard(
    model: str,
    card: WoEScorecard,
    facts: dict[str, Any],
    data: TrainingData,
    *,
    settings: Settings,
) -> ChallengerResult:
    """Log the run (params, metrics, IV report, points, card) and register the challenger."""
    # heavy: MLflow and optbinning
    import mlflow
    import mlflow.pyfunc
    import optbinning

    class PyfuncScorecard(_PyfuncScorecard, mlflow.pyfunc.PythonModel):  # type: ignore[name-defined,misc]
        pass

    name = scorecard_name(model)
    client = tracking_client(settings)
    experiment_id = ensure_experiment(client, model, settings)
    metrics = {k: float(v) for k, v in facts["metrics"].items() if np.isfinite(v)}
    reason = "scorecard challenger: promoted only by hand, after the credit committee's review"
    with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
        mlflow.log_params(
            {
                **describe(card),
                "model": name,
                "feature_set": data.feature_set,
                "feature_set_version": data.feature_set_version,
                **{f"window_{k}": v for k, v in facts["windows"].items()},
            }
        )
        mlflow.log_metrics(metrics)
        mlflow.set_tags(
            {
                "yidai.model": name,
                "yidai.kind": "scorecard",
                "yidai.champion_of": model,
                "yidai.feature_set": data.feature_set,
                "yidai.feature_set_version": data.feature_set_version,
                "yidai.gate.alias": CHALLENGER,
                "yidai.gate.reason": reason,
            }
        )
        with tempfile.TemporaryDirectory(prefix=f"yidai-{name}-") as tmp:
            _write_report(Path(tmp), card, model, facts)
            mlflow.log_artifacts(tmp, artifact_path="report")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=PyfuncScorecard(card),
            pip_requirements=[f"optbinning=={optbinning.__version__}"],
        )
        version = register_version(
            client,
            name,
            info,
            run_id=run.info.run_id,
            alias=CHALLENGER,
            model_description=f"WoE points scorecard, challenger of {model}",
            tags={"feature_set": data.feature_set, "gate_reason": reason,
                  **{f"metric.{k}": f"{v:.6g}" for k, v in metrics.items()
                     if k.startswith("oot_")}},
        )  # fmt: skip
    log.info("registered %s v%s (challenger), OOT AUC %.4f", name, version, metrics["oot_auc"])
    return ChallengerResult(name, version, run.info.run_id, metrics, list(card.features_))


def train_scorecard_challenger(
    model: str,
    *,
    settings: Settings | None = None,
    as_of: dt.date | None = None,
    split: SplitConfig | None = None,
) -> ChallengerResult:
    """Fit, evaluate and register the scorecard challenger of credit model ``model`` on the
    same training set and windows as the model itself."""
    spec = get_spec(model)
    if spec.kind != "credit":
        raise YidaiError(f"scorecard challengers are for the credit models, not {model}")
    settings = settings or get_settings()
    tracking_client(settings)  # an unreachable MLflow fails before the binning
    split = split or SplitConfig.for_kind(spec.kind, settings)
    data = load_training_data(spec, settings, as_of, split)
    card, facts = fit_scorecard(data, split)
    return register_scorecard(model, card, facts, data, settings=settings)


@dataclass(frozen=True)
class LoadedScorecard:
    """A registered scorecard with the interface of a loaded model (``predict_pd``,
    ``score_points``, ``grade``, ``feature_names``, ``feature_set``, ``name``, ``version``)."""

    name: str
    version: str
    feature_set: str
    card: WoEScorecard

    @property
    def feature_names(self) -> list[str]:
        return list(self.card.feature_names_)

    def predict_pd(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.card.predict_pd(X)

    def score_points(self, pd_: np.ndarray | float) -> np.ndarray:
        return self.card.scaling.points(pd_)

    def grade(self, pd_: np.ndarray | float) -> np.ndarray:
        return self.card.scaling.grade(pd_)


def load_scorecard(
    model: str, alias: str = CHALLENGER, *, settings: Settings | None = None
) -> LoadedScorecard:
    """The registered scorecard of credit model ``model`` that ``alias`` points to."""
    # heavy: MLflow
    import mlflow.pyfunc

    client = tracking_client(settings)
    name = scorecard_name(model)
    version = version_by_alias(client, name, alias)
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
    card = loaded.unwrap_python_model().card
    if not isinstance(card, WoEScorecard):
        raise YidaiError(f"{name} v{version.version} is not a Yidai scorecard")
    feature_set = str((version.tags or {}).get("feature_set", ""))
    return LoadedScorecard(name, str(version.version), feature_set, card)

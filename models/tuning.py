"""A small hyperparameter search with time in mind (opt-in: ``yidai train --tune-trials N``
or ``YIDAI_TUNE_TRIALS``).

Optuna's TPE sampler proposes LightGBM settings; each trial is scored on rolling
out-of-time folds of the training window (fold k trains on the days before block k and is
scored on block k, later in time; the boosting stops early on that block), and the trial's
value is the mean of the folds' average precision (fraud) or AUC (credit).  The calibration
and test windows are never seen by the search.  The trials come back as a table
(``TuningResult.trials``) that the training run logs to MLflow beside the best parameters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models import metrics as m
from models.estimator import GradientBoostedPD
from yidai.core.errors import YidaiError

log = logging.getLogger(__name__)

#: Number of rolling folds (each scored on one later block of the training window).
TUNE_FOLDS = 3


@dataclass(frozen=True)
class TuningResult:
    """The best parameters found, their cross-validated value, and every trial."""

    best_params: dict[str, Any]
    best_value: float
    metric: str
    trials: pd.DataFrame
    folds: list[str]


def rolling_folds(ts: pd.Series, n_folds: int = TUNE_FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_folds`` (train, validation) row masks: the days are cut into ``n_folds + 1``
    consecutive blocks; fold k trains on blocks ``< k + 1`` and validates on block ``k + 1``."""
    days = pd.to_datetime(ts).dt.normalize()
    unique = np.sort(days.unique())
    if len(unique) < n_folds + 1:
        raise YidaiError(
            f"tuning needs at least {n_folds + 1} days in the training window, got {len(unique)}"
        )
    edges = [unique[round(i * len(unique) / (n_folds + 1))] for i in range(1, n_folds + 1)]
    bounds = [*edges, unique[-1] + np.timedelta64(1, "D")]
    values = days.to_numpy()
    return [
        (values < bounds[k], (values >= bounds[k]) & (values < bounds[k + 1]))
        for k in range(n_folds)
    ]


def _suggest(trial: Any) -> dict[str, Any]:
    return {
        "num_leaves": trial.suggest_int("num_leaves", 4, 63, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 10, 200, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 0.01, 10.0, log=True),
        "max_pos_weight": trial.suggest_float("max_pos_weight", 1.0, 50.0, log=True),
    }


def tune(
    train: pd.DataFrame,
    features: list[str],
    base_params: dict[str, Any],
    *,
    n_trials: int,
    kind: str,
    monotone: dict[str, int] | None = None,
    seed: int = 42,
    n_folds: int = TUNE_FOLDS,
) -> TuningResult:
    """Search ``n_trials`` settings on rolling out-of-time folds of ``train`` (time-ordered
    rows with ``ts``, ``label`` and ``features``); ``base_params`` are the estimator's other
    parameters (number of trees, early stopping, calibration...)."""
    # heavy: optuna is only needed when a search is asked for (extra `modelling`)
    import optuna

    if n_trials < 1:
        raise YidaiError(f"the number of tuning trials must be at least 1, got {n_trials}")
    folds = rolling_folds(train["ts"], n_folds)
    y = train["label"].to_numpy()
    for k, (fit_rows, val_rows) in enumerate(folds):
        for part, rows in (("train", fit_rows), ("validation", val_rows)):
            n_pos = int(y[rows].sum())
            if n_pos == 0 or n_pos == int(rows.sum()):
                raise YidaiError(
                    f"tuning fold {k + 1}: its {part} block has {int(rows.sum())} rows and "
                    f"{n_pos} positives; train on a longer history or tune fewer folds"
                )
    score = m.average_precision if kind == "fraud" else m.auc
    metric = "average_precision" if kind == "fraud" else "auc"
    X = train[features]
    ts = pd.to_datetime(train["ts"])
    described = [
        f"{ts[v].min():%Y-%m-%d}..{ts[v].max():%Y-%m-%d}" for _, v in folds
    ]  # the validation blocks

    def objective(trial: Any) -> float:
        params = {**base_params, **_suggest(trial)}
        values, trees = [], []
        for fit_rows, val_rows in folds:
            est = GradientBoostedPD(monotone=monotone, **params)
            est.fit(X[fit_rows], y[fit_rows], eval_set=(X[val_rows], y[val_rows]))
            values.append(score(y[val_rows], est.predict_pd(X[val_rows])))
            trees.append(est.best_iteration_)
        trial.set_user_attr("fold_values", [round(float(v), 6) for v in values])
        trial.set_user_attr("best_iterations", trees)
        return float(np.mean(values))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    trials = pd.DataFrame(
        [
            {
                "trial": t.number,
                f"mean_{metric}": t.value,
                **t.params,
                "fold_values": " ".join(str(v) for v in t.user_attrs.get("fold_values", [])),
                "best_iterations": " ".join(
                    str(v) for v in t.user_attrs.get("best_iterations", [])
                ),
            }
            for t in study.trials
        ]
    )
    log.info(
        "tuning: best mean %s %.4f over %d trials (%d rolling folds)",
        metric,
        study.best_value,
        n_trials,
        n_folds,
    )
    return TuningResult(
        best_params=dict(study.best_params),
        best_value=float(study.best_value),
        metric=metric,
        trials=trials,
        folds=described,
    )

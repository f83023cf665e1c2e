"""``GradientBoostedPD``: a LightGBM binary classifier with monotone constraints, early stopping,
class-imbalance weighting and a calibrator fitted on a held-out period.

scikit-learn style: hyper-parameters in ``__init__``, ``fit`` returns ``self``, fitted
attributes end with ``_``.  Deterministic for a given ``random_state`` and ``n_jobs``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from models._runtime import import_lightgbm
from models.calibration import CalibrationMethod, Calibrator, anchor_level, fit_calibrator
from models.linear import MarginBlend, fit_linear_factor, fit_linear_margin, scale_factor
from yidai.core.errors import YidaiError

log = logging.getLogger(__name__)

Features = pd.DataFrame | np.ndarray
SMALL_DATA_ROWS = 100_000


class GradientBoostedPD:
    """Calibrated gradient-boosted probability of default (or of fraud).

    ``monotone`` maps a feature name to +1 (risk never decreases as it grows) or -1 (risk
    never increases).  ``balance_classes`` sets ``scale_pos_weight = n_neg / n_pos`` (capped at
    ``max_pos_weight``); ``early_stopping_metric`` is a LightGBM metric on ``eval_set``
    (``binary_logloss``, ``auc``, ``average_precision``); the calibrator then maps the
    re-weighted margin back to probabilities.  ``early_stopping_rounds=0`` grows exactly
    ``n_estimators`` trees (a refit with the number of trees chosen out of time).
    ``n_jobs`` None picks one thread below ``SMALL_DATA_ROWS`` rows (extra threads only add
    contention there) and two above; the choice is part of the fitted state (``n_jobs_``).
    ``linear_weight`` > 0 blends the trees' margin with a linear one (``blend_``, a
    :class:`models.linear.MarginBlend`: that share of the standardised margin comes from an
    L2 logistic regression on normal scores, its coefficients signed as ``monotone``, its
    ``C`` = ``linear_c`` or chosen on ``eval_set``, one slope per feature or, with
    ``linear_knots``, one per segment of its normal score between them: an option no product
    uses by default, its gain did not hold on fresh worlds, docs/benchmarks.md, issue 18,
    eighth session); the calibrator maps the blended margin.  ``factor_weight`` > 0 (with a
    linear part) gives that share of the blend to a label-free one-factor score of the same
    normal scores (:func:`models.linear.fit_linear_factor`), fitted on the training rows;
    ``factor_scaling_rounds`` > 0 then scales each feature for it without labels
    (:func:`models.linear.scale_factor`).
    """

    def __init__(
        self,
        *,
        n_estimators: int = 600,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 50,
        max_bin: int = 63,
        feature_fraction: float = 0.9,
        bagging_fraction: float = 0.9,
        reg_lambda: float = 1.0,
        early_stopping_rounds: int = 50,
        early_stopping_metric: str = "binary_logloss",
        monotone: Mapping[str, int] | None = None,
        balance_classes: bool = True,
        max_pos_weight: float = 50.0,
        calibration: CalibrationMethod = "platt",
        linear_weight: float = 0.0,
        linear_c: float | None = None,
        linear_knots: Sequence[float] = (),
        factor_weight: float = 0.0,
        factor_scaling_rounds: int = 0,
        random_state: int = 42,
        n_jobs: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.max_bin = max_bin
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.early_stopping_metric = early_stopping_metric
        self.monotone = dict(monotone or {})
        self.balance_classes = balance_classes
        self.max_pos_weight = max_pos_weight
        self.calibration = calibration
        self.linear_weight = linear_weight
        self.linear_c = linear_c
        self.linear_knots = [float(k) for k in linear_knots]
        self.factor_weight = factor_weight
        self.factor_scaling_rounds = factor_scaling_rounds
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ parameters
    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters (what ``__init__`` received), for logging."""
        return {
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "max_bin": self.max_bin,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "reg_lambda": self.reg_lambda,
            "early_stopping_rounds": self.early_stopping_rounds,
            "early_stopping_metric": self.early_stopping_metric,
            "balance_classes": self.balance_classes,
            "max_pos_weight": self.max_pos_weight,
            "calibration": self.calibration,
            "linear_weight": self.linear_weight,
            "linear_c": self.linear_c,
            "linear_knots": self.linear_knots,
            "factor_weight": self.factor_weight,
            "factor_scaling_rounds": self.factor_scaling_rounds,
            "random_state": self.random_state,
            "n_jobs": self.n_jobs,
        }

    def lightgbm_params(self, scale_pos_weight: float, n_jobs: int) -> dict[str, Any]:
        """The LightGBM parameters used for training (deterministic by construction)."""
        return {
            "objective": "binary",
            "metric": self.early_stopping_metric,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "max_bin": self.max_bin,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1 if self.bagging_fraction < 1 else 0,
            "lambda_l2": self.reg_lambda,
            "scale_pos_weight": scale_pos_weight,
            "seed": self.random_state,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": n_jobs,
            "verbosity": -1,
        }

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | pd.Series,
        *,
        eval_set: tuple[pd.DataFrame, np.ndarray | pd.Series],
        calibration_set: tuple[pd.DataFrame, np.ndarray | pd.Series] | None = None,
        level_rate: float | None = None,
        calibration_groups: np.ndarray | pd.Series | None = None,
    ) -> GradientBoostedPD:
        """Train on ``(X, y)``, stop early on ``eval_set``, calibrate on ``calibration_set``
        (default: ``eval_set``).  All sets are DataFrames with the same columns.
        ``calibration_groups`` (one per calibration row: the borrower) lets the ``auto``
        calibration weigh a borrower's correlated rows as one draw when it chooses.

        ``level_rate`` (e.g. the long-run default rate of all labelled decisions) moves the
        calibrated PDs so that they average to it on the calibration set
        (:func:`models.calibration.anchor_level`); None keeps that set's own rate."""
        lgb = import_lightgbm()

        if not isinstance(X, pd.DataFrame):
            raise YidaiError("fit needs a DataFrame so that feature names are known")
        self.feature_names_ = [str(c) for c in X.columns]
        y_train = _check_labels(y, len(X), "training")
        X_eval = self._matrix(eval_set[0])
        y_eval = _check_labels(eval_set[1], len(X_eval), "early-stopping")
        cal_X, cal_y = calibration_set if calibration_set is not None else eval_set
        X_cal = self._matrix(cal_X)
        y_cal = _check_labels(cal_y, len(X_cal), "calibration")
        unknown = sorted(set(self.monotone) - set(self.feature_names_))
        if unknown:
            raise YidaiError(f"monotone constraints name unknown features: {unknown}")
        bad_signs = {k: v for k, v in self.monotone.items() if v not in (-1, 0, 1)}
        if bad_signs:
            raise YidaiError(f"monotone constraints must be -1, 0 or +1: {bad_signs}")
        if not 0.0 <= self.linear_weight <= 1.0:
            raise YidaiError(f"linear_weight must be within 0..1, got {self.linear_weight}")
        if not 0.0 <= self.factor_weight <= 1.0:
            raise YidaiError(f"factor_weight must be within 0..1, got {self.factor_weight}")
        if self.factor_weight > 0 and self.linear_weight == 0:
            raise YidaiError(
                "factor_weight needs a linear part (linear_weight > 0): the factor reads "
                "its normal scores"
            )

        n_pos = float(y_train.sum())
        n_neg = float(y_train.size - n_pos)
        self.scale_pos_weight_ = (
            min(n_neg / n_pos, self.max_pos_weight) if self.balance_classes else 1.0
        )
        self.monotone_constraints_ = [int(self.monotone.get(f, 0)) for f in self.feature_names_]
        self.n_jobs_ = self.n_jobs or (1 if y_train.size < SMALL_DATA_ROWS else 2)
        params = self.lightgbm_params(self.scale_pos_weight_, self.n_jobs_)
        if any(self.monotone_constraints_):
            params["monotone_constraints"] = self.monotone_constraints_
            params["monotone_constraints_method"] = "intermediate"
        train_data = lgb.Dataset(
            self._matrix(X), label=y_train, feature_name=self.feature_names_, free_raw_data=True
        )
        # Log-loss early stopping uses the training weights (unweighted, it would stop at once
        # because the weights shift every probability up).  Ranking metrics (auc,
        # average_precision) ignore the base rate, so they also suit a training window whose
        # negatives were down-sampled.
        weight = None
        if self.early_stopping_metric == "binary_logloss":
            weight = np.where(y_eval == 1, self.scale_pos_weight_, 1.0)
        valid_data = lgb.Dataset(X_eval, label=y_eval, weight=weight, reference=train_data)
        evals: dict[str, Any] = {}
        callbacks: list[Any] = [lgb.record_evaluation(evals)]
        if self.early_stopping_rounds > 0:
            callbacks.insert(0, lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        self.booster_ = lgb.train(
            params,
            train_data,
            num_boost_round=self.n_estimators,
            valid_sets=[valid_data],
            valid_names=["eval"],
            callbacks=callbacks,
        )
        stopped_at = self.booster_.best_iteration if self.early_stopping_rounds > 0 else 0
        self.best_iteration_ = int(stopped_at or self.n_estimators)
        self.booster_ = _truncate(self.booster_, self.best_iteration_)
        self.blend_: MarginBlend | None = None
        if self.linear_weight > 0:
            X_train = self._matrix(X)
            linear = fit_linear_margin(
                X_train,
                y_train,
                signs=self.monotone_constraints_,
                eval_set=None if self.linear_c is not None else (X_eval, y_eval),
                C=self.linear_c,
                knots=self.linear_knots,
            )
            factor = None
            if self.factor_weight > 0:
                factor = scale_factor(
                    X_train,
                    linear.scores,
                    fit_linear_factor(linear.scores.transform(X_train), linear.slopes),
                    self.factor_scaling_rounds,
                )
            self.blend_ = MarginBlend.standardised_on(
                linear,
                self.linear_weight,
                self._trees_margin(X_cal),
                X_cal,
                factor=factor,
                factor_weight=self.factor_weight,
            )
        cal_margin = self.decision_function(X_cal)
        self.calibrator_: Calibrator = fit_calibrator(
            self.calibration,
            cal_margin,
            y_cal,
            None if calibration_groups is None else np.asarray(calibration_groups),
        )
        if level_rate is not None:
            self.calibrator_ = anchor_level(self.calibrator_, cal_margin, level_rate)
        self.level_rate_ = level_rate
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = len(self.feature_names_)
        log.info(
            "trained %d trees on %d rows x %d features (scale_pos_weight=%.2f)",
            self.best_iteration_,
            y_train.size,
            self.n_features_in_,
            self.scale_pos_weight_,
        )
        return self

    # ------------------------------------------------------------------ predict
    def _matrix(self, X: Features) -> np.ndarray:
        """``X`` as a float64 matrix in training column order; names are checked if given."""
        if isinstance(X, pd.DataFrame):
            names = getattr(self, "feature_names_", None)
            if names is not None:
                missing = [c for c in names if c not in X.columns]
                if missing:
                    raise YidaiError(f"input lacks the model's features: {missing}")
                return X[names].to_numpy(dtype=np.float64, na_value=np.nan)
            return X.to_numpy(dtype=np.float64, na_value=np.nan)
        matrix = np.asarray(X, dtype=np.float64)
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
        expected = getattr(self, "n_features_in_", matrix.shape[1])
        if matrix.shape[1] != expected:
            raise YidaiError(f"input has {matrix.shape[1]} columns, the model needs {expected}")
        return matrix

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise YidaiError("the model is not fitted yet; call fit() first")

    def _trees_margin(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster_.predict(matrix, raw_score=True))

    def decision_function(self, X: Features) -> np.ndarray:
        """Raw margin: the trees' log-odds under the training weights, or with a linear part
        (``blend_``) the blended standardised margin."""
        self._check_fitted()
        matrix = self._matrix(X)
        trees = self._trees_margin(matrix)
        return trees if self.blend_ is None else self.blend_.combine(trees, matrix)

    def predict_proba(self, X: Features) -> np.ndarray:
        """Calibrated probabilities, shape ``(n, 2)``: columns P(good), P(bad)."""
        p = self.calibrator_.predict(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict_pd(self, X: Features) -> np.ndarray:
        """Calibrated probability of the positive class (default or fraud), shape ``(n,)``."""
        return self.predict_proba(X)[:, 1]

    def contributions(self, X: Features) -> np.ndarray:
        """Per-feature contributions to the margin (TreeSHAP, plus the linear part's with a
        blend), shape ``(n, n_features)``."""
        self._check_fitted()
        matrix = self._matrix(X)
        contrib = np.asarray(self.booster_.predict(matrix, pred_contrib=True))[:, :-1]
        return contrib if self.blend_ is None else self.blend_.contributions(contrib, matrix)

    def feature_importance(self) -> pd.Series:
        """Total gain per feature, highest first."""
        self._check_fitted()
        gains = self.booster_.feature_importance(importance_type="gain")
        return pd.Series(gains, index=self.feature_names_).sort_values(ascending=False)


def _check_labels(y: np.ndarray | pd.Series, n_rows: int, what: str) -> np.ndarray:
    labels = np.asarray(y, dtype=np.float64).ravel()
    if labels.size == 0:
        raise YidaiError(f"the {what} set is empty")
    if labels.size != n_rows:
        raise YidaiError(f"the {what} set has {n_rows} rows but {labels.size} labels")
    if np.isnan(labels).any() or not np.isin(labels, (0.0, 1.0)).all():
        raise YidaiError(f"the {what} labels must be 0 or 1 without missing values")
    if labels.min() == labels.max():
        raise YidaiError(
            f"the {what} set has a single class ({int(labels[0])}: {labels.size} rows); "
            "a model needs both defaults/frauds and non-defaults"
        )
    return labels


def _truncate(booster: Any, n_trees: int) -> Any:
    """A booster holding only the first ``n_trees`` trees (so saved models need no
    ``num_iteration`` argument at prediction time)."""
    lgb = import_lightgbm()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=n_trees))

"""One training framework for the four models: data from the feature store, out-of-time split,
LightGBM fit with calibration, evaluation against the simulator's oracle, MLflow run,
registration and the promotion gate.

``train_model(name)`` is the entry point of ``yidai train`` and of the weekly DAG;
``fit_and_evaluate`` is the data-source-free core (tested on synthetic frames).
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from features import build_training_set, get_feature_set
from features.definitions import FEATURE_SETS
from features.training import (
    complete_history_from,
    credit_training_frame,
    default_as_of,
    fraud_label_delay,
    fraud_training_frame,
)
from models import metrics as m
from models.calibration import CalibrationMethod
from models.estimator import GradientBoostedPD
from models.evaluation import Evaluation, evaluate, write_report
from models.registry import (
    CHAMPION,
    ChampionScore,
    GateConfig,
    GateDecision,
    ModelPackage,
    load_model,
    log_and_register,
    promotion_decision,
    tracking_client,
    version_by_alias,
)
from models.scorecard import Scorecard
from models.tuning import TuningResult, tune
from yidai.core import catalogue
from yidai.core.errors import YidaiError
from yidai.core.settings import Settings, get_settings
from yidai.core.warehouse import connect_tables

log = logging.getLogger(__name__)

Kind = Literal["credit", "fraud"]


@dataclass(frozen=True)
class ModelSpec:
    """What distinguishes one of the four models."""

    name: str
    kind: Kind
    feature_set: str
    product: str | None
    description: str
    #: ``auto``: Platt or isotonic, each fitted on the earlier half of the (time-ordered)
    #: calibration window and scored on its later half; isotonic only when it wins by more
    #: than one standard error, a borrower's rows counted as one draw
    #: (:func:`models.calibration.choose_calibration`).
    calibration: CalibrationMethod = "auto"
    #: The level of the calibrated PDs: ``window``, the calibration window's own realised rate;
    #: ``long_run``, the default rate of all labelled decisions before the test window
    #: (:func:`models.calibration.anchor_level`), for the line products, whose two-month window
    #: holds about fifty defaulting borrowers with correlated reviews (its realised rate was
    #: 0.67-1.09x the truth's on the benchmark worlds, and the calibrator copied it; personal's
    #: ~250 independent borrowers follow its book's trend better: docs/benchmarks.md, issue 18,
    #: sixth session).
    calibration_level: Literal["window", "long_run"] = "window"
    #: The share of the standardised margin from the linear part (``models.linear``; 0: trees
    #: only): :data:`LINEAR_WEIGHTS`.
    linear_weight: float = 0.0
    #: The share of the blend from a label-free one-factor score of the features
    #: (``models.linear.fit_linear_factor``; 0: none): :data:`FACTOR_WEIGHTS`.
    factor_weight: float = 0.0
    #: Rounds of the factor's label-free optimal scaling (``models.linear.scale_factor``):
    #: :data:`FACTOR_SCALING_ROUNDS`.
    factor_scaling_rounds: int = 0

    @property
    def early_stopping_metric(self) -> str:
        """Fraud trains on down-sampled negatives: stop on a base-rate-free ranking metric."""
        return "binary_logloss" if self.kind == "credit" else "average_precision"

    @property
    def primary_metric(self) -> str:
        return "oot_auc" if self.kind == "credit" else "oot_average_precision"

    def primary_value(self, y: np.ndarray, p: np.ndarray) -> float:
        return m.auc(y, p) if self.kind == "credit" else m.average_precision(y, p)


#: The linear part's share of each credit model's margin, by product (fraud: none).  On the
#: saved training sets of five benchmark worlds (docs/benchmarks.md, issue 18, seventh
#: session) the blend's test gap to the oracle was lowest at a half for personal (trees
#: and linear part each carry what the other misses) and at 0.85-1 for the lines, whose
#: few hundred defaulting borrowers let the trees over-fit many noisy traces of one state.
LINEAR_WEIGHTS: dict[str, float] = {"personal": 0.5, "merchant": 0.85, "sme": 0.85}

#: The label-free factor's share of each credit model's blend, by product.  On the saved
#: training sets of ten benchmark worlds (docs/benchmarks.md, issue 18, fourteenth session)
#: a half ranked the lines closer to the truth on both the validation and the test windows
#: (expected gap merchant -0.0017, SME -0.0026); personal credit, whose labels are many and
#: independent, gained nothing from it.
FACTOR_WEIGHTS: dict[str, float] = {"personal": 0.0, "merchant": 0.5, "sme": 0.5}

#: Rounds of the factor's label-free optimal scaling, by product.  On the saved training
#: sets (docs/benchmarks.md, issue 18, fifteenth session) two rounds ranked the merchants
#: closer to the truth; the SME's blend did not move (+-0.0001 in each of six worlds).
FACTOR_SCALING_ROUNDS: dict[str, int] = {"personal": 0, "merchant": 2, "sme": 0}

#: What each model of the catalogue predicts (a description per ``catalogue.MODEL_NAMES``).
MODEL_DESCRIPTIONS: dict[str, str] = {
    "personal_pd": "PD of personal consumer credit (逸贷) on real spending.",
    "merchant_pd": "PD of small-merchant revolving credit on POS turnover.",
    "sme_pd": "PD of SME revolving online loans (网贷通).",
    "payment_fraud": "Fraud probability of POS card transactions and online payments.",
}
#: Names, kinds, products and the feature set each model trains on come from
#: ``yidai.core.catalogue`` (the one place that moves a model to a new feature-set version;
#: the policies name the same set, tested).  A fraud spec has no credit product.
MODEL_SPECS: dict[str, ModelSpec] = {
    c.name: ModelSpec(
        c.name,
        c.kind,
        c.feature_set,
        c.product if c.kind == "credit" else None,
        MODEL_DESCRIPTIONS[c.name],
        calibration_level="long_run" if c.product in catalogue.LINE_PRODUCTS else "window",
        linear_weight=LINEAR_WEIGHTS[c.product] if c.kind == "credit" else 0.0,
        factor_weight=FACTOR_WEIGHTS[c.product] if c.kind == "credit" else 0.0,
        factor_scaling_rounds=FACTOR_SCALING_ROUNDS[c.product] if c.kind == "credit" else 0,
    )
    for c in catalogue.MODELS
}


def get_spec(name: str) -> ModelSpec:
    """The spec of a model; a clear error listing the known models otherwise."""
    if name not in MODEL_SPECS:
        raise YidaiError(f"unknown model {name!r}; known models: {', '.join(MODEL_SPECS)}")
    return MODEL_SPECS[name]


@dataclass(frozen=True)
class SplitConfig:
    """Out-of-time windows, counted back from the last decision day of the training set:
    ``[train] [calibration] [gap] [test]``.  The gap (fraud: the label delay) keeps the test
    period as far from training as deployment will be.  ``train_days`` None trains on all the
    history before the calibration window; a number reproduces a fixed protocol (e.g. a
    training week, a 7-day delay, a test week), the calibration window then being the last
    ``calibration_days`` of those ``train_days``."""

    test_days: int = 61
    calibration_days: int = 30
    gap_days: int = 0
    train_days: int | None = None

    @classmethod
    def for_kind(
        cls,
        kind: Kind,
        settings: Settings,
        *,
        label_delay_days: int | None = None,
        train_days: int | None = None,
        test_days: int | None = None,
    ) -> SplitConfig:
        """Fraud: a month each, split by the label delay.  Credit: the last two matured
        months for the test, the two before them for calibration and early stopping (with
        one month there, the demo's calibration window held only 50-75 defaults and the
        early-stopping point and the Platt fit were noisy).  Explicit windows (``yidai train
        --label-delay-days/--train-days/--test-days``) replace the defaults; with
        ``train_days``, its last ``max(1, train_days // 3)`` days (at most the default) stop
        the boosting and fit the calibrator."""
        if kind == "fraud":
            delay = (
                settings.fraud_label_delay_days if label_delay_days is None else label_delay_days
            )
            if delay is None:
                raise YidaiError(
                    "the fraud label delay is measured on the data: build the split with "
                    "models.training.training_split (or pass label_delay_days)"
                )
            default = cls(test_days=30, calibration_days=30, gap_days=delay)
        else:
            default = cls(test_days=61, calibration_days=61)
        calibration = default.calibration_days
        if train_days is not None:
            if train_days < 2:
                raise YidaiError(
                    f"--train-days must be at least 2 (trees + calibration), got {train_days}"
                )
            calibration = min(calibration, max(1, train_days // 3))
            train_days -= calibration
        if test_days is not None and test_days < 1:
            raise YidaiError(f"--test-days must be at least 1, got {test_days}")
        return cls(
            test_days=default.test_days if test_days is None else test_days,
            calibration_days=calibration,
            gap_days=default.gap_days,
            train_days=train_days,
        )


def training_split(
    spec: ModelSpec,
    settings: Settings,
    as_of: dt.date | None,
    *,
    label_delay_days: int | None = None,
    train_days: int | None = None,
    test_days: int | None = None,
) -> SplitConfig:
    """:meth:`SplitConfig.for_kind`, with the fraud label delay measured on the warehouse
    (``features.training.fraud_label_delay``) when neither the argument nor the settings
    set it."""
    delay = label_delay_days
    if spec.kind == "fraud" and delay is None:
        con = connect_tables(settings=settings, read_only=True)  # the engine's tables
        try:
            delay = fraud_label_delay(con, as_of or default_as_of(con), settings)
        finally:
            con.close()
    return SplitConfig.for_kind(
        spec.kind, settings, label_delay_days=delay, train_days=train_days, test_days=test_days
    )


@dataclass
class TrainingData:
    """A point-in-time training set: one row per decision.

    ``frame`` has ``id_column``, ``ts`` (decision time), ``label`` (0/1) and the features;
    optionally ``true_pd`` (simulator oracle, credit), ``true_fraud`` (simulator truth,
    fraud), and for fraud ``card`` and ``amount``.
    """

    frame: pd.DataFrame
    feature_names: list[str]
    feature_set: str
    feature_set_version: str
    monotone: dict[str, int]
    reason_groups: dict[str, str]
    id_column: str = "id"
    #: Per feature, the first decision day that sees its window complete (``features.
    #: training.complete_history_from``; empty: unknown); the gate's drift of the feature is
    #: measured from it (:func:`drift_reference`).
    complete_from: dict[str, pd.Timestamp] = field(default_factory=dict)

    def check(self) -> None:
        """Refuse an empty, single-class or incomplete training set with a clear error."""
        if self.frame.empty:
            raise YidaiError(
                f"training set of {self.feature_set} is empty; are there matured, labelled "
                "decisions in the warehouse (simulate, ingest and build features first)?"
            )
        required = [self.id_column, "ts", "label", *self.feature_names]
        missing = [c for c in required if c not in self.frame.columns]
        if missing:
            raise YidaiError(f"training set of {self.feature_set} lacks columns: {missing}")
        labels = self.frame["label"]
        if labels.isna().any() or not labels.isin([0, 1]).all():
            raise YidaiError(f"training set of {self.feature_set}: labels must be 0/1")
        if labels.nunique() < 2:
            raise YidaiError(
                f"training set of {self.feature_set} has a single class "
                f"({int(labels.iloc[0])} for all {len(labels)} rows)"
            )


@dataclass
class Split:
    train: pd.DataFrame
    calibration: pd.DataFrame
    test: pd.DataFrame
    windows: dict[str, str]


#: Fewer positives than this in the test window make its AUC too noisy to compare models
#: within a couple of points (standard error about 0.03 at 50 positives): a warning.
MIN_TEST_POSITIVES = 50


def split_out_of_time(frame: pd.DataFrame, config: SplitConfig) -> Split:
    """Cut ``frame`` by decision time into train / calibration / (gap) / test windows."""
    ts = pd.to_datetime(frame["ts"])
    last_day = ts.max().normalize()
    test_start = last_day - pd.Timedelta(days=config.test_days - 1)
    cal_end = test_start - pd.Timedelta(days=config.gap_days)
    cal_start = cal_end - pd.Timedelta(days=config.calibration_days)
    train_start = (
        ts.min().normalize()
        if config.train_days is None
        else cal_start - pd.Timedelta(days=config.train_days)
    )
    train = frame[(ts >= train_start) & (ts < cal_start)]
    cal = frame[(ts >= cal_start) & (ts < cal_end)]
    test = frame[ts >= test_start]
    day = "%Y-%m-%d"
    windows = {
        "train": f"{max(ts.min(), train_start):{day}}..{cal_start - pd.Timedelta(days=1):{day}}",
        "calibration": f"{cal_start:{day}}..{cal_end - pd.Timedelta(days=1):{day}}",
        "test": f"{test_start:{day}}..{last_day:{day}}",
    }
    if config.gap_days:
        windows["gap_days"] = str(config.gap_days)
    for part, rows in (("train", train), ("calibration", cal), ("test", test)):
        n_pos = int(rows["label"].sum())
        if n_pos == 0 or n_pos == len(rows):
            raise YidaiError(
                f"the {part} window {windows[part]} has {len(rows)} rows and {n_pos} "
                "positives; the history is too short for an out-of-time split "
                f"({config.test_days}d test, {config.gap_days}d gap, "
                f"{config.calibration_days}d calibration, then training)"
            )
    n_test_pos = int(test["label"].sum())
    if n_test_pos < MIN_TEST_POSITIVES:
        log.warning(
            "the test window %s holds only %d positives: its AUC has a standard error of "
            "several points; simulate or train on a longer history for a precise comparison",
            windows["test"],
            n_test_pos,
        )
    return Split(train, cal, test, windows)


#: The training rows that saw a feature's window complete stand for the whole training
#: window in the gate's drift only when they are at least this many (fewer: PSI is noise).
MIN_DRIFT_REFERENCE_ROWS = 500


@dataclass(frozen=True)
class DriftReference:
    """The training rows (boolean masks) each of the gate's drift comparisons reads."""

    features: dict[str, np.ndarray]
    score: np.ndarray
    notes: list[str]


def _named(features: Sequence[str], shown: int = 3) -> str:
    more = f" and {len(features) - shown} more" if len(features) > shown else ""
    return ", ".join(features[:shown]) + more


def drift_reference(
    train: pd.DataFrame, complete_from: Mapping[str, pd.Timestamp], features: Sequence[str]
) -> DriftReference:
    """Which training rows the gate compares the test window with, feature by feature: those
    decided on a complete window of the feature (``ts >= complete_from[feature]``), so that
    a book's launch months (a 180-day utilisation over a book opened weeks earlier) do not
    read as drift and block every challenger (the monitoring's baseline likewise starts
    where the history is complete, ``yidai.jobs.monitoring.column_references``).  A feature
    keeps the whole window when all of it is complete, when fewer than
    :data:`MIN_DRIFT_REFERENCE_ROWS` rows are, or when its day is unknown.  The score reads
    every feature: its rows are those complete for the longest window that leaves that many
    (the whole window if none does).  A note names each reference that is not the whole
    window as a matter of course."""
    ts = pd.to_datetime(train["ts"])
    whole = np.ones(len(train), dtype=bool)
    masks = {f: whole for f in features}
    notes: list[str] = []
    usable: list[pd.Timestamp] = []
    for day in sorted({complete_from[f] for f in features if f in complete_from}):
        named = [f for f in features if complete_from.get(f) == day]
        complete = (ts >= day).to_numpy()
        n_complete = int(complete.sum())
        if n_complete == len(train):
            usable.append(day)
        elif n_complete < MIN_DRIFT_REFERENCE_ROWS:
            notes.append(
                f"drift of {_named(named)} against the whole training window: only "
                f"{n_complete} of its {len(train)} decisions saw their windows complete "
                f"(from {day:%Y-%m-%d})"
            )
        else:
            usable.append(day)
            masks.update(dict.fromkeys(named, complete))
            notes.append(
                f"drift of {_named(named)} against the {n_complete} training decisions that "
                f"saw their windows complete (from {day:%Y-%m-%d}; the "
                f"{len(train) - n_complete} earlier ones saw them truncated)"
            )
    score = (ts >= max(usable)).to_numpy() if usable else whole
    if not score.all():
        notes.append(
            f"score drift against the {int(score.sum())} training decisions from "
            f"{max(usable):%Y-%m-%d}, the longest complete history that leaves "
            f"{MIN_DRIFT_REFERENCE_ROWS} of them"
        )
    return DriftReference(masks, score, notes)


def downsample_negatives(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """All positives and a seeded sample of negatives, at most ``max_rows`` rows in all
    (the calibrator, fitted on the untouched calibration window, corrects the base rate)."""
    if len(frame) <= max_rows:
        return frame
    positives = frame[frame["label"] == 1]
    negatives = frame[frame["label"] == 0]
    keep = max(max_rows - len(positives), min(len(negatives), 1000))
    sampled = negatives.sample(n=min(keep, len(negatives)), random_state=seed)
    return pd.concat([positives, sampled]).sort_values("ts", kind="stable")


#: Rows below which the training set counts as small (a few thousand decisions, tens to
#: hundreds of defaults): shallow trees, slow learning, mild class weights and row/column
#: subsampling keep the variance down.
SMALL_TRAINING_SET = 50_000


#: Defaults below which a credit training set counts as small whatever its rows: a line's
#: reviews (tens a year per borrower) multiply the rows, not the defaults, and the
#: large-set values (31 leaves, learning rate 0.1) then stopped after 3-6 trees on the
#: SMEs of a 2,500-SME world (docs/benchmarks.md, Issue #18, fifth session).  At four times
#: the benchmark's book (2,400-5,400 defaults in training) they stopped after 13-42 trees,
#: and the small-set values ranked better in 8 fits of 10: personal credit by 0.0018-0.0030
#: of test AUC on both worlds, on the validation windows too (Issue #18, twelfth session).
SMALL_TRAINING_POSITIVES = 10_000


def default_hyperparameters(n_train_rows: int, n_positives: int | None = None) -> dict[str, Any]:
    """Estimator defaults by training-set size (explicit ``estimator_params`` override them):
    rows, and for credit (``n_positives`` given) also the defaults it holds.

    The small-set values were chosen on the validation window only (never the test window)
    of five simulated demo worlds: see docs/benchmarks.md, Models.
    """
    few_positives = n_positives is not None and n_positives < SMALL_TRAINING_POSITIVES
    if n_train_rows < SMALL_TRAINING_SET or few_positives:
        return {
            "num_leaves": 4,
            "min_child_samples": 20,
            "learning_rate": 0.03,
            "n_estimators": 1500,
            "early_stopping_rounds": 100,
            "max_pos_weight": 5.0,
            "bagging_fraction": 0.7,
            "feature_fraction": 0.7,
        }
    return {
        "num_leaves": 31,
        "min_child_samples": 100,
        "learning_rate": 0.1,
        "n_estimators": 500,
        "early_stopping_rounds": 30,
        "max_pos_weight": 20.0,
        "bagging_fraction": 0.7,
        "feature_fraction": 0.8,
    }


#: Fraud on top of the size defaults: no class re-weighting.  The training window already
#: keeps every fraud and a quarter of the legitimate events; weighting the frauds up again
#: lowered average precision on the rolling out-of-time folds of the training window
#: (a simulated world, v1 and v2 sets alike; then the test windows of bench_fraud.py's
#: five worlds: docs/benchmarks.md, Fraud model before and after issue 18).
FRAUD_HYPERPARAMETERS: dict[str, Any] = {"max_pos_weight": 1.0}


@dataclass
class FittedModel:
    """The output of :func:`fit_and_evaluate`, before anything is logged."""

    spec: ModelSpec
    estimator: GradientBoostedPD
    evaluation: Evaluation
    split: Split
    p_test: np.ndarray
    p_train: np.ndarray
    params: dict[str, Any]
    #: The model validated out of time; ``estimator`` is the refit on all labelled data
    #: when ``refit`` ran (else the same object).
    oot_estimator: GradientBoostedPD | None = None
    refit: Refit | None = None
    #: The hyperparameter search, when one ran (``tune_trials``).
    tuning: TuningResult | None = None

    @property
    def rows(self) -> dict[str, int]:
        rows = {
            "train": len(self.split.train),
            "calibration": len(self.split.calibration),
            "test": len(self.split.test),
        }
        if self.refit is not None:
            rows |= {f"refit_{k}": v for k, v in self.refit.rows.items()}
        return rows

    @property
    def windows(self) -> dict[str, str]:
        """The out-of-time windows, and the refit's (``refit_train``, ``refit_calibration``)."""
        extra = (
            {} if self.refit is None else {f"refit_{k}": v for k, v in self.refit.windows.items()}
        )
        return {**self.split.windows, **extra}


@dataclass(frozen=True)
class Refit:
    """The champion refit on all labelled data: its windows, rows and last decision day."""

    estimator: GradientBoostedPD
    windows: dict[str, str]
    rows: dict[str, int]
    fitted_through: str


def long_run_rate(*windows: pd.DataFrame) -> float:
    """The default rate of all these labelled decisions, ``sum(label) / rows``: the level a
    credit model's calibrated PDs are anchored on (the central tendency; see
    :func:`models.calibration.anchor_level`), before any down-sampling of negatives."""
    labels = pd.concat([w["label"] for w in windows])
    return float(labels.mean())


def borrowers(frame: pd.DataFrame) -> np.ndarray | None:
    """Each row's borrower (``entity_id``: the applicant, for fraud the payer), whose rows
    share one outcome; None for a frame without it."""
    return frame["entity_id"].to_numpy() if "entity_id" in frame.columns else None


def refit_on_all(
    data: TrainingData,
    oot: GradientBoostedPD,
    split: SplitConfig,
    *,
    seed: int,
    max_train_rows: int,
) -> Refit:
    """Refit a model validated out of time on every labelled row, for registration.

    The hyperparameters are the out-of-time model's, the number of trees its early-stopped
    ``best_iteration_`` and a linear part's ``C`` the one it chose (nothing is held out to
    stop on or choose by here).  The latest
    ``split.calibration_days`` of labelled decisions fit the calibrator (the probabilities
    then reflect the most recent base rate); the trees grow on the days before them (all the
    history, or the latest ``split.train_days`` when the protocol fixes them).
    """
    frame = data.frame
    ts = pd.to_datetime(frame["ts"])
    last_day = ts.max().normalize()
    cal_start = last_day - pd.Timedelta(days=split.calibration_days - 1)
    train_start = (
        ts.min().normalize()
        if split.train_days is None
        else cal_start - pd.Timedelta(days=split.train_days)
    )
    train = frame[(ts >= train_start) & (ts < cal_start)]
    cal = frame[ts >= cal_start].sort_values("ts", kind="stable")
    day = "%Y-%m-%d"
    windows = {
        "train": f"{max(ts.min(), train_start):{day}}..{cal_start - pd.Timedelta(days=1):{day}}",
        "calibration": f"{cal_start:{day}}..{last_day:{day}}",
    }
    for part, rows in (("train", train), ("calibration", cal)):
        n_pos = int(rows["label"].sum())
        if n_pos == 0 or n_pos == len(rows):
            raise YidaiError(
                f"the refit's {part} window {windows[part]} has {len(rows)} rows and {n_pos} "
                "positives: it cannot be refit on all data"
            )
    train = downsample_negatives(train, max_train_rows, seed)
    features = data.feature_names
    params = {
        **oot.get_params(),
        "n_estimators": oot.best_iteration_,
        "early_stopping_rounds": 0,
        "linear_c": None if oot.blend_ is None else oot.blend_.linear.C,
    }
    estimator = GradientBoostedPD(**params)
    estimator.fit(
        train[features],
        train["label"].to_numpy(),
        eval_set=(cal[features], cal["label"].to_numpy()),
        calibration_groups=borrowers(cal),
        level_rate=None if oot.level_rate_ is None else long_run_rate(frame),
    )
    return Refit(
        estimator,
        windows,
        {"train": len(train), "calibration": len(cal)},
        fitted_through=f"{last_day:{day}}",
    )


def fit_and_evaluate(
    spec: ModelSpec,
    data: TrainingData,
    *,
    split: SplitConfig,
    seed: int = 42,
    estimator_params: dict[str, Any] | None = None,
    max_train_rows: int = 2_000_000,
    refit: bool = True,
    tune_trials: int = 0,
) -> FittedModel:
    """Split out of time, fit the calibrated model, evaluate it on the test window; then
    (``refit``) refit it on all labelled data (:func:`refit_on_all`): the refit is the model
    registered, the out-of-time figures are the validated model's.  ``tune_trials`` > 0
    first searches the hyperparameters on rolling folds of the training window
    (:func:`models.tuning.tune`); explicit ``estimator_params`` still win."""
    data.check()
    parts = split_out_of_time(data.frame, split)
    train = downsample_negatives(parts.train, max_train_rows, seed)
    features = data.feature_names
    params: dict[str, Any] = {
        **default_hyperparameters(
            len(train), int(train["label"].sum()) if spec.kind == "credit" else None
        ),
        **(FRAUD_HYPERPARAMETERS if spec.kind == "fraud" else {}),
        "linear_weight": spec.linear_weight,
        "factor_weight": spec.factor_weight,
        "factor_scaling_rounds": spec.factor_scaling_rounds,
        "random_state": seed,
        "calibration": spec.calibration,
        "early_stopping_metric": spec.early_stopping_metric,
        **(estimator_params or {}),
    }
    tuning = None
    if tune_trials > 0:
        tuning = tune(
            train.sort_values("ts", kind="stable"),
            features,
            params,
            n_trials=tune_trials,
            kind=spec.kind,
            monotone=data.monotone,
            seed=seed,
        )
        params = {**params, **tuning.best_params, **(estimator_params or {})}
    estimator = GradientBoostedPD(monotone=data.monotone, **params)
    calibration = parts.calibration.sort_values("ts", kind="stable")  # time order: "auto"
    estimator.fit(
        train[features],
        train["label"].to_numpy(),
        eval_set=(calibration[features], calibration["label"].to_numpy()),
        calibration_groups=borrowers(calibration),
        level_rate=(
            long_run_rate(parts.train, parts.calibration)
            if spec.calibration_level == "long_run"
            else None
        ),
    )
    p_test = estimator.predict_pd(parts.test[features])
    p_train = estimator.predict_pd(parts.train[features])
    test = parts.test
    reference = drift_reference(parts.train, data.complete_from, features)
    evaluation = evaluate(
        kind=spec.kind,
        y_test=test["label"].to_numpy(),
        p_test=p_test,
        p_train=p_train[reference.score],
        X_train=parts.train[features],
        X_test=test[features],
        reference_rows=reference.features,
        oracle_score=test["true_pd"].to_numpy() if "true_pd" in test else None,
        fraud_context=(
            pd.DataFrame(
                {
                    "day": pd.to_datetime(test["ts"]).dt.normalize().to_numpy(),
                    "card": test["card"].to_numpy(),
                    "amount": test["amount"].to_numpy(),
                }
            )
            if spec.kind == "fraud" and {"card", "amount"} <= set(test.columns)
            else None
        ),
        true_fraud=test["true_fraud"].to_numpy() if "true_fraud" in test else None,
    )
    evaluation.notes.extend(reference.notes)
    logged_params = {
        **estimator.get_params(),
        "model": spec.name,
        "feature_set": data.feature_set,
        "feature_set_version": data.feature_set_version,
        "n_features": len(features),
        "best_iteration": estimator.best_iteration_,
        "calibration_chosen": estimator.calibrator_.to_dict()["method"],
        "linear_c_chosen": "none" if estimator.blend_ is None else estimator.blend_.linear.C,
        "calibration_level_rate": (
            "window" if estimator.level_rate_ is None else round(estimator.level_rate_, 6)
        ),
        "scale_pos_weight": round(estimator.scale_pos_weight_, 4),
        "monotone_features": ",".join(f for f, s in data.monotone.items() if s),
        "train_rows_used": len(train),
        **{f"window_{k}": v for k, v in parts.windows.items()},
    }
    if tuning is not None:
        logged_params |= {
            "tune_trials": tune_trials,
            f"tune_best_mean_{tuning.metric}": round(tuning.best_value, 6),
            "tune_folds": ",".join(tuning.folds),
        }
    refitted = (
        refit_on_all(data, estimator, split, seed=seed, max_train_rows=max_train_rows)
        if refit
        else None
    )
    if refitted is not None:
        logged_params |= {
            "refit": True,
            "refit_n_estimators": refitted.estimator.best_iteration_,
            "refit_train_rows_used": refitted.rows["train"],
            "refit_fitted_through": refitted.fitted_through,
            **{f"window_refit_{k}": v for k, v in refitted.windows.items()},
        }
    return FittedModel(
        spec,
        refitted.estimator if refitted is not None else estimator,
        evaluation,
        parts,
        p_test,
        p_train,
        logged_params,
        oot_estimator=estimator,
        refit=refitted,
        tuning=tuning,
    )


#: ``(feature_set, rows) -> rows`` with that feature set's columns for the same decisions:
#: how the gate scores a champion trained on another version of the model's feature set.
ChampionRows = Callable[[str, pd.DataFrame], pd.DataFrame]


def warehouse_rows(settings: Settings) -> ChampionRows:
    """Rebuild another feature-set version's columns for the given decisions from the
    warehouse, point in time (the rows' ``ts`` is the decision time)."""

    def build(feature_set: str, rows: pd.DataFrame) -> pd.DataFrame:

        columns = set(get_feature_set(feature_set).columns)
        spine = rows.drop(columns=[c for c in rows.columns if c in columns])
        spine = spine.rename(columns={"ts": "decision_ts"})
        con = connect_tables(settings=settings, read_only=False)  # the engine's tables
        try:
            return build_training_set(con, spine, feature_set)
        finally:
            con.close()

    return build


def score_champion(
    spec: ModelSpec,
    fitted: FittedModel,
    settings: Settings,
    champion_rows: ChampionRows | None = None,
) -> ChampionScore | None:
    """The current champion's primary metric on the new model's test window (None if there
    is no champion yet).  A champion trained on another feature-set version (before the model
    moved to a new one) is scored on its own version's features for the same decisions."""

    client = tracking_client(settings)
    current = version_by_alias(client, spec.name, CHAMPION, missing_ok=True)
    if current is None:
        return None
    version = str(current.version)
    try:
        champion = load_model(spec.name, CHAMPION, settings=settings)
    except YidaiError as exc:
        return ChampionScore(version, None, f"cannot load: {exc}")
    test = fitted.split.test
    seen_through = champion.metadata.get("fitted_through")
    test_start = pd.to_datetime(test["ts"]).min().normalize()
    if seen_through is not None and pd.Timestamp(str(seen_through)) >= test_start:
        # A refit champion has learned from (part of) this test window: scoring it there
        # would flatter it.  Its own out-of-time figure is the fair comparison.
        own = champion.metadata.get("oot_primary")
        note = (
            f"its own out-of-time {spec.primary_metric} (it was refit on data through "
            f"{seen_through}, inside this test window)"
        )
        return ChampionScore(version, None if own is None else float(own), note)
    missing = [f for f in champion.feature_names if f not in test.columns]
    if missing:
        rebuild = champion_rows or warehouse_rows(settings)
        try:
            test = rebuild(champion.feature_set, test)
        except Exception as exc:  # any failure means "not comparable"; logged, never fatal
            log.warning("champion v%s of %s not rebuilt: %s", version, spec.name, exc)
            return ChampionScore(
                version,
                None,
                f"features {missing[:5]} are not in this data and its feature set "
                f"{champion.feature_set} could not be rebuilt ({exc})",
            )
        log.info(
            "scoring champion v%s of %s on its own feature set %s",
            version,
            spec.name,
            champion.feature_set,
        )
    p = champion.predict_pd(test[champion.feature_names])
    return ChampionScore(version, spec.primary_value(test["label"].to_numpy(), p))


@dataclass
class TrainResult:
    """What ``train_model`` did: the registered version, its alias and its metrics."""

    name: str
    version: str
    alias: str
    gate_reason: str
    run_id: str
    feature_set: str
    feature_set_version: str
    metrics: dict[str, float]
    windows: dict[str, str]
    rows: dict[str, int] = field(default_factory=dict)


def train_and_register(
    spec: ModelSpec,
    data: TrainingData,
    *,
    settings: Settings | None = None,
    split: SplitConfig | None = None,
    gate: GateConfig | None = None,
    scorecard: Scorecard | None = None,
    estimator_params: dict[str, Any] | None = None,
    champion_rows: ChampionRows | None = None,
    refit: bool = True,
    tune_trials: int | None = None,
) -> TrainResult:
    """Fit, evaluate, apply the gate against the champion, log the run and register (the
    refit on all labelled data unless ``refit`` is False); ``tune_trials`` (default: the
    ``tune_trials`` setting) > 0 searches the hyperparameters first."""
    settings = settings or get_settings()
    tracking_client(settings)  # fail fast on an unreachable store, before training
    fitted = fit_and_evaluate(
        spec,
        data,
        split=split or SplitConfig.for_kind(spec.kind, settings),
        seed=settings.seed,
        estimator_params=estimator_params,
        refit=refit,
        tune_trials=settings.tune_trials if tune_trials is None else tune_trials,
    )
    return register_fitted(
        fitted, data, settings=settings, gate=gate, scorecard=scorecard, champion_rows=champion_rows
    )


def register_fitted(
    fitted: FittedModel,
    data: TrainingData,
    *,
    settings: Settings | None = None,
    gate: GateConfig | None = None,
    scorecard: Scorecard | None = None,
    champion_rows: ChampionRows | None = None,
) -> TrainResult:
    """Apply the gate against the champion to a fitted model, log the run and register
    (``champion_rows``: see :func:`score_champion`; the warehouse by default)."""
    settings = settings or get_settings()
    spec = fitted.spec
    metrics = fitted.evaluation.metrics
    champion = score_champion(spec, fitted, settings, champion_rows)
    decision: GateDecision = promotion_decision(
        metric=spec.primary_metric,
        new_value=metrics[spec.primary_metric],
        score_psi=metrics["score_psi"],
        champion=champion,
        gate=gate or GateConfig(),
        feature_psi=fitted.evaluation.feature_psi,
    )
    if champion is not None and champion.value is not None:
        metrics[f"champion_{spec.primary_metric}"] = champion.value
    scorecard = scorecard or Scorecard()
    with tempfile.TemporaryDirectory(prefix=f"yidai-{spec.name}-") as tmp:
        report = Path(tmp)
        if fitted.tuning is not None:  # the search, one row per trial, beside the report
            fitted.tuning.trials.to_csv(report / "tuning_trials.csv", index=False)
        write_report(
            report,
            name=spec.name,
            kind=spec.kind,
            evaluation=fitted.evaluation,
            y_test=fitted.split.test["label"].to_numpy(),
            p_test=fitted.p_test,
            p_train=fitted.p_train,
            importance=fitted.estimator.feature_importance(),
            scorecard=scorecard,
            card={
                "feature_set": data.feature_set,
                "feature_set_version": data.feature_set_version,
                "windows": fitted.windows,
                "rows": fitted.rows,
                "params": fitted.params,
                "gate_reason": f"{decision.alias}: {decision.reason}",
            },
        )
        package = ModelPackage(
            name=spec.name,
            estimator=fitted.estimator,
            scorecard=scorecard,
            feature_set=data.feature_set,
            feature_set_version=data.feature_set_version,
            reason_groups=data.reason_groups,
            params=fitted.params,
            metrics=metrics,
            primary_metric=spec.primary_metric,
            artifacts_dir=report,
            tags={
                "yidai.kind": spec.kind,
                # the label's horizon: 90+ DPD within this many months (credit models)
                **(
                    {"yidai.performance_months": str(settings.performance_months)}
                    if spec.kind == "credit"
                    else {}
                ),
            },
            inputs=_run_inputs(fitted, data),
            extra_metadata={
                "kind": spec.kind,
                "windows": fitted.windows,
                "oot_primary": metrics[spec.primary_metric],
                **(
                    {"fitted_through": fitted.refit.fitted_through}
                    if fitted.refit is not None
                    else {}
                ),
            },
        )
        registered = log_and_register(package, decision, settings=settings)
    log.info(
        "%s v%s (%s): %s=%.4f%s",
        spec.name,
        registered.version,
        registered.alias,
        spec.primary_metric,
        metrics[spec.primary_metric],
        f", oracle gap {metrics['oracle_gap']:.4f}" if "oracle_gap" in metrics else "",
    )
    return TrainResult(
        name=spec.name,
        version=registered.version,
        alias=registered.alias,
        gate_reason=registered.reason,
        run_id=registered.run_id,
        feature_set=data.feature_set,
        feature_set_version=data.feature_set_version,
        metrics=metrics,
        windows=fitted.windows,
        rows=fitted.rows,
    )


def _run_inputs(fitted: FittedModel, data: TrainingData) -> dict[str, pd.DataFrame]:
    """The registered model's training rows (all labelled data when refit) and the
    out-of-time evaluation rows, with the decision time, label and features."""
    columns = [c for c in ["ts", "label", *data.feature_names] if c in data.frame.columns]
    training = data.frame if fitted.refit is not None else fitted.split.train
    return {"training": training[columns], "evaluation": fitted.split.test[columns]}


# ---------------------------------------------------------------------------- data loading


def load_training_data(
    spec: ModelSpec,
    settings: Settings,
    as_of: dt.date | None,
    split: SplitConfig | None = None,
) -> TrainingData:
    """The training set of ``spec`` from the feature store (``features.training``), joined
    with the simulator's truth when it exists (oracle only; never a feature).  Fraud: labels
    count after ``split.gap_days`` (the label delay), and the legitimate events are sampled
    only before that split's calibration, gap and test windows, which stay complete."""

    if spec.feature_set not in FEATURE_SETS:
        raise YidaiError(
            f"feature set {spec.feature_set} of {spec.name} is not declared in features/"
        )
    fs = FEATURE_SETS[spec.feature_set]
    if spec.kind == "fraud":
        split = split or training_split(spec, settings, as_of)
    # The spine functions create missing tables, so they need a read-write connection
    # (training runs in the warehouse pool of the pipeline).
    con = connect_tables(settings=settings, read_only=False)
    try:
        as_of = as_of or default_as_of(con)
        if spec.kind == "credit":
            assert spec.product is not None
            frame = credit_training_frame(
                con, spec.product, spec.feature_set, as_of, settings.performance_months,
                settings.truth,
            )  # fmt: skip
        else:
            assert split is not None
            frame = fraud_training_frame(
                con, spec.feature_set, as_of, split.gap_days, settings.truth,
                complete_days=split.test_days - 1 + split.gap_days + split.calibration_days,
                seed=settings.seed,
            )  # fmt: skip
        complete_from = complete_history_from(con, fs)
    finally:
        con.close()
    missing = [c for c in fs.columns if c not in frame.columns]
    if missing:
        raise YidaiError(f"the training set of {fs.name} lacks feature columns {missing}")
    log.info(
        "%s: %d rows, %d positives as of %s", spec.name, len(frame), frame["label"].sum(), as_of
    )
    return TrainingData(
        frame=frame,
        feature_names=list(fs.columns),
        feature_set=fs.name,
        feature_set_version=fs.fingerprint,
        monotone={f.name: f.monotone for f in fs.features if f.monotone},
        reason_groups=dict(fs.reason_groups),
        id_column="id",
        complete_from=complete_from,
    )


def train_model(
    name: str,
    *,
    settings: Settings | None = None,
    as_of: dt.date | None = None,
    gate: GateConfig | None = None,
    split: SplitConfig | None = None,
    estimator_params: dict[str, Any] | None = None,
    tune_trials: int | None = None,
) -> TrainResult:
    """Train, evaluate, log and register model ``name`` (one of ``MODEL_SPECS``); ``split``
    fixes the out-of-time windows (default: :meth:`SplitConfig.for_kind`); ``tune_trials``
    (default: the ``tune_trials`` setting) > 0 searches the hyperparameters first."""
    spec = get_spec(name)
    settings = settings or get_settings()
    tracking_client(settings)  # an unreachable MLflow fails before the expensive part
    split = split or training_split(spec, settings, as_of)
    data = load_training_data(spec, settings, as_of, split)
    return train_and_register(
        spec,
        data,
        settings=settings,
        split=split,
        gate=gate,
        estimator_params=estimator_params,
        tune_trials=tune_trials,
    )

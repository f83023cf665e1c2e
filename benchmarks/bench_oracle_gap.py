"""Benchmark: how far the credit models are from the simulator's oracle, over several seeds.

    uv run python benchmarks/bench_oracle_gap.py [--seeds 42 43 44] [--preset demo]
        [--models personal_pd merchant_pd sme_pd payment_fraud] [--bootstrap 1000]
        [--work-dir DIR] [--keep] [--frames-dir DIR]
        [--n-customers N] [--n-merchants N] [--n-smes N]
        [--feature-set MODEL=SET] [--before MODEL=SET] [--variant MODEL=JSON]

For each seed: simulate the preset into a fresh YIDAI_HOME (a temporary folder unless
``--work-dir``), ingest it, build the point-in-time training sets from the warehouse, train
the models with the production defaults (``fit_and_evaluate``) and register them in that
home's MLflow.  Per credit model it prints the OOT AUC, the oracle AUC (the simulator's true
PD on the same test rows), their gap with a paired-bootstrap standard error over the test
applicants (an applicant's rows move together), the test rows and defaults, the distinct
borrowers behind those defaults (a line's reviews share one default), and the same gap on the
validation (early-stopping and calibration) window, of the model validated out of time
(not the refit, which has seen that window); for fraud the average precision
and the labelled fraud share.  Per credit model also the out-of-time calibration: the
Hosmer-Lemeshow p-value, observed/expected and the method chosen.  Then a summary across
seeds (mean and max gap per model).  Target (issue 18): every credit gap <= 0.01 on average
and on the demo world (seed 42); HL p >= 0.05 and O/E within 0.85-1.15.  The label and the
oracle share one horizon, ``YIDAI_PERFORMANCE_MONTHS`` (passed to the simulation).
``--frames-dir`` keeps each training set as Parquet for offline analysis, with a JSON of its
features, monotone signs and windows: ``bench_oracle_decomposition.py`` reads them.

A world of the demo's size holds 6-11 defaulting SMEs and 23-36 merchants per two-month
test window, too few to tell a gap of 0.01 from one of 0.05; ``--n-customers``,
``--n-merchants`` and ``--n-smes`` grow it (issue 18's fifth session used 40,000 / 4,000 /
2,500).  ``--feature-set MODEL=SET`` trains a candidate feature set instead of the
catalogue's; ``--before MODEL=SET`` also fits the model on an earlier set and
``--variant MODEL=JSON`` with other estimator parameters, on the same world, decisions and
windows (not registered), printing the paired change of the gap with its bootstrap standard
error.  Calibration is also printed per obligor (one decision per borrower: its first in
the test window), the unit whose defaults are independent.

Every gap is also printed *expected*: both AUCs judged against the oracle's probabilities
instead of the test window's draws (``simulator.signal.expected_auc``: each row is a default
with weight ``true_pd``).  The realised gap of a world of this size moves by 0.01-0.02 with
the draws alone (40-60 defaulting borrowers per test window); the expected one measures the
same ranking without them (its mean over five worlds to about 0.001), so it tells a model
change of a thousandth from noise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator import SimConfig
from yidai.core import catalogue

CREDIT_MODELS = tuple(m.name for m in catalogue.CREDIT_MODELS)
ALL_MODELS = catalogue.MODEL_NAMES


@dataclass
class CreditRow:
    seed: int
    model: str
    feature_set: str
    test_window: str
    rows: int
    defaults: int
    defaulters: int  # distinct borrowers behind the test window's defaults
    oot_auc: float
    oracle_auc: float
    gap: float
    gap_se: float
    valid_gap: float
    #: the gap judged against the oracle's probabilities, not the window's draws
    expected_gap: float
    trees: int
    seconds: float
    hl_pvalue: float = float("nan")
    observed_expected: float = float("nan")
    calibration: str = ""
    #: the same tests on the oracle's own PDs (the truth: the bar's reach at this size)
    oracle_hl_pvalue: float = float("nan")
    oracle_observed_expected: float = float("nan")
    #: the model's tests on one decision per borrower (its first in the test window)
    obligor_hl_pvalue: float = float("nan")
    obligor_observed_expected: float = float("nan")
    #: the oracle's PDs on the same one decision per borrower
    oracle_obligor_hl_pvalue: float = float("nan")
    oracle_obligor_observed_expected: float = float("nan")
    #: the same model on an earlier feature set (``--before``), on the same world and rows
    before_set: str = ""
    before_gap: float = float("nan")
    before_gap_se: float = float("nan")
    before_valid_gap: float = float("nan")
    before_expected_gap: float = float("nan")
    #: gap after minus gap before, and its paired-bootstrap standard error
    change: float = float("nan")
    change_se: float = float("nan")
    #: the same model and set with other estimator parameters (``--variant``), same rows
    variant: str = ""
    variant_gap: float = float("nan")
    variant_gap_se: float = float("nan")
    variant_valid_gap: float = float("nan")
    variant_expected_gap: float = float("nan")
    variant_hl_pvalue: float = float("nan")
    variant_observed_expected: float = float("nan")
    variant_obligor_hl_pvalue: float = float("nan")
    variant_obligor_observed_expected: float = float("nan")
    variant_change_se: float = float("nan")  # of variant gap - gap


@dataclass
class FraudRow:
    seed: int
    rows: int
    fraud_share: float
    average_precision: float
    auc: float
    seconds: float


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def bootstrap_gap_se(
    y: np.ndarray,
    p_model: np.ndarray,
    p_oracle: np.ndarray,
    n_boot: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> float:
    """Standard error of ``AUC(oracle) - AUC(model)`` by a paired bootstrap over test rows,
    or over ``groups`` (the applicants: one merchant applies about twice in a test window, and
    its rows share its state, so resampling rows alone understates the spread)."""
    from models.metrics import auc

    rng = np.random.default_rng(seed)
    if groups is None:
        groups = np.arange(len(y))
    _, codes = np.unique(groups, return_inverse=True)
    members = np.split(np.argsort(codes, kind="stable"), np.cumsum(np.bincount(codes))[:-1])
    gaps = []
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        yb = y[idx]
        if yb.min() == yb.max():
            continue
        gaps.append(auc(yb, p_oracle[idx]) - auc(yb, p_model[idx]))
    return float(np.std(gaps, ddof=1))


def bootstrap_change_se(
    y: np.ndarray,
    p_after: np.ndarray,
    p_before: np.ndarray,
    n_boot: int,
    seed: int,
    groups: np.ndarray,
) -> float:
    """Standard error of ``AUC(after) - AUC(before)`` on the same test rows (the change of
    the oracle gap, sign reversed), by a paired bootstrap over ``groups`` (applicants)."""
    return bootstrap_gap_se(y, p_before, p_after, n_boot, seed, groups)


def expected_gap(score: np.ndarray, oracle: np.ndarray) -> float:
    """The oracle's expected AUC minus the score's, both judged against the oracle's
    probabilities (``simulator.signal.expected_auc``): the gap without the labels' draw."""
    from simulator.signal import expected_auc

    return expected_auc(oracle, oracle) - expected_auc(score, oracle)


def _validation_gap(fitted: object, cal: pd.DataFrame, features: list[str]) -> float:
    """Oracle gap on the calibration window of the model validated out of time (the refit,
    ``fitted.estimator``, has seen that window and beats the oracle there in sample)."""
    from models.metrics import auc

    validated = fitted.oot_estimator or fitted.estimator  # type: ignore[attr-defined]
    y_cal = cal["label"].to_numpy(dtype=float)
    p_cal = validated.predict_pd(cal[features])
    return float(auc(y_cal, cal["true_pd"].to_numpy(dtype=float)) - auc(y_cal, p_cal))


def run_seed(
    seed: int,
    config: SimConfig,
    home: Path,
    models: list[str],
    n_boot: int,
    frames: Path | None,
    before: dict[str, str] | None = None,
    candidate: dict[str, str] | None = None,
    variant: dict[str, dict[str, object]] | None = None,
) -> tuple[list[CreditRow], list[FraudRow]]:
    """Simulate, ingest and train every model of one seed in ``home``; a credit model named
    in ``before`` is also fitted (not registered) on that earlier feature set, on the same
    decisions and windows, for a paired before/after; a model named in ``candidate`` trains
    on that feature set instead of its catalogue set; one named in ``variant`` is also fitted
    with those estimator parameters (same set and rows; not registered)."""
    import dataclasses

    os.environ["YIDAI_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from models.training import (
        fit_and_evaluate,
        get_spec,
        load_training_data,
        register_fitted,
        training_split,
    )
    from simulator import simulate
    from yidai.core.settings import get_settings, reset_settings_cache
    from yidai.ingest import ingest_landing

    reset_settings_cache()
    settings = get_settings()
    t0, c0 = time.perf_counter(), _cpu()
    summary = simulate(config, settings.landing, settings.truth)
    _say(
        f"seed {seed}: simulated {summary.total_rows:,} rows in {time.perf_counter() - t0:.1f} s"
        f" (CPU {_cpu() - c0:.1f} s)"
    )
    t0, c0 = time.perf_counter(), _cpu()
    report = ingest_landing(settings.landing, settings.warehouse)
    # The simulator plants a few corrupt files (data-quality defects): reported, not fatal.
    _say(
        f"seed {seed}: ingested in {time.perf_counter() - t0:.1f} s (CPU {_cpu() - c0:.1f} s;"
        f" {len(report.failed)} planted bad files refused)"
    )
    credit: list[CreditRow] = []
    fraud: list[FraudRow] = []
    for name in models:
        spec = get_spec(name)
        if candidate and name in candidate:
            spec = dataclasses.replace(spec, feature_set=candidate[name])
        t0, c0 = time.perf_counter(), _cpu()
        split = training_split(spec, settings, None)
        data = load_training_data(spec, settings, None, split)
        t_data = time.perf_counter() - t0
        if frames is not None:
            frames.mkdir(parents=True, exist_ok=True)
            data.frame.to_parquet(frames / f"seed{seed}_{name}.parquet", index=False)
            meta = {
                "feature_set": data.feature_set,
                "feature_names": data.feature_names,
                "monotone": data.monotone,
                "complete_from": {f: str(day) for f, day in data.complete_from.items()},
                "split": dataclasses.asdict(split),
            }
            (frames / f"seed{seed}_{name}.json").write_text(json.dumps(meta, indent=1))
        fitted = fit_and_evaluate(
            spec,
            data,
            split=split,
            seed=settings.seed,
        )
        register_fitted(fitted, data, settings=settings)
        seconds = time.perf_counter() - t0
        metrics = fitted.evaluation.metrics
        test = fitted.split.test
        y = test["label"].to_numpy(dtype=float)
        if spec.kind == "credit":
            oracle = test["true_pd"].to_numpy(dtype=float)
            valid_gap = _validation_gap(fitted, fitted.split.calibration, data.feature_names)
            row = CreditRow(
                seed=seed,
                model=name,
                feature_set=spec.feature_set,
                test_window=fitted.split.windows["test"],
                rows=len(test),
                defaults=int(y.sum()),
                defaulters=int(test.loc[y == 1, "entity_id"].nunique()),
                oot_auc=metrics["oot_auc"],
                oracle_auc=metrics["oracle_auc"],
                gap=metrics["oracle_gap"],
                gap_se=bootstrap_gap_se(
                    y, fitted.p_test, oracle, n_boot, seed, test["entity_id"].to_numpy()
                ),
                valid_gap=valid_gap,
                expected_gap=expected_gap(fitted.p_test, oracle),
                trees=fitted.estimator.best_iteration_,
                seconds=seconds,
                hl_pvalue=metrics["oot_hl_pvalue"],
                observed_expected=metrics["oot_observed_expected"],
                calibration=str(fitted.estimator.calibrator_.to_dict()["method"]),
            )
            _calibration_reach(row, test, fitted.p_test)
            if before and name in before:
                _compare_before(row, spec, before[name], settings, split, fitted, data, n_boot)
            if variant and name in variant:
                _compare_variant(row, spec, variant[name], split, fitted, data, n_boot)
            credit.append(row)
            _say(
                f"seed {seed}: {name} ({spec.feature_set}) test {row.test_window} "
                f"{row.rows:,} rows "
                f"({row.defaults} defaults, {row.defaulters} borrowers): "
                f"OOT AUC {row.oot_auc:.4f}, "
                f"oracle {row.oracle_auc:.4f}, "
                f"gap {row.gap:+.4f} (se {row.gap_se:.4f}), expected {row.expected_gap:+.4f}; "
                f"validation gap {valid_gap:+.4f}; "
                f"{row.trees} trees; calibration {row.calibration}: HL p "
                f"{row.hl_pvalue:.3f}, O/E {row.observed_expected:.3f}; "
                f"{seconds:.1f} s (data {t_data:.1f} s, "
                f"CPU {_cpu() - c0:.1f} s)"
            )
        else:
            frow = FraudRow(
                seed=seed,
                rows=len(test),
                fraud_share=float(y.mean()),
                average_precision=metrics["oot_average_precision"],
                auc=metrics["oot_auc"],
                seconds=seconds,
            )
            fraud.append(frow)
            _say(
                f"seed {seed}: payment_fraud test {fitted.split.windows['test']} {frow.rows:,} "
                f"rows: AP {frow.average_precision:.4f} vs fraud share {frow.fraud_share:.4%} "
                f"({frow.average_precision / frow.fraud_share:.0f}x), AUC {frow.auc:.4f}; "
                f"{seconds:.1f} s (data {t_data:.1f} s, CPU {_cpu() - c0:.1f} s)"
            )
    return credit, fraud


def _compare_before(
    row: CreditRow,
    spec: object,
    feature_set: str,
    settings: object,
    split: object,
    fitted: object,
    new_data: object,
    n_boot: int,
) -> None:
    """Fit the same model on ``feature_set`` (same world, decisions and windows; no refit,
    not registered) and record its gap and the paired change of the gap."""
    import dataclasses

    from models.metrics import auc
    from models.training import fit_and_evaluate, load_training_data

    t0 = time.perf_counter()
    import features

    old_spec = dataclasses.replace(spec, feature_set=feature_set)  # type: ignore[type-var]
    old_fs = features.FEATURE_SETS[feature_set]
    new_fs = features.FEATURE_SETS[new_data.feature_set]  # type: ignore[attr-defined]
    if set(old_fs.features) <= set(new_fs.features):
        # the new set keeps every earlier declaration unchanged: the same columns of the
        # same frame are the earlier set's training set (no second build)
        data = dataclasses.replace(
            new_data,  # type: ignore[type-var]
            feature_names=list(old_fs.columns),
            feature_set=old_fs.name,
            feature_set_version=old_fs.fingerprint,
            monotone={f.name: f.monotone for f in old_fs.features if f.monotone},
            reason_groups=dict(old_fs.reason_groups),
        )
    else:
        data = load_training_data(old_spec, settings, None, split)  # type: ignore[arg-type]
    old = fit_and_evaluate(old_spec, data, split=split, seed=settings.seed, refit=False)  # type: ignore[arg-type,attr-defined]
    test, new_test = old.split.test, fitted.split.test  # type: ignore[attr-defined]
    if not (test["id"].to_numpy() == new_test["id"].to_numpy()).all():
        raise RuntimeError(f"{row.model}: the {feature_set} test rows differ from the new set's")
    y = test["label"].to_numpy(dtype=float)
    oracle = test["true_pd"].to_numpy(dtype=float)
    groups = test["entity_id"].to_numpy()
    p_new = fitted.p_test  # type: ignore[attr-defined]
    row.before_set = feature_set
    row.before_gap = float(auc(y, oracle) - auc(y, old.p_test))
    row.before_gap_se = bootstrap_gap_se(y, old.p_test, oracle, n_boot, row.seed, groups)
    row.before_valid_gap = _validation_gap(old, old.split.calibration, data.feature_names)
    row.before_expected_gap = expected_gap(old.p_test, oracle)
    row.change = row.gap - row.before_gap
    row.change_se = bootstrap_change_se(y, p_new, old.p_test, n_boot, row.seed, groups)
    _say(
        f"seed {row.seed}: {row.model} before ({feature_set}): gap {row.before_gap:+.4f} "
        f"(se {row.before_gap_se:.4f}), validation gap {row.before_valid_gap:+.4f}; change of "
        f"the gap {row.change:+.4f} (paired se {row.change_se:.4f}), of the expected gap "
        f"{row.expected_gap - row.before_expected_gap:+.4f}; {time.perf_counter() - t0:.1f} s"
    )


def _compare_variant(
    row: CreditRow,
    spec: object,
    params: dict[str, object],
    split: object,
    fitted: object,
    data: object,
    n_boot: int,
) -> None:
    """Fit the same model on the same rows with ``params`` overriding the estimator defaults
    (no refit, not registered); record its gap and the paired change against the default."""
    from models.metrics import auc
    from models.training import fit_and_evaluate

    t0 = time.perf_counter()
    other = fit_and_evaluate(
        spec,  # type: ignore[arg-type]
        data,  # type: ignore[arg-type]
        split=split,  # type: ignore[arg-type]
        seed=42,
        estimator_params=dict(params),
        refit=False,
    )
    test = other.split.test
    y = test["label"].to_numpy(dtype=float)
    oracle = test["true_pd"].to_numpy(dtype=float)
    groups = test["entity_id"].to_numpy()
    metrics = other.evaluation.metrics
    row.variant = json.dumps(params, sort_keys=True)
    row.variant_gap = float(auc(y, oracle) - auc(y, other.p_test))
    row.variant_gap_se = bootstrap_gap_se(y, other.p_test, oracle, n_boot, row.seed, groups)
    row.variant_valid_gap = _validation_gap(other, other.split.calibration, data.feature_names)  # type: ignore[attr-defined]
    row.variant_expected_gap = expected_gap(other.p_test, oracle)
    row.variant_hl_pvalue = metrics["oot_hl_pvalue"]
    row.variant_observed_expected = metrics["oot_observed_expected"]
    row.variant_obligor_hl_pvalue, row.variant_obligor_observed_expected = _obligor_calibration(
        test, other.p_test
    )
    row.variant_change_se = bootstrap_change_se(
        y,
        other.p_test,
        fitted.p_test,  # type: ignore[attr-defined]
        n_boot,
        row.seed,
        groups,
    )
    _say(
        f"seed {row.seed}: {row.model} variant {row.variant}: gap {row.variant_gap:+.4f} "
        f"(se {row.variant_gap_se:.4f}), validation gap {row.variant_valid_gap:+.4f}; "
        f"{other.estimator.best_iteration_} trees; HL p {row.variant_hl_pvalue:.3f}, O/E "
        f"{row.variant_observed_expected:.3f} (per borrower "
        f"{row.variant_obligor_hl_pvalue:.3f}, {row.variant_obligor_observed_expected:.3f}); "
        "change of the gap "
        f"{row.variant_gap - row.gap:+.4f} (paired se {row.variant_change_se:.4f}), of the "
        f"expected gap {row.variant_expected_gap - row.expected_gap:+.4f}; "
        f"{time.perf_counter() - t0:.1f} s"
    )


@dataclass
class SavedFrame:
    """One training set kept by ``--frames-dir``: its world, model, rows and windows."""

    seed: int  # the world's (the file is seedN_MODEL.parquet)
    model: str
    frame: pd.DataFrame
    data: Any  # models.training.TrainingData
    split: Any  # models.training.SplitConfig

    @property
    def features(self) -> list[str]:
        return list(self.data.feature_names)


def read_frame(path: Path) -> SavedFrame:
    """A frame written by ``--frames-dir`` (``seedN_MODEL.parquet`` beside its JSON), as the
    training set and split that ``fit_and_evaluate`` takes."""
    # heavy: the models package (pandas, LightGBM) only for the readers of saved frames
    from models.training import SplitConfig, TrainingData

    seed, model = path.stem.split("_", 1)
    meta = json.loads(path.with_suffix(".json").read_text())
    frame = pd.read_parquet(path)
    data = TrainingData(
        frame=frame,
        feature_names=meta["feature_names"],
        feature_set=meta["feature_set"],
        feature_set_version="",
        monotone=meta["monotone"],
        reason_groups={},
        id_column="id",
        complete_from=_complete_from(meta["complete_from"], meta["feature_names"]),
    )
    world = int(seed.removeprefix("seed"))
    return SavedFrame(world, model, frame, data, SplitConfig(**meta["split"]))


def _complete_from(saved: dict[str, str] | str | None, features: list[str]) -> dict[str, Any]:
    """A frame's ``complete_from`` per feature; frames saved before it was one day for the
    whole set (or none) give every feature that day."""
    if isinstance(saved, dict):
        return {f: pd.Timestamp(day) for f, day in saved.items()}
    return {} if saved is None else dict.fromkeys(features, pd.Timestamp(saved))


def first_per_borrower(frame: pd.DataFrame) -> np.ndarray:
    """Row positions of each borrower's (``entity_id``) first decision in ``frame``."""
    order = np.argsort(frame["ts"].to_numpy(), kind="stable")
    return order[~pd.Series(frame["entity_id"].to_numpy()[order]).duplicated().to_numpy()]


def _calibration_reach(row: CreditRow, test: pd.DataFrame, p_test: np.ndarray) -> None:
    """The calibration tests on the oracle's PDs (rows of a line's reviews share one default,
    so a row-level Hosmer-Lemeshow test can reject even the truth), and the model's on one
    decision per borrower (its first in the test window: the obligor level of PD backtests)."""
    from models.metrics import hosmer_lemeshow, observed_to_expected

    y = test["label"].to_numpy(dtype=float)
    oracle = test["true_pd"].to_numpy(dtype=float)
    row.oracle_hl_pvalue = hosmer_lemeshow(y, oracle)[1]
    row.oracle_observed_expected = observed_to_expected(y, oracle)
    row.obligor_hl_pvalue, row.obligor_observed_expected = _obligor_calibration(test, p_test)
    row.oracle_obligor_hl_pvalue, row.oracle_obligor_observed_expected = _obligor_calibration(
        test, oracle
    )


def _obligor_calibration(test: pd.DataFrame, pd_hat: np.ndarray) -> tuple[float, float]:
    """Hosmer-Lemeshow p and observed/expected of ``pd_hat`` on one decision per borrower
    (its first in ``test``); nan when those decisions hold no default or only defaults."""
    from models.metrics import hosmer_lemeshow, observed_to_expected

    y = test["label"].to_numpy(dtype=float)
    first = first_per_borrower(test)
    if not 0 < y[first].sum() < len(first):
        return float("nan"), float("nan")
    return hosmer_lemeshow(y[first], pd_hat[first])[1], observed_to_expected(
        y[first], pd_hat[first]
    )


def _passes(hl_pvalue: float, observed_expected: float) -> bool:
    """Issue 18's calibration bar: HL p >= 0.05 and O/E within 0.85-1.15."""
    return hl_pvalue >= 0.05 and 0.85 <= observed_expected <= 1.15


def _calibrated(row: CreditRow) -> bool:
    """The bar on the out-of-time window, one decision per borrower (its first): a line's
    reviews share one default, so only borrowers are independent draws."""
    return _passes(row.obligor_hl_pvalue, row.obligor_observed_expected)


def _row_calibrated(row: CreditRow) -> bool:
    """The bar on every test row (a line's reviews counted as independent)."""
    return _passes(row.hl_pvalue, row.observed_expected)


def _oracle_calibrated(row: CreditRow) -> bool:
    """The obligor-level bar on the oracle's own PDs (its reach at this size)."""
    return _passes(row.oracle_obligor_hl_pvalue, row.oracle_obligor_observed_expected)


def _se_of_mean(values: np.ndarray) -> float:
    """The standard error of a mean over worlds (their spread; nan for one world)."""
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def _mean_and_se(values: list[float]) -> str:
    """The mean over worlds and its standard error (a paired change, one per world)."""
    change = np.array(values)
    return f"{change.mean():+.4f} (se {_se_of_mean(change):.4f})"


def print_summary(credit: list[CreditRow], fraud: list[FraudRow]) -> None:
    """Per-seed table, then the mean and max gap per model across seeds."""
    print("\nper seed:")
    print(
        f"{'seed':>5} {'model':<12} {'test rows':>9} {'defaults':>8} {'borrowers':>9} "
        f"{'OOT AUC':>8} "
        f"{'oracle':>7} {'gap':>7} {'se':>6} {'exp. gap':>8} {'valid gap':>9} {'trees':>5} "
        f"{'HL p':>6} "
        f"{'O/E':>5} {'oracle HL p':>11} {'oracle O/E':>10} {'obligor HL p':>12} "
        f"{'obligor O/E':>11} {'oracle obl. p':>13} {'oracle obl. O/E':>12} calibration"
    )
    for r in credit:
        print(
            f"{r.seed:>5} {r.model:<12} {r.rows:>9,} {r.defaults:>8} {r.defaulters:>9} "
            f"{r.oot_auc:>8.4f} "
            f"{r.oracle_auc:>7.4f} {r.gap:>+7.4f} {r.gap_se:>6.4f} {r.expected_gap:>+8.4f} "
            f"{r.valid_gap:>+9.4f} "
            f"{r.trees:>5} {r.hl_pvalue:>6.3f} {r.observed_expected:>5.2f} "
            f"{r.oracle_hl_pvalue:>11.3f} {r.oracle_observed_expected:>10.2f} "
            f"{r.obligor_hl_pvalue:>12.3f} {r.obligor_observed_expected:>11.2f} "
            f"{r.oracle_obligor_hl_pvalue:>13.3f} {r.oracle_obligor_observed_expected:>12.2f} "
            f"{r.calibration}"
        )
    for f in fraud:
        print(
            f"{f.seed:>5} {'payment_fraud':<12} {f.rows:>9,} AP {f.average_precision:.4f} vs "
            f"share {f.fraud_share:.4%} ({f.average_precision / f.fraud_share:.0f}x), "
            f"AUC {f.auc:.4f}"
        )
    print(
        "\nacross seeds (target: every mean gap <= 0.01; HL p >= 0.05 and O/E 0.85-1.15, "
        "one decision per borrower):"
    )
    for model in CREDIT_MODELS:
        rows = [r for r in credit if r.model == model]
        if not rows:
            continue
        gaps = np.array([r.gap for r in rows])
        se = np.array([r.gap_se for r in rows])
        expected = np.array([r.expected_gap for r in rows])
        print(
            f"  {model:<12} mean gap {gaps.mean():+.4f} (se of the mean "
            f"{np.sqrt((se**2).sum()) / len(se):.4f}), max {gaps.max():+.4f}, "
            f"{int((gaps <= 0.01).sum())}/{len(gaps)} seeds within 0.01; mean expected gap "
            f"{expected.mean():+.4f} (over the worlds: se {_se_of_mean(expected):.4f}); "
            f"mean validation gap {np.mean([r.valid_gap for r in rows]):+.4f}; calibration "
            f"per borrower passes {sum(_calibrated(r) for r in rows)}/{len(rows)} seeds (the "
            f"oracle's own PDs {sum(_oracle_calibrated(r) for r in rows)}/{len(rows)}; per row "
            f"{sum(_row_calibrated(r) for r in rows)}/{len(rows)}); mean test "
            f"defaulting borrowers {np.mean([r.defaulters for r in rows]):.1f}"
        )
    compared = [r for r in credit if r.before_set]
    if compared:
        print("\nbefore/after (same worlds, same test rows; change = gap after - gap before):")
        for model in CREDIT_MODELS:
            rows = [r for r in compared if r.model == model]
            if not rows:
                continue
            before = np.array([r.before_gap for r in rows])
            change = np.array([r.change for r in rows])
            b_se = np.array([r.before_gap_se for r in rows])
            c_se = np.array([r.change_se for r in rows])
            print(
                f"  {model:<12} before ({rows[0].before_set}) mean gap {before.mean():+.4f} "
                f"(se {np.sqrt((b_se**2).sum()) / len(b_se):.4f}), mean validation gap "
                f"{np.mean([r.before_valid_gap for r in rows]):+.4f}; mean change "
                f"{change.mean():+.4f} (paired se {np.sqrt((c_se**2).sum()) / len(c_se):.4f}); "
                "mean change of the expected gap "
                + _mean_and_se([r.expected_gap - r.before_expected_gap for r in rows])
            )
    varied = [r for r in credit if r.variant]
    if varied:
        print("\nvariant (same set and rows, other estimator parameters; change = variant - main):")
        for model in CREDIT_MODELS:
            rows = [r for r in varied if r.model == model]
            if not rows:
                continue
            gaps = np.array([r.variant_gap for r in rows])
            g_se = np.array([r.variant_gap_se for r in rows])
            c_se = np.array([r.variant_change_se for r in rows])
            change = gaps - np.array([r.gap for r in rows])
            passes = sum(_passes(r.variant_hl_pvalue, r.variant_observed_expected) for r in rows)
            obligor_passes = sum(
                _passes(r.variant_obligor_hl_pvalue, r.variant_obligor_observed_expected)
                for r in rows
            )
            print(
                f"  {model:<12} {rows[0].variant}: mean gap {gaps.mean():+.4f} (se "
                f"{np.sqrt((g_se**2).sum()) / len(g_se):.4f}), mean validation gap "
                f"{np.mean([r.variant_valid_gap for r in rows]):+.4f}; mean change "
                f"{change.mean():+.4f} (paired se {np.sqrt((c_se**2).sum()) / len(c_se):.4f}); "
                f"mean change of the expected gap "
                f"{_mean_and_se([r.variant_expected_gap - r.expected_gap for r in rows])}; "
                f"calibration per borrower passes {obligor_passes}/{len(rows)} (per row "
                f"{passes}/{len(rows)})"
            )
    if credit:
        all_gaps = np.array([r.gap for r in credit])
        print(f"  all credit  mean gap {all_gaps.mean():+.4f}, max {all_gaps.max():+.4f}")
    if fraud:
        ap = np.array([f.average_precision for f in fraud])
        share = np.array([f.fraud_share for f in fraud])
        print(
            f"  payment_fraud mean AP {ap.mean():.4f} vs mean fraud share {share.mean():.4%} "
            f"({(ap / share).mean():.0f}x)"
        )


def _performance_months() -> int:
    """The credit performance window of the environment (``YIDAI_PERFORMANCE_MONTHS``)."""
    from yidai.core.settings import get_settings, reset_settings_cache

    reset_settings_cache()
    return get_settings().performance_months


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--preset", default="demo", help="simulation preset (default demo)")
    parser.add_argument(
        "--models", nargs="+", default=list(ALL_MODELS), choices=ALL_MODELS, metavar="MODEL"
    )
    parser.add_argument("--start", type=date.fromisoformat, help="override the preset's start")
    parser.add_argument("--months", type=int, help="override the preset's months")
    for entity in ("customers", "merchants", "smes"):
        parser.add_argument(
            f"--n-{entity}", type=int, help=f"override the preset's number of {entity}"
        )
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--work-dir", type=Path, help="state folders (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the state folders")
    parser.add_argument("--frames-dir", type=Path, help="save the training sets as Parquet")
    parser.add_argument(
        "--feature-set",
        action="append",
        default=[],
        metavar="MODEL=FEATURE_SET",
        help="train MODEL on a candidate FEATURE_SET instead of its catalogue set",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="MODEL=JSON",
        help="also fit MODEL with these estimator parameters on the same rows (paired)",
    )
    parser.add_argument(
        "--before",
        action="append",
        default=[],
        metavar="MODEL=FEATURE_SET",
        help="also fit MODEL on an earlier FEATURE_SET on the same world (paired before/after)",
    )
    args = parser.parse_args()

    before = dict(item.split("=", 1) for item in args.before)
    candidate = dict(item.split("=", 1) for item in args.feature_set)
    variant = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.variant)}
    started, cpu0 = time.perf_counter(), _cpu()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} on {platform.node()}: {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; preset {args.preset}, "
        f"seeds {args.seeds}",
        flush=True,
    )
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="yidai-oracle-gap-"))
    credit: list[CreditRow] = []
    fraud: list[FraudRow] = []
    try:
        for seed in args.seeds:
            home = work / f"seed{seed}"
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)
            config = SimConfig.preset(
                args.preset,
                seed=seed,
                start=args.start,
                months=args.months,
                n_customers=args.n_customers,
                n_merchants=args.n_merchants,
                n_smes=args.n_smes,
                performance_months=_performance_months(),
            )
            if seed == args.seeds[0]:
                _say(f"simulation: {config}")
            c, f = run_seed(
                seed,
                config,
                home,
                args.models,
                args.bootstrap,
                args.frames_dir,
                before,
                candidate,
                variant,
            )
            credit += c
            fraud += f
            if not args.keep:
                shutil.rmtree(home, ignore_errors=True)
            _say(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if not args.keep and args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print_summary(credit, fraud)
    print(
        f"\ntotal {time.perf_counter() - started:.0f} s wall, {_cpu() - cpu0:.0f} s CPU; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        file=sys.stdout,
    )


if __name__ == "__main__":
    main()

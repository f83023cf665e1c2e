"""Benchmark: where the credit models' oracle gap comes from (issue 18), on saved frames.

    uv run python benchmarks/bench_oracle_gap.py --frames-dir DIR ...   # saves the frames
    uv run python benchmarks/bench_oracle_decomposition.py --frames-dir DIR
        [--models personal_pd merchant_pd sme_pd] [--bootstrap 300] [--weights 0.5 0.85 1]

``bench_oracle_gap.py --frames-dir`` keeps each world's point-in-time training set (one
Parquet file per seed and model, with a JSON of its features, monotone signs and windows).
This script splits each the way training does and splits the oracle gap in two:

* **ceiling**: a LightGBM regression of logit(``true_pd``) on the model's own features,
  fitted on the training window (early-stopped on the calibration window's truth).  The
  truth is a diagnostic target here, never a product's: it estimates the best ranking any
  learner could reach from these features (an estimate: a regression is itself a learner).
* **observation gap** = AUC(oracle) - AUC(ceiling): what the features do not carry (the
  latent state's noise in the behaviour, the months after the decision that the oracle
  integrates);
* **learning gap** = AUC(ceiling) - AUC(model): what a better learner on the same features
  could still win.

Learners on the same rows: ``champion`` (``models.training.fit_and_evaluate`` with the
production defaults, the model validated out of time: the trees blended with the linear
part at the product's ``LINEAR_WEIGHTS``), ``trees`` (the same with ``linear_weight`` 0),
``linear`` (the production linear part alone, ``models.linear.fit_linear_margin``: an L2
logistic regression on normal scores, signed as the monotone constraints, C chosen by the
calibration window's log loss; Platt on that window) and ``blend@w`` for each ``--weights``
(``models.linear.MarginBlend`` at weight ``w``: ``(1 - w) z(trees) + w z(linear)``, each
margin standardised on the calibration window, as the estimator blends; Platt on that
window): how the weight was chosen.
Each on the validation window (the calibration window: the GBM's early stopping and every
calibrator saw its labels, so its figures there lean optimistic) and the out-of-time test
window, with a paired bootstrap standard error over borrowers on the test window and the
observed/expected of one decision per borrower.  Means over worlds with their standard error.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from bench_oracle_gap import bootstrap_gap_se, first_per_borrower, read_frame

WINDOWS = ("validation", "test")


@dataclass
class WorldModel:
    seed: str
    model: str
    borrowers: int  # distinct borrowers behind the test window's defaults
    oracle: dict[str, float] = field(default_factory=dict)  # AUC per window
    ceiling: dict[str, float] = field(default_factory=dict)
    learners: dict[str, dict[str, float]] = field(default_factory=dict)  # AUC per window
    test_se: dict[str, float] = field(default_factory=dict)  # of each learner's test gap
    obligor_oe: dict[str, float] = field(default_factory=dict)
    #: the champion's test AUC on its calibrated PDs (an isotonic calibrator ties scores)
    champion_calibrated_test: float = float("nan")
    calibration: str = ""
    linear_weight: float = float("nan")  # the champion's (the product's LINEAR_WEIGHTS)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def ceiling_scores(
    train: pd.DataFrame, cal: pd.DataFrame, parts: dict[str, pd.DataFrame], features: list[str]
) -> dict[str, np.ndarray]:
    """Scores of a LightGBM regression of logit(true_pd) on ``features`` (train window,
    early-stopped on the calibration window's truth), for each frame of ``parts``."""
    import lightgbm as lgb

    params = {
        "objective": "regression",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_child_samples": 50,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "num_threads": 1,
        "seed": 7,
        "verbosity": -1,
    }
    fit = lgb.Dataset(train[features].to_numpy(float), _logit(train["true_pd"].to_numpy()))
    stop = lgb.Dataset(cal[features].to_numpy(float), _logit(cal["true_pd"].to_numpy()))
    booster = lgb.train(
        params, fit, 2000, valid_sets=[stop], callbacks=[lgb.early_stopping(50, verbose=False)]
    )
    return {k: booster.predict(v[features].to_numpy(float)) for k, v in parts.items()}


def decompose(path: Path, n_boot: int, weights: list[float]) -> WorldModel:
    """Oracle, ceiling and the learners on one saved frame."""
    from models.calibration import fit_calibrator
    from models.linear import MarginBlend, fit_linear_margin
    from models.metrics import auc, observed_to_expected
    from models.training import fit_and_evaluate, get_spec, split_out_of_time

    saved = read_frame(path)
    model, data, split, features = saved.model, saved.data, saved.split, saved.features
    parts = split_out_of_time(saved.frame, split)
    train, cal, test = parts.train, parts.calibration.sort_values("ts", kind="stable"), parts.test
    windows = {"validation": cal, "test": test}
    labels = {k: v["label"].to_numpy(dtype=float) for k, v in windows.items()}
    row = WorldModel(
        f"seed{saved.seed}", model, int(test.loc[labels["test"] == 1, "entity_id"].nunique())
    )
    row.oracle = {k: auc(labels[k], v["true_pd"]) for k, v in windows.items()}
    ceiling = ceiling_scores(train, cal, windows, features)
    row.ceiling = {k: auc(labels[k], ceiling[k]) for k in windows}

    spec = get_spec(model)
    fitted = fit_and_evaluate(spec, data, split=split, refit=False)
    trees_only = fit_and_evaluate(
        spec, data, split=split, refit=False, estimator_params={"linear_weight": 0.0}
    )
    row.champion_calibrated_test = auc(labels["test"], fitted.p_test)
    row.calibration = str(fitted.params["calibration_chosen"])
    row.linear_weight = spec.linear_weight
    linear = fit_linear_margin(
        train[features].to_numpy(float),
        train["label"].to_numpy(float),
        signs=[int(data.monotone.get(f, 0)) for f in features],
        eval_set=(cal[features].to_numpy(float), labels["validation"]),
    )

    def margins_of(score: object) -> dict[str, np.ndarray]:
        return {k: np.asarray(score(v[features])) for k, v in windows.items()}  # type: ignore[operator]

    trees = margins_of(trees_only.estimator.decision_function)
    cal_matrix = cal[features].to_numpy(float)

    def blended(weight: float) -> dict[str, np.ndarray]:
        """The estimator's own blend (standardised on the calibration window) at ``weight``."""
        blend = MarginBlend.standardised_on(linear, weight, trees["validation"], cal_matrix)
        return {k: blend.combine(trees[k], v[features].to_numpy(float)) for k, v in windows.items()}

    learners = {
        "champion": margins_of(fitted.estimator.decision_function),
        "trees": trees,
        "linear": margins_of(lambda x: linear.margin(x.to_numpy(float))),
    } | {f"blend@{w:g}": blended(w) for w in weights}
    first = first_per_borrower(test)
    for name, margins in learners.items():
        row.learners[name] = {k: auc(labels[k], margins[k]) for k in windows}
        if name == "champion":
            p_test = fitted.p_test
        else:
            p_test = fit_calibrator("platt", margins["validation"], labels["validation"]).predict(
                margins["test"]
            )
        row.test_se[name] = bootstrap_gap_se(
            labels["test"],
            margins["test"],
            test["true_pd"].to_numpy(),
            n_boot,
            saved.seed,
            test["entity_id"].to_numpy(),
        )
        row.obligor_oe[name] = observed_to_expected(labels["test"][first], p_test[first])
    return row


def _mean_se(values: list[float]) -> str:
    a = np.asarray(values, dtype=float)
    se = a.std(ddof=1) / np.sqrt(a.size) if a.size > 1 else float("nan")
    return f"{a.mean():+.4f} ({se:.4f})"


def summarise(rows: list[WorldModel]) -> None:
    """Per model: the mean over worlds of each gap on each window, with its standard error."""
    learners = list(rows[0].learners)
    print("\nmeans over worlds (se of the mean); gaps are AUC differences on the same rows")
    weights = {r.model: r.linear_weight for r in rows}
    print("the champions' linear weights: " + ", ".join(f"{m} {w:g}" for m, w in weights.items()))
    print(
        "| model | worlds | window | oracle gap of the ceiling (observation) | "
        + " | ".join(f"{n}: oracle gap / learning gap" for n in learners)
        + " |"
    )
    print("|---|---|---|---|" + "---|" * len(learners))
    for model in sorted({r.model for r in rows}):
        mine = [r for r in rows if r.model == model]
        for w in WINDOWS:
            observation = [r.oracle[w] - r.ceiling[w] for r in mine]
            cells = [
                _mean_se([r.oracle[w] - r.learners[n][w] for r in mine])
                + " / "
                + _mean_se([r.ceiling[w] - r.learners[n][w] for r in mine])
                for n in learners
            ]
            print(
                f"| {model} | {len(mine)} | {w} | {_mean_se(observation)} | {' | '.join(cells)} |"
            )
        tie_cost = [r.learners["champion"]["test"] - r.champion_calibrated_test for r in mine]
        print(
            f"| {model} | | champion: test AUC of its margin minus its calibrated PDs "
            f"| {_mean_se(tie_cost)} | | | |"
        )
        oe = " / ".join(f"{n} {np.mean([r.obligor_oe[n] for r in mine]):.2f}" for n in learners)
        print(f"| {model} | | O/E per borrower (test, mean) | | {oe} | | |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames-dir", type=Path, required=True, help="bench_oracle_gap's frames")
    parser.add_argument("--models", nargs="+", default=["personal_pd", "merchant_pd", "sme_pd"])
    parser.add_argument("--bootstrap", type=int, default=300, help="bootstrap resamples")
    parser.add_argument(
        "--weights",
        nargs="+",
        type=float,
        default=[0.5, 0.85, 1.0],
        help="linear weights of the blends to compare",
    )
    args = parser.parse_args(argv)
    paths = sorted(
        p
        for p in args.frames_dir.glob("seed*_*.parquet")
        if p.stem.split("_", 1)[1] in args.models and p.with_suffix(".json").exists()
    )
    if not paths:
        parser.error(f"no frames with their JSON for {args.models} in {args.frames_dir}")
    print(
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} on {platform.node()}: "
        f"{len(paths)} frames from {args.frames_dir}",
        flush=True,
    )
    rows = []
    for path in paths:
        t0 = time.perf_counter()
        row = decompose(path, args.bootstrap, args.weights)
        rows.append(row)
        learners = list(row.learners)
        learned = "; ".join(
            f"{n} {row.learners[n]['validation']:.4f} / {row.learners[n]['test']:.4f} "
            f"(test gap {row.oracle['test'] - row.learners[n]['test']:+.4f}, se "
            f"{row.test_se[n]:.4f}, O/E {row.obligor_oe[n]:.2f})"
            for n in learners
        )
        print(
            f"{row.seed} {row.model}: AUC validation / test: oracle {row.oracle['validation']:.4f}"
            f" / {row.oracle['test']:.4f}; ceiling {row.ceiling['validation']:.4f} / "
            f"{row.ceiling['test']:.4f}; {learned}; champion's calibrated PDs ({row.calibration})"
            f" test {row.champion_calibrated_test:.4f}; {row.borrowers} defaulting borrowers; "
            f"{time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    summarise(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: train one calibrated LightGBM PD model on synthetic data (default 1M rows x 100
features, known logistic truth), then evaluate it out of time.

    uv run python benchmarks/bench_training.py [--rows N] [--features F] [--threads T]

Prints the time of each stage, the trees kept by early stopping, the OOT AUC against the
oracle AUC of the true PD, and the peak memory.  Target: <= 120 s on 2 cores for 1M x 100.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import pandas as pd


def synthetic_credit(rows: int, features: int, seed: int) -> pd.DataFrame:
    """Decisions spread over 12 months; a sparse logistic truth over monotone features, plus
    noise features, some missing values; label drawn from the true PD."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    n_signal = min(20, features)
    coef = np.zeros(features)
    coef[:n_signal] = rng.choice([-1, 1], n_signal) * rng.uniform(0.1, 0.6, n_signal)
    logit = -3.2 + X @ coef + 0.3 * np.tanh(X[:, 0] * X[:, 1])
    true_pd = 1 / (1 + np.exp(-logit))
    X[rng.uniform(size=X.shape) < 0.02] = np.nan
    frame = pd.DataFrame(X, columns=[f"customer_f{i:03d}_90d" for i in range(features)])
    frame["ts"] = pd.Timestamp("2025-01-01") + pd.to_timedelta(
        np.sort(rng.uniform(0, 365, rows)), unit="D"
    )
    frame["id"] = np.arange(rows)
    frame["true_pd"] = true_pd
    frame["label"] = (rng.uniform(size=rows) < true_pd).astype(int)
    frame.attrs["monotone"] = {
        f"customer_f{i:03d}_90d": int(np.sign(coef[i])) for i in range(n_signal)
    }
    return frame


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows (default 1M)")
    parser.add_argument("--features", type=int, default=100, help="features (default 100)")
    parser.add_argument("--threads", type=int, default=2, help="LightGBM threads (default 2)")
    parser.add_argument("--rounds", type=int, default=None, help="max boosting rounds")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    from models.training import ModelSpec, SplitConfig, TrainingData, fit_and_evaluate

    t0 = time.perf_counter()
    frame = synthetic_credit(args.rows, args.features, args.seed)
    t_data = time.perf_counter() - t0
    names = [c for c in frame.columns if c.startswith("customer_")]
    data = TrainingData(
        frame=frame,
        feature_names=names,
        feature_set="bench_v1",
        feature_set_version="bench",
        monotone=frame.attrs["monotone"],
        reason_groups={},
    )
    spec = ModelSpec("bench_pd", "credit", "bench_v1", None, "benchmark")
    t1 = time.perf_counter()
    cpu1 = _cpu_seconds()
    fitted = fit_and_evaluate(
        spec,
        data,
        split=SplitConfig(test_days=61, calibration_days=30),
        seed=args.seed,
        estimator_params={
            "n_jobs": args.threads,
            **({"n_estimators": args.rounds} if args.rounds else {}),
        },
        refit=False,  # the fit itself: one model, as in the earlier figures
    )
    t_train = time.perf_counter() - t1
    cpu_train = _cpu_seconds() - cpu1
    m = fitted.evaluation.metrics
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows={args.rows:,} features={args.features} threads={args.threads}")
    print(f"data generation      {t_data:8.1f} s")
    print(f"split+fit+calibrate+evaluate {t_train:8.1f} s wall, {cpu_train:.1f} s CPU "
          f"(target <= 120 s)")  # fmt: skip
    print(f"load average at end {os.getloadavg()[0]:.1f} (2 cores; > 2 means shared CPU)")
    print(f"trees kept           {fitted.estimator.best_iteration_}")
    print(f"train/cal/test rows  {fitted.rows}")
    print(
        f"OOT AUC {m['oot_auc']:.4f}  oracle AUC {m['oracle_auc']:.4f}  gap {m['oracle_gap']:.4f}"
    )
    print(f"peak RSS             {peak_mb:8.0f} MB")


if __name__ == "__main__":
    main()

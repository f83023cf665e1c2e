"""Benchmark: the payment fraud model before and after issue 18, over several simulated worlds.

    uv run python benchmarks/bench_fraud.py [--seeds 42 43 44 45 46] [--customers 3000]
        [--months 8] [--fraud-intensity 1.0] [--tune-trials 6] [--work-dir DIR]

For each seed: simulate a world (``tiny`` preset scaled to ``--customers``, ``--months``
long) into a fresh YIDAI_HOME, ingest it, then train the fraud model out of time exactly as
``yidai train`` does (the label delay measured on the data, the production split and
defaults, no refit: the figures are the out-of-time model's) on

* **before**: ``payment_fraud_v1`` with the hyperparameters of before issue 18 (the size
  defaults, frauds weighted up to ``max_pos_weight``);
* **after**: ``payment_fraud_v2`` (the active set), today's defaults (fraud: no class
  re-weighting, ``models.training.FRAUD_HYPERPARAMETERS``);
* **after, tuned**: ``payment_fraud_v2`` with ``--tune-trials`` Optuna trials on rolling
  out-of-time folds of the training window (``models.tuning``).

It prints the test window's AUC, average precision and the standard card precision top-100
(``models.metrics.card_precision_top_k``, cards already detected removed, divided by 100,
averaged over days), per world and as mean and standard error over the worlds.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANTS = ("before (v1)", "after (v2)", "after (v2, tuned)")


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_world(
    seed: int, customers: int, months: int, fraud_intensity: float, tune_trials: int, home: Path
) -> dict:
    """Simulate and ingest one world; the three variants' out-of-time figures."""
    os.environ["YIDAI_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from models.metrics import auc, average_precision, card_precision_top_k
    from models.training import (
        default_hyperparameters,
        fit_and_evaluate,
        get_spec,
        load_training_data,
        split_out_of_time,
        training_split,
    )
    from simulator import SimConfig, simulate
    from yidai.core.settings import get_settings, reset_settings_cache
    from yidai.ingest import ingest_landing

    reset_settings_cache()
    settings = get_settings()
    config = SimConfig.preset(
        "tiny",
        seed=seed,
        n_customers=customers,
        n_merchants=max(80, customers // 10),
        months=months,
        fraud_intensity=fraud_intensity,
    )
    t0 = time.perf_counter()
    simulate(config, settings.landing, settings.truth)
    ingest_landing(settings.landing, settings.warehouse)
    _say(f"seed {seed}: simulated and ingested in {time.perf_counter() - t0:.0f} s")
    spec_v2 = get_spec("payment_fraud")
    split = training_split(spec_v2, settings, None)
    out: dict[str, dict[str, float]] = {}
    frames = {}
    for variant in VARIANTS:
        fs = "payment_fraud_v1" if "v1" in variant else "payment_fraud_v2"
        spec = dataclasses.replace(spec_v2, feature_set=fs)
        t0 = time.perf_counter()
        if fs not in frames:
            frames[fs] = load_training_data(spec, settings, None, split)
        data = frames[fs]
        before = {}
        if "v1" in variant:  # the class weights of before issue 18
            n_train = len(split_out_of_time(data.frame, split).train)
            before = {"max_pos_weight": default_hyperparameters(n_train)["max_pos_weight"]}
        fitted = fit_and_evaluate(
            spec,
            data,
            split=split,
            seed=settings.seed,
            refit=False,
            estimator_params=before,
            tune_trials=tune_trials if "tuned" in variant else 0,
        )
        test = fitted.split.test
        y = test["label"].to_numpy()
        p = fitted.p_test
        day = test["ts"].dt.normalize().to_numpy()
        out[variant] = {
            "auc": auc(y, p),
            "ap": average_precision(y, p),
            "cp100": card_precision_top_k(day, test["card"].to_numpy(), y, p, k=100),
            # what a perfect ranking would score: few fraud cards a day cap CP@100
            "cp100_ceiling": card_precision_top_k(
                day, test["card"].to_numpy(), y, y.astype(float), k=100
            ),
            "test_rows": float(len(test)),
            "test_frauds": float(y.sum()),
            "seconds": time.perf_counter() - t0,
        }
        r = out[variant]
        _say(
            f"seed {seed}: {variant:18s} AUC {r['auc']:.4f}  AP {r['ap']:.4f}  "
            f"CP@100 {r['cp100']:.4f} of {r['cp100_ceiling']:.4f} at best  "
            f"(test {int(r['test_rows']):,} rows, "
            f"{int(r['test_frauds'])} frauds, window {fitted.split.windows['test']}; "
            f"{r['seconds']:.0f} s)"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44, 45, 46])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--months", type=int, default=8)
    parser.add_argument("--fraud-intensity", type=float, default=1.0)
    parser.add_argument("--tune-trials", type=int, default=6)
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    _say(
        f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; worlds of {args.customers} customers, {args.months} months, "
        f"fraud intensity {args.fraud_intensity}, {args.tune_trials} tuning trials"
    )
    results = []
    for seed in args.seeds:
        home = Path(tempfile.mkdtemp(prefix=f"bench-fraud-{seed}-", dir=args.work_dir))
        try:
            results.append(
                run_world(
                    seed,
                    args.customers,
                    args.months,
                    args.fraud_intensity,
                    args.tune_trials,
                    home,
                )
            )
        finally:
            shutil.rmtree(home, ignore_errors=True)
    n = len(results)
    print(f"\nmean (standard error) over {n} worlds")
    print(f"{'variant':20s} {'AUC':>18s} {'AP':>18s} {'CP@100':>18s}")
    for variant in VARIANTS:
        cells = []
        for key in ("auc", "ap", "cp100"):
            values = np.array([r[variant][key] for r in results])
            se = values.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
            cells.append(f"{values.mean():.4f} ({se:.4f})")
        print(f"{variant:20s} " + " ".join(f"{c:>18s}" for c in cells))
    for variant in VARIANTS[1:]:
        for key in ("ap", "cp100"):
            diff = np.array([r[variant][key] - r[VARIANTS[0]][key] for r in results])
            se = diff.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
            print(f"{variant} - before, {key}: {diff.mean():+.4f} (se {se:.4f}, paired)")


if __name__ == "__main__":
    main()

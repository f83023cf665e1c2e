"""Merchant limit refresh benchmark: N merchants end to end (target 1M in <= 60 s, <= 4 GB).

Setup (not timed): seeded ``merchant_credit_v1`` profiles for N merchants written as a serving
snapshot in the feature store's layout, a DuckDB warehouse with a loan book (a share of the
merchants hold a line; some in arrears), and a calibrated LightGBM ``merchant_pd`` (loaded as
the registry's ``LoadedModel``).

Timed, in a fresh subprocess per run so that its peak memory is its own: read the snapshot
(``features.load_snapshot``) and the loan book, score, underwrite (the online merchant policy),
apply the line-change policy, write the version and change log, publish.  Day 1 starts from
the warehouse loan book; day 2 from day 1's published version.

Usage: ``uv run python benchmarks/bench_limits.py [--merchants 1000000] [--home DIR]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAY1 = dt.date(2026, 9, 29)


def _profiles(n: int, seed: int):  # type: ignore[no-untyped-def]
    from features.definitions import get_feature_set
    from tests.support.synthetic import synthetic_merchant_profiles

    fs = get_feature_set("merchant_credit_v1")
    data = synthetic_merchant_profiles(
        n, seed, seasonal_sd=0.15, delinquent_share=0.02, min_tenure_days=100.0
    )
    label = data.pop("label").to_numpy()
    return fs, data[fs.profile_columns("merchant")], label


def setup(home: Path, n: int, seed: int) -> None:
    """Write the snapshot, the warehouse and the model file under ``home`` (not timed)."""
    import numpy as np
    import pandas as pd

    from models.estimator import GradientBoostedPD
    from models.scorecard import Scorecard
    from yidai.core.settings import Settings
    from yidai.core.warehouse import connect, ensure_tables

    settings = Settings(home=home)
    fs, frame, _ = _profiles(n, seed)
    ids = np.char.add("M", np.char.zfill(np.arange(n).astype(str), 8))
    snapshot_id = f"{DAY1.isoformat()}_bench"
    folder = settings.serving / "features" / fs.name / snapshot_id
    folder.mkdir(parents=True, exist_ok=True)
    out = frame.copy()
    out.insert(0, "entity_id", ids)
    out.to_parquet(folder / "merchant.parquet", index=False)
    meta = {
        "feature_set": fs.name,
        "version": fs.version,
        "fingerprint": fs.fingerprint,
        "as_of": DAY1.isoformat(),
        "columns": fs.columns,
        "profiles": {"merchant": fs.profile_columns("merchant")},
        "rows": {"merchant": n},
        "snapshot_id": snapshot_id,
    }
    (folder.parent / "CURRENT").write_text(json.dumps(meta), encoding="utf-8")

    # the model: trained on 50k separate rows, 300 trees
    _, train, label = _profiles(50_000, seed + 1)
    train["merchant_requested_to_turnover_now"] = np.random.default_rng(seed).uniform(0, 3, 50_000)
    train = train[fs.columns]
    est = GradientBoostedPD(n_estimators=300, early_stopping_rounds=300, n_jobs=2)
    est.fit(train[:40_000], label[:40_000], eval_set=(train[40_000:], label[40_000:]))
    est.booster_.save_model(str(home / "merchant_pd.txt"))
    meta_model = {
        "feature_set": fs.name,
        "feature_set_version": fs.fingerprint,
        "feature_names": fs.columns,
        "calibrator": est.calibrator_.to_dict(),
        "scorecard": Scorecard().to_dict(),
        "reason_groups": {},
    }
    (home / "merchant_pd.json").write_text(json.dumps(meta_model), encoding="utf-8")

    # the loan book: 40% of the merchants hold a line, 2% of those in arrears
    rng = np.random.default_rng(seed + 2)
    booked = ids[rng.random(n) < 0.4]
    m = len(booked)
    limits = rng.choice([20_000.0, 50_000.0, 80_000.0, 150_000.0], m)
    accounts = np.char.add("A", booked)
    apps = pd.DataFrame(
        {
            "application_id": accounts,
            "ts": pd.Timestamp("2025-11-01"),
            "product": "merchant",
            "applicant_id": booked,
            "requested_amount": limits,
            "decision": "approved",
            "approved_limit": limits,
            "annual_rate": 0.06,
        }
    )
    perf = pd.DataFrame(
        {
            "account_id": accounts,
            "snapshot_date": pd.Timestamp("2026-08-31"),
            "credit_limit": limits,
            "outstanding": np.round(limits * rng.uniform(0, 0.9, m), 2),
            "days_past_due": 0,
        }
    )
    late = rng.random(m) < 0.02
    sched = pd.DataFrame(
        {
            "schedule_id": np.char.add("S", booked[late]),
            "account_id": accounts[late],
            "due_date": pd.Timestamp("2026-09-15"),
            "amount_due": 1_000.0,
            "paid_at": pd.NaT,
            "amount_paid": 0.0,
            "days_past_due": 14,
        }
    )
    con = connect(settings.warehouse)
    try:
        ensure_tables(con)
        for table, data in (
            ("loan_applications", apps),
            ("loan_performance", perf),
            ("loan_repayments", sched),
        ):
            con.register("data", data)
            cols = ", ".join(data.columns)
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM data")
            con.unregister("data")
    finally:
        con.close()


def timed_run(home: Path, as_of: dt.date) -> dict[str, float | str | int]:
    """One refresh, end to end (this runs in its own subprocess)."""
    import lightgbm as lgb

    from features import load_snapshot
    from models.registry import LoadedModel
    from yidai.core.settings import Settings
    from yidai.decisioning.merchant_limits import load_merchant_limit_policy
    from yidai.decisioning.policy import load_credit_policy
    from yidai.jobs.limits.refresh import read_loan_book, run_refresh

    settings = Settings(home=home)
    metadata = json.loads((home / "merchant_pd.json").read_text(encoding="utf-8"))
    booster = lgb.Booster(model_file=str(home / "merchant_pd.txt"))
    model = LoadedModel(
        name="merchant_pd",
        version="bench",
        alias="champion",
        run_id="bench",
        booster=booster,
        metadata=metadata,
    )
    policy = load_merchant_limit_policy(settings.policies / "merchant_limits.yaml")
    credit_policy = load_credit_policy("merchant", settings.policies)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    snapshot = load_snapshot(settings.serving, credit_policy.feature_set)
    t_read = time.perf_counter()
    book = read_loan_book(settings.warehouse, as_of)
    t_book = time.perf_counter()
    result = run_refresh(
        as_of,
        snapshot=snapshot,
        model=model,
        book=book,
        policy=policy,
        credit_policy=credit_policy,
        serving_dir=settings.serving,
    )
    t_end = time.perf_counter()
    s = result.summary
    return {
        "as_of": as_of.isoformat(),
        "version": result.version,
        "merchants": s["merchants"],
        "read_snapshot_s": round(t_read - t0, 2),
        "read_book_s": round(t_book - t_read, 2),
        "score_policy_write_publish_s": round(t_end - t_book, 2),
        "total_s": round(t_end - t0, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_mb": round(base_rss),
        "new": s["new"],
        "up": s["increase"],
        "down": s["decrease"],
        "frozen": s["freeze"],
        "published": str(result.published),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--merchants", type=int, default=1_000_000, help="Merchants (1M).")
    parser.add_argument("--seed", type=int, default=42, help="Seed of the synthetic data.")
    parser.add_argument("--home", type=Path, default=None, help="State folder (default: tmp).")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # internal: one timed run
    args = parser.parse_args()
    if args.run:
        print(json.dumps(timed_run(args.home, dt.date.fromisoformat(args.run))))
        return
    home = args.home or Path(tempfile.mkdtemp(prefix="bench-limits-"))
    home.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    setup(home, args.merchants, args.seed)
    print(f"setup ({args.merchants:,} merchants, not timed): {time.perf_counter() - t:.1f} s")
    for day in (DAY1, DAY1 + dt.timedelta(days=1)):
        cmd = [sys.executable, __file__, "--home", str(home), "--run", day.isoformat()]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()

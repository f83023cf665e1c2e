"""Feature-store benchmark: daily build, point-in-time history, pandas baseline, scaling.

Generates contract-shaped synthetic data straight into a DuckDB file (N POS transactions,
N/5 payments, N/10 mall orders), then measures each step in a fresh subprocess (so its peak
memory is its own):

* ``daily``: the four active feature sets (one per model) as of one day (target <= 10 s,
  <= 2 GB at 10M POS);
* ``history``: every entity-day with activity over 12 months, active sets (target <= 60 s);
* ``pandas``: the POS features of personal_credit_v1 and merchant_credit_v1 written the
  obvious way in pandas, against DuckDB computing the same columns (outputs asserted equal);
* ``lookup``: FeatureSnapshot.get latency.

* ``spark_daily`` (``--engine spark``): the same daily build on Spark ``local[2]`` over the
  data exported into the lake layout (wall, driver + JVM CPU, JVM peak RSS).

Usage: ``uv run python benchmarks/bench_features.py --size 1m [--steps daily,history,pandas]``
or ``--engine duckdb,spark --sizes 10m,50m`` (both engines at both sizes in one run; rows
per core-second = rows / the build's CPU-seconds, the JVM's included);
``--scaling`` runs the daily build at 1M, 3M and 10M.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"100k": 100_000, "1m": 1_000_000, "3m": 3_000_000, "10m": 10_000_000}
SIZES["50m"] = 50_000_000
START = dt.date(2025, 10, 1)
AS_OF = dt.date(2026, 9, 29)
POS_COLUMNS = {
    "personal_credit_v1": [
        "customer_spend_amount_30d",
        "customer_spend_amount_90d",
        "customer_spend_amount_180d",
        "customer_spend_count_90d",
        "customer_active_days_90d",
        "customer_risky_mcc_share_90d",
        "customer_night_share_90d",
        "customer_refund_ratio_90d",
        "customer_declined_count_30d",
    ],
    "merchant_credit_v1": [
        "merchant_net_turnover_30d",
        "merchant_net_turnover_90d",
        "merchant_net_turnover_180d",
        "merchant_active_days_90d",
        "merchant_txn_count_30d",
        "merchant_avg_ticket_90d",
        "merchant_distinct_cards_90d",
        "merchant_chargeback_rate_90d",
    ],
}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def generate(path: Path, n_pos: int) -> dict[str, object]:
    import duckdb

    from tests.support.synthetic import synthetic_warehouse

    t0 = time.perf_counter()
    con = duckdb.connect(str(path))
    counts = synthetic_warehouse(
        con, n_pos=n_pos, n_payments=n_pos // 5, n_orders=n_pos // 10, start=START
    )
    con.close()
    return {"seconds": time.perf_counter() - t0, "rows": counts}


def step_daily(path: Path) -> dict[str, object]:
    import duckdb

    import features

    con = duckdb.connect(str(path))
    t0, c0 = time.perf_counter(), time.process_time()
    rows = features.build_features(con, AS_OF)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    con.close()
    return {"seconds": seconds, "cpu_s": round(cpu, 1), "rows": rows}


def step_spark_daily(path: Path) -> dict[str, object]:
    """The active sets' daily build on Spark (local[2]) over the warehouse exported into the
    lake layout; wall, driver CPU, JVM CPU and peak RSS (the executors run in the JVM)."""
    import threading

    import psutil

    from features.engine import resolve_feature_sets
    from features.spark import profiles_spark
    from yidai.core import lake as lake_layout
    from yidai.core.contracts import CONTRACTS
    from yidai.core.spark import get_spark, stop_spark

    lake = path.with_suffix(".lake")
    if not lake_layout.committed_runs(lake):
        lake_layout.export_warehouse(path, lake)
    spark = get_spark()
    jvm = [p for p in psutil.Process().children(recursive=True) if "java" in p.name()]
    peak = {"jvm_mb": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            rss = sum(p.memory_info().rss for p in jvm if p.is_running())
            peak["jvm_mb"] = max(peak["jvm_mb"], rss / 1024**2)

    threading.Thread(target=sample, daemon=True).start()
    cpu_jvm0 = sum(sum(p.cpu_times()[:2]) for p in jvm)
    t0, c0 = time.perf_counter(), time.process_time()
    lake_layout.attach_spark(spark, lake, CONTRACTS)
    rows = {}
    for fs in resolve_feature_sets(None):
        for entity in fs.profile_entities:
            rows[f"{fs.name}/{entity}"] = profiles_spark(spark, fs, entity, AS_OF).count()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    cpu_jvm = sum(sum(p.cpu_times()[:2]) for p in jvm) - cpu_jvm0
    done.set()
    stop_spark()
    return {
        "seconds": round(seconds, 1),
        "cpu_s": round(cpu + cpu_jvm, 1),
        "cpu_s_jvm": round(cpu_jvm, 1),
        "peak_jvm_mb": round(peak["jvm_mb"], 1),
        "rows": rows,
    }


def step_history(path: Path) -> dict[str, object]:
    import duckdb

    import features

    con = duckdb.connect(str(path))
    per_set: dict[str, float] = {}
    per_set_cpu: dict[str, float] = {}
    rows: dict[str, int] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    from features.engine import active_feature_sets

    for name in active_feature_sets():
        t1, c1 = time.perf_counter(), time.process_time()
        rows.update(features.build_features_history(con, START, AS_OF, [name]))
        per_set[name] = round(time.perf_counter() - t1, 1)
        per_set_cpu[name] = round(time.process_time() - c1, 1)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    con.close()
    return {
        "seconds": seconds,
        "cpu_s": round(cpu, 1),
        "per_set_s": per_set,
        "per_set_cpu_s": per_set_cpu,
        "rows": rows,
    }


def _duckdb_pos_columns(path: Path) -> tuple[float, dict[str, object]]:
    import duckdb

    import features
    from features.engine import profile_table

    con = duckdb.connect(str(path))
    t0 = time.perf_counter()
    features.build_features(con, AS_OF, list(POS_COLUMNS))
    seconds = time.perf_counter() - t0
    frames: dict[str, object] = {}
    for name, cols in POS_COLUMNS.items():
        fs = features.FEATURE_SETS[name]
        quoted = ", ".join(f'"{c}"' for c in cols)
        frames[name] = con.execute(
            f"SELECT entity_id, {quoted} FROM {profile_table(fs, fs.entity)} WHERE as_of = ?",
            [AS_OF],
        ).df()
    con.close()
    return seconds, frames


def _pandas_pos_columns(path: Path) -> tuple[float, dict[str, object]]:
    """The obvious pandas way: load the transactions, filter each window, group by."""
    import duckdb
    import numpy as np
    import pandas as pd

    t0 = time.perf_counter()
    con = duckdb.connect(str(path), read_only=True)
    pos = con.execute("SELECT * FROM pos_transactions").df()
    con.close()
    end = pd.Timestamp(AS_OF) + pd.Timedelta(days=1)
    pos = pos[pos["ts"] < end]
    pos["day"] = pos["ts"].dt.normalize()
    risky = ["7995", "6051", "5944"]

    def window(days: int) -> pd.DataFrame:
        return pos[pos["ts"] >= end - pd.Timedelta(days=days)]

    cust: dict[str, pd.Series] = {}
    for days in (30, 90, 180):
        w = window(days)
        w = w[w["customer_id"].notna()]
        ok = w[w["status"] == "approved"]
        spend = ok.groupby("customer_id")["amount"].sum()
        cust[f"customer_spend_amount_{days}d"] = spend
        if days == 90:
            cust["customer_spend_count_90d"] = ok.groupby("customer_id").size()
            cust["customer_active_days_90d"] = ok.groupby("customer_id")["day"].nunique()
            cust["customer_risky_mcc_share_90d"] = (
                ok[ok["mcc"].isin(risky)].groupby("customer_id")["amount"].sum() / spend
            )
            cust["customer_night_share_90d"] = (
                ok[ok["ts"].dt.hour < 6].groupby("customer_id")["amount"].sum() / spend
            )
            refunds = w[w["status"] == "refund"].groupby("customer_id")["amount"].sum()
            cust["customer_refund_ratio_90d"] = refunds / spend
        if days == 30:
            cust["customer_declined_count_30d"] = (
                w[w["status"] == "declined"].groupby("customer_id").size()
            )
    merch: dict[str, pd.Series] = {}
    for days in (30, 90, 180):
        w = window(days)
        ok = w[w["status"] == "approved"]
        signed = np.where(w["status"] == "approved", w["amount"], 0.0) - np.where(
            w["status"] == "refund", w["amount"], 0.0
        )
        merch[f"merchant_net_turnover_{days}d"] = (
            pd.Series(signed, index=w.index).groupby(w["merchant_id"]).sum()
        )
        if days == 30:
            merch["merchant_txn_count_30d"] = ok.groupby("merchant_id").size()
        if days == 90:
            n = ok.groupby("merchant_id").size()
            merch["merchant_active_days_90d"] = ok.groupby("merchant_id")["day"].nunique()
            merch["merchant_avg_ticket_90d"] = ok.groupby("merchant_id")["amount"].sum() / n
            merch["merchant_distinct_cards_90d"] = ok.groupby("merchant_id")["card_token"].nunique()
            merch["merchant_chargeback_rate_90d"] = (
                w[w["status"] == "chargeback"].groupby("merchant_id").size() / n
            )
    seconds = time.perf_counter() - t0
    return seconds, {
        "personal_credit_v1": pd.DataFrame(cust),
        "merchant_credit_v1": pd.DataFrame(merch),
    }


def _compare(duck: dict[str, object], pand: dict[str, object]) -> None:
    import numpy as np
    import pandas as pd

    for name, cols in POS_COLUMNS.items():
        d = duck[name].set_index("entity_id")  # type: ignore[attr-defined]
        p = pand[name]
        assert isinstance(p, pd.DataFrame)
        common = p.index.intersection(d.index)
        assert len(common) == len(p.index), f"{name}: pandas has entities DuckDB lacks"
        for c in cols:
            dv = d.loc[common, c].to_numpy(float)
            pv = p.loc[common, c].to_numpy(float)
            fill = 0.0 if "share" not in c and "ratio" not in c and "ticket" not in c else np.nan
            pv = np.where(np.isnan(pv), fill if not np.isnan(fill) else pv, pv)
            if c.endswith(("share_90d", "ratio_90d", "rate_90d")):
                pv = np.where(np.isnan(pv) & (dv == 0), 0.0, pv)  # 0/x vs missing numerator
            np.testing.assert_allclose(dv, pv, rtol=1e-9, atol=1e-6, err_msg=f"{name}.{c}")


def step_pandas(path: Path) -> dict[str, object]:
    p_seconds, pand = _pandas_pos_columns(path)
    return {"seconds": p_seconds, "frames": {k: len(v) for k, v in pand.items()}}  # type: ignore[arg-type]


def step_duck_pos(path: Path) -> dict[str, object]:
    seconds, _ = _duckdb_pos_columns(path)
    return {"seconds": seconds}


def step_equal(path: Path) -> dict[str, object]:
    _, duck = _duckdb_pos_columns(path)
    _, pand = _pandas_pos_columns(path)
    _compare(duck, pand)
    return {"equal": True}


def step_lookup(path: Path) -> dict[str, object]:
    import duckdb
    import numpy as np

    import features

    serving = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    con = duckdb.connect(str(path))
    features.publish_snapshot(con, serving, AS_OF, ["personal_credit_v1"])
    con.close()
    t0 = time.perf_counter()
    snap = features.load_snapshot(serving, "personal_credit_v1")
    load = time.perf_counter() - t0
    ids = list(snap.frame.index[:10_000])
    rng = np.random.default_rng(0)
    sample = [ids[i] for i in rng.integers(0, len(ids), 100_000)]
    t0 = time.perf_counter()
    for e in sample:
        snap.get(e)
    per_get = (time.perf_counter() - t0) / len(sample)
    t0 = time.perf_counter()
    for e in sample[:10_000]:
        snap.vector({"entity_id": e, "requested_amount": 5000.0})
    per_vector = (time.perf_counter() - t0) / 10_000
    return {"load_s": load, "get_us": per_get * 1e6, "vector_us": per_vector * 1e6}


STEPS = {
    "daily": step_daily,
    "history": step_history,
    "pandas": step_pandas,
    "duck_pos": step_duck_pos,
    "equal": step_equal,
    "lookup": step_lookup,
    "spark_daily": step_spark_daily,
}


def run_step(step: str, path: Path) -> dict[str, object]:
    """Run one step in a fresh interpreter; its peak RSS is reported with its figures."""
    out = subprocess.run(
        [sys.executable, __file__, "--run-step", step, "--db", str(path)],
        check=False,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{out.stderr[-3000:]}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=list(SIZES), default="1m", help="POS transactions.")
    parser.add_argument(
        "--sizes", default=None, help="Comma-separated sizes run one after the other (10m,50m)."
    )
    parser.add_argument(
        "--steps",
        default="daily,history,duck_pos,pandas,equal,lookup",
        help=f"Comma-separated steps among {', '.join(STEPS)}.",
    )
    parser.add_argument("--scaling", action="store_true", help="Daily build at 1M, 3M and 10M.")
    parser.add_argument(
        "--engine",
        default=None,
        help="duckdb|spark|duckdb,spark: the daily build on these engines (overrides --steps).",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="Where the DuckDB file goes.")
    parser.add_argument("--run-step", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_step:
        result = STEPS[args.run_step](args.db)
        result["peak_mb"] = round(_peak_mb(), 1)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result["cpu_s_process"] = round(usage.ru_utime + usage.ru_stime, 1)  # incl. imports
        result["load_avg"] = round(os.getloadavg()[0], 1)
        print(json.dumps(result, default=str))
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_features_"))
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = ["1m", "3m", "10m"] if args.scaling else [args.size]
    if args.sizes:
        sizes = [s.strip() for s in args.sizes.split(",")]
        unknown = [s for s in sizes if s not in SIZES]
        if unknown:
            raise SystemExit(f"unknown sizes {unknown}; choose among {', '.join(SIZES)}")
    steps = ["daily"] if args.scaling else args.steps.split(",")
    if args.engine:
        by_engine = {"duckdb": "daily", "spark": "spark_daily"}
        steps = [by_engine[e.strip()] for e in args.engine.split(",")]
    for size in sizes:
        path = workdir / f"bench_{size}.duckdb"
        if not path.exists():
            print(f"[{size}] generating...", flush=True)
            gen = generate(path, SIZES[size])
            print(f"[{size}] generated in {gen['seconds']:.1f} s: {gen['rows']}", flush=True)
        for step in steps:
            result = run_step(step, path)
            if "cpu_s" in result:  # the build's own CPU (the JVM's too on Spark)
                cpu = float(result["cpu_s"]) or float("nan")  # type: ignore[arg-type]
                result["pos_rows_per_core_s"] = round(SIZES[size] / cpu)
                result["input_rows_per_core_s"] = round(SIZES[size] * 1.3 / cpu)
            print(f"[{size}] {step}: {json.dumps(result, default=str)}", flush=True)


if __name__ == "__main__":
    main()

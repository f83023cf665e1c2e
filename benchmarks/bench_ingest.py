"""Benchmark `yidai ingest`: rows/s and peak memory at the demo size and at ~10M POS rows.

Generates its own landing zone (the simulator's, when ``simulator.simulate`` exists and
``--synthetic`` is not given; otherwise synthetic files honouring the contracts, written by
DuckDB), then ingests it in a fresh child process so that its peak RSS is the ingest's own.
Prints one line per size and run, with wall, CPU seconds (user+sys), peak RSS, the load
average around the run and the CPU-bound estimate rows / (CPU-s / cores) (what an otherwise
idle machine would give if the ingest kept every core busy); the figures go to
docs/benchmarks.md ("Ingestion").  Run it under ``flock /tmp/yidai-bench.lock``.

    uv run python benchmarks/bench_ingest.py --help
    uv run python benchmarks/bench_ingest.py --sizes demo,10m
    uv run python benchmarks/bench_ingest.py --sizes 10m --keep --reuse --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

START = date(2025, 10, 1)
CORES = os.cpu_count() or 1
# rows per day of each event source, and master sizes, per benchmark size
SIZES: dict[str, dict[str, object]] = {
    "demo": {
        "days": 365,
        "events": {
            "pos_transactions": 6_000,
            "payments": 3_000,
            "mall_orders": 1_500,
            "loan_repayments": 300,
            "fraud_reports": 30,
        },
        "masters": {
            "customers": 20_000,
            "cards": 26_000,
            "merchants": 2_000,
            "terminals": 3_000,
            "smes": 500,
            "mall_sellers": 800,
        },
    },
    "10m": {
        "days": 365,
        "events": {"pos_transactions": 27_400},
        "masters": {
            "customers": 200_000,
            "cards": 260_000,
            "merchants": 20_000,
            "terminals": 30_000,
        },
    },
}

CHILD = """
import json, resource, sys, time
from yidai.ingest import ingest_landing
t = time.perf_counter()
r = ingest_landing(sys.argv[1], sys.argv[2], memory_limit=sys.argv[3])
secs = time.perf_counter() - t
usage = resource.getrusage(resource.RUSAGE_SELF)
import duckdb
with duckdb.connect(sys.argv[2], read_only=True) as con:
    unbalanced, manifest = con.execute(
        "SELECT (SELECT count(*) FROM ingest_reconciliation WHERE NOT balanced), "
        "(SELECT count(*) FROM ingest_manifest)").fetchone()
print(json.dumps({"seconds": secs, "landed": r.rows_landed, "loaded": r.rows_loaded,
                  "unbalanced": unbalanced, "manifest_rows": manifest,
                  "quarantined": r.rows_quarantined, "files": len(r.files),
                  "failed": [f.describe_error() for f in r.failed],
                  "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}))
"""


def write_synthetic(landing: Path, spec: dict[str, object]) -> int:
    """Write a synthetic landing zone for ``spec``; returns the number of rows written."""
    import duckdb

    from tests.support.samples import landing_file, write_sample_file
    from yidai.core.contracts import CONTRACTS

    masters = dict(spec["masters"])  # type: ignore[call-overload]
    events = dict(spec["events"])  # type: ignore[call-overload]
    days = int(spec["days"])  # type: ignore[call-overload]
    con = duckdb.connect()
    total = 0
    for name, n in masters.items():
        write_sample_file(
            landing_file(landing, name, START),
            CONTRACTS[name],
            n,
            START,
            master_counts=masters,
            con=con,
        )
        total += n
    for name, per_day in events.items():
        for k in range(days):
            day = START + timedelta(days=k)
            write_sample_file(
                landing_file(landing, name, day),
                CONTRACTS[name],
                per_day,
                day,
                start=k * per_day,
                seed=k,
                master_counts=masters,
                con=con,
            )
            total += per_day
    con.close()
    return total


def write_simulated(landing: Path, truth: Path, size: str) -> bool:
    """The simulator's demo preset for the demo size, if the simulator is there."""
    if size != "demo":
        return False  # ~10M POS rows: synthetic, POS only (the large preset is far bigger)
    try:
        from simulator import SimConfig, simulate
    except ImportError:
        return False
    simulate(SimConfig.preset("demo"), landing, truth)
    return True


def generate(size: str, base: Path, synthetic: bool, reuse: bool) -> tuple[str, float]:
    """Write the landing zone of ``size`` under ``base`` (or reuse the one there)."""
    landing, marker = base / "landing", base / "data.json"
    if reuse and marker.exists() and landing.is_dir():
        return str(json.loads(marker.read_text())["data"]), 0.0
    shutil.rmtree(base, ignore_errors=True)
    t = time.perf_counter()
    source = "synthetic"
    if synthetic or not write_simulated(landing, base / "truth", size):
        write_synthetic(landing, SIZES[size])
    else:
        source = "simulator"
    marker.write_text(json.dumps({"data": source}))
    return source, time.perf_counter() - t


def run(size: str, base: Path, source: str, memory_limit: str) -> dict[str, Any]:
    """Ingest ``base``/landing into a fresh warehouse in a child process."""
    landing, warehouse = base / "landing", base / "warehouse.duckdb"
    for path in (warehouse, Path(f"{warehouse}.wal")):
        path.unlink(missing_ok=True)
    load_before = os.getloadavg()[0]
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(landing), str(warehouse), memory_limit],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(size=size, data=source, load=(load_before, os.getloadavg()[0]))
    result["rows_per_s"] = result["landed"] / result["seconds"]
    result["cpu_bound_rows_per_s"] = result["landed"] / (result["cpu_s"] / CORES)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="demo,10m", help="Comma list of: demo, 10m.")
    parser.add_argument(
        "--workdir", type=Path, default=Path("var/bench/ingest"), help="Scratch folder."
    )
    parser.add_argument("--memory-limit", default="1GB", help="DuckDB memory limit.")
    parser.add_argument(
        "--synthetic", action="store_true", help="Synthetic data even if the simulator exists."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the generated files.")
    parser.add_argument(
        "--reuse", action="store_true", help="Reuse a landing zone kept by an earlier --keep run."
    )
    parser.add_argument("--repeat", type=int, default=1, help="Ingest runs per size.")
    args = parser.parse_args()
    print(f"machine: {CORES} cores; DuckDB memory_limit {args.memory_limit}", flush=True)
    for size in args.sizes.split(","):
        if size not in SIZES:
            parser.error(f"unknown size {size!r}; choose among {', '.join(SIZES)}")
        base = args.workdir / size
        source, generate_s = generate(size, base, args.synthetic, args.reuse)
        for _ in range(max(1, args.repeat)):
            r = run(size, base, source, args.memory_limit)
            print(
                f"ingest {size:>4} ({r['data']}): {r['landed']:,} rows in {r['files']} files, "
                f"{r['seconds']:.1f} s = {r['rows_per_s'] / 1e6:.2f} M rows/s, "
                f"CPU {r['cpu_s']:.1f} s (CPU-bound {r['cpu_bound_rows_per_s'] / 1e6:.2f} M rows/s"
                f" on {CORES} cores), peak RSS {r['peak_rss_mb']:.0f} MB, "
                f"quarantined {r['quarantined']:,}, failed files {len(r['failed'])}, "
                f"manifest rows {r['manifest_rows']}, unbalanced batches {r['unbalanced']}, "
                f"load {r['load'][0]:.1f}->{r['load'][1]:.1f}  "
                f"(data generated in {generate_s:.1f} s)",
                flush=True,
            )
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark the simulator: rows/s and peak memory at the demo size and at ~10M POS rows.

Usage: ``uv run python benchmarks/bench_simulator.py [--sizes demo,10m] [--out DIR]``.
Each size runs in a fresh subprocess so its peak memory (max RSS) is its own.  CPU time
(user + sys, all threads) is printed too: on a shared machine it is the fairer figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES: dict[str, dict[str, int]] = {
    "demo": {},  # the demo preset as is
    # ~10M POS transactions: 12 POS rows per customer-month over 12 months
    "10m": {
        "n_customers": 70_000,
        "n_merchants": 7_000,
        "n_smes": 1_750,
        "n_mall_sellers": 1000,
        "months": 12,  # the demo preset's 18 months and extra applications left out
        "history_months": 1,
        "application_rate": 1,
    },
}


def run_one(size: str, out: Path) -> dict[str, object]:
    """Simulate one size in this process and return its figures."""
    from simulator import SimConfig, simulate

    config = SimConfig.preset("demo", **SIZES[size])  # type: ignore[arg-type]
    before = resource.getrusage(resource.RUSAGE_SELF)
    summary = simulate(config, out / "landing", out / "truth")
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    peak_mb = after.ru_maxrss / 1024
    return {
        "size": size,
        "rows": summary.total_rows,
        "pos_rows": summary.rows.get("pos_transactions", 0),
        "files": sum(summary.files.values()),
        "seconds": round(summary.seconds, 2),
        "rows_per_s": round(summary.rows_per_second),
        "cpu_seconds": round(cpu, 2),
        "rows_per_cpu_s": round(summary.total_rows / cpu) if cpu > 0 else 0,
        "load_avg": round(os.getloadavg()[0], 1),
        "peak_rss_mb": round(peak_mb),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="demo,10m", help="Comma-separated: demo, 10m.")
    parser.add_argument("--out", type=Path, default=None, help="Work folder (default: a temp dir).")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.out)))
        return
    for size in args.sizes.split(","):
        if size not in SIZES:
            parser.error(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
        work = Path(tempfile.mkdtemp(prefix=f"bench_sim_{size}_", dir=args.out))
        try:
            done = subprocess.run(
                [sys.executable, __file__, "--child", size, "--out", str(work)],
                check=True,
                capture_output=True,
                text=True,
            )
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"{size:>5}: {figures['rows']:>11,} rows ({figures['pos_rows']:,} POS) in "
                f"{figures['files']:,} files, {figures['seconds']:.1f} s, "
                f"{figures['rows_per_s']:,} rows/s; CPU {figures['cpu_seconds']:.1f} s "
                f"({figures['rows_per_cpu_s']:,} rows per CPU-second); "
                f"peak RSS {figures['peak_rss_mb']:,} MB; load average {figures['load_avg']}"
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

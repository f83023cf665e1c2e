"""Demo-pipeline benchmark: the pipeline part of ``make demo``, timed phase by phase.

Runs exactly what ``scripts/demo.sh`` runs before it starts the services (Airflow set-up,
simulation, the DAGs over the history then the daily runs), each phase as the same CLI
command in a child process, in a fresh state folder, and prints the wall time of each
phase, the total (target: <= 600 s on 2 cores) and each phase's peak memory.

Usage: ``uv run python benchmarks/bench_demo_pipeline.py [--preset demo] [--daily-runs 3]
[--home var/bench-demo]`` (the folder is wiped first).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _phase(name: str, argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run one CLI phase; return (seconds, peak RSS of that child in MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    done = subprocess.run(argv, env=env, cwd=ROOT, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"{name} failed (exit {done.returncode})")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", help="simulation preset (default: demo)")
    parser.add_argument("--daily-runs", type=int, default=3, help="daily runs after history")
    parser.add_argument("--home", type=Path, default=ROOT / "var" / "bench-demo")
    args = parser.parse_args()

    home = args.home.resolve()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {
        **os.environ,
        "YIDAI_HOME": str(home),
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    yidai = [sys.executable, "-m", "yidai.cli"]
    phases = [
        ("airflow setup", [*yidai, "pipeline", "setup"]),
        ("simulate", [*yidai, "simulate", "--preset", args.preset]),
        (
            "DAG runs",
            [
                *yidai,
                "pipeline",
                "history",
                "--daily-runs",
                str(args.daily_runs),
                "--log-file",
                str(home / "pipeline.log"),
            ],
        ),
    ]
    rows = []
    for name, argv in phases:
        seconds, peak_mb = _phase(name, argv, env)
        rows.append((name, seconds, peak_mb))
        print(f"{name:<14} {seconds:8.1f} s   peak RSS so far {peak_mb:7.0f} MB", flush=True)
    total = sum(seconds for _, seconds, _ in rows)
    print(
        f"pipeline part of the demo ({args.preset}, {args.daily_runs} daily runs): {total:.1f} s"
        f" (target <= 600 s) on {os.cpu_count()} cores, {platform.machine()}"
    )


if __name__ == "__main__":
    main()

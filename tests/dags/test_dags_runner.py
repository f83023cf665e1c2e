"""The scheduler-free runner: the demo's run plan and the log redirection."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from yidai.cli.airflow_local import demo_plan
from yidai.core.errors import YidaiError

DAYS = [date(2026, 9, 1) + timedelta(days=i) for i in range(10)]


def test_the_plan_runs_the_history_once_then_daily_cycles_on_the_last_days() -> None:
    plan = demo_plan(DAYS, daily_runs=3)
    history_day = DAYS[-4]
    assert plan[0] == (
        "ingest_daily",
        history_day,
        {"history": True, "backfill_features": False, "day": history_day.isoformat()},
    )
    # Models are trained on the history before the limits need the merchant_pd champion.
    assert [dag_id for dag_id, _, _ in plan[1:3]] == ["train_weekly", "merchant_limits_daily"]
    daily = plan[3:-1]
    assert [(dag_id, day) for dag_id, day, _ in daily] == [
        (dag_id, day) for day in DAYS[-3:] for dag_id in ("ingest_daily", "merchant_limits_daily")
    ]
    assert plan[-1][:2] == ("monitoring_daily", DAYS[-1])
    assert all(conf["day"] == day.isoformat() for _, day, conf in plan)
    assert not any(conf.get("history") for _, _, conf in plan[1:])


def test_the_plan_refuses_a_landing_zone_shorter_than_the_daily_runs() -> None:
    with pytest.raises(YidaiError, match="not enough for 10 daily runs"):
        demo_plan(DAYS, daily_runs=10)


def test_airflow_output_goes_to_the_log_file_and_progress_to_the_terminal(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "logs" / "pipeline.log"
    script = f"""
import os, subprocess
from pathlib import Path
from yidai.cli.airflow_local import output_redirected
with output_redirected(Path({str(log_file)!r})) as terminal:
    print("task output")
    os.write(2, b"native stderr\\n")
    subprocess.run(["echo", "child output"], check=True)
    print("progress line", file=terminal)
print("after")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["progress", "line", "after"]
    assert done.stderr == ""
    logged = log_file.read_text()
    for line in ("task output", "native stderr", "child output"):
        assert line in logged

"""Batch jobs on no data: a missing warehouse or a day without ingested rows is a clear error
(exit code 2, one line, no traceback), and nothing is created or published."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from yidai.core.errors import YidaiError
from yidai.core.settings import reset_settings_cache
from yidai.core.warehouse import ensure_tables

DAY = date(2026, 3, 31)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith(("YIDAI_", "MLFLOW_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("YIDAI_HOME", str(tmp_path))
    reset_settings_cache()
    yield tmp_path
    reset_settings_cache()


def warehouse_with_one_payment(home: Path, day: date) -> Path:
    """A warehouse whose only delivery is one payment on ``day``."""
    path = home / "warehouse" / "yidai.duckdb"
    path.parent.mkdir(parents=True)
    con = duckdb.connect(str(path))
    ensure_tables(con)
    con.execute(
        "INSERT INTO payments (payment_id, ts, payer_type, payer_id, payment_type, amount, "
        "channel, status) VALUES ('p1', CAST(? AS TIMESTAMP) + INTERVAL 9 HOUR, 'customer', "
        "'c1', 'e_payment', 10.0, 'app', 'success')",
        [day],
    )
    con.close()
    return path


def test_the_cli_exits_2_with_one_line_and_creates_no_warehouse(home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YIDAI_", "MLFLOW_"))}
    env["YIDAI_HOME"] = str(home)
    warehouse = home / "warehouse" / "yidai.duckdb"
    for args in (
        ["features", "build", "--as-of", str(DAY)],
        ["features", "publish", "--as-of", str(DAY)],
        ["limits", "refresh", "--as-of", str(DAY), "--no-progress"],
        ["monitor", "run", "--as-of", str(DAY)],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "yidai.cli", *args],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 2, (args, done.stderr[-2000:])
        assert "Traceback" not in done.stderr, args
        assert f"error: warehouse {warehouse} does not exist" in done.stderr, args
    assert sorted(p.name for p in home.iterdir()) == []  # no warehouse, serving, mlflow


def test_connect_existing_never_creates_the_file(tmp_path: Path) -> None:
    from yidai.core.warehouse import connect_existing

    path = tmp_path / "warehouse" / "yidai.duckdb"
    for read_only in (False, True):
        with pytest.raises(YidaiError, match="does not exist; run `yidai ingest` first"):
            connect_existing(path, read_only=read_only)
    assert not path.parent.exists()


def test_monitor_run_refuses_a_day_without_ingested_rows(home: Path) -> None:
    from typer.testing import CliRunner

    from yidai.cli import app

    warehouse_with_one_payment(home, DAY)
    later = date(2026, 4, 2)
    result = CliRunner().invoke(app, ["monitor", "run", "--as-of", str(later)])
    assert isinstance(result.exception, YidaiError), result.output
    message = str(result.exception)
    assert f"no ingested rows for {later}" in message and f"latest event is on {DAY}" in message
    assert not (home / "serving").exists()


def test_pipeline_steps_refuse_no_data_and_create_nothing(home: Path) -> None:
    from yidai.jobs import pipeline

    for step in (pipeline.run_feature_build, pipeline.run_monitoring, pipeline.run_limits_refresh):
        with pytest.raises(YidaiError, match="does not exist"):
            step(DAY)
    assert list(home.iterdir()) == []
    warehouse_with_one_payment(home, DAY)
    with pytest.raises(YidaiError, match="no ingested rows for 2026-04-01"):
        pipeline.run_feature_build(date(2026, 4, 1))
    con = duckdb.connect(str(home / "warehouse" / "yidai.duckdb"), read_only=True)
    schemas = {r[0] for r in con.execute("SELECT schema_name FROM duckdb_schemas()").fetchall()}
    con.close()
    assert "feat" not in schemas  # no feature table was written

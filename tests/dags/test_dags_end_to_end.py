"""The whole chain of DAGs, end to end with ``dag.test()``, on a tiny simulation.

History in one ``ingest_daily`` run, then training, the limit refresh and monitoring, then
one incremental daily cycle; the runs land in the (tmp) Airflow metadata database exactly
as the demo's do.  One module-scoped run, several assertions on what it produced.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from yidai.jobs import pipeline

pytestmark = pytest.mark.slow


@dataclass
class ChainRun:
    home: Path
    days: list[date]
    plan: list[tuple[str, date, dict[str, Any]]]
    outcomes: list[Any]
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def chain(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainRun]:
    from simulator import SimConfig, simulate
    from yidai.cli.airflow_local import demo_plan, run_dag
    from yidai.core.settings import get_settings, reset_settings_cache

    home = tmp_path_factory.mktemp("yidai-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("YIDAI_HOME", str(home))
    reset_settings_cache()
    seconds: dict[str, float] = {}
    started = time.monotonic()
    settings = get_settings()
    # The tiny preset with more customers and merchants: below that, too few loans mature
    # with a default for the credit models to train (they refuse, clearly), and the limit
    # refresh needs the merchant_pd champion.
    config = SimConfig.preset("tiny", n_customers=1500, n_merchants=1500)
    simulate(config, settings.landing, settings.truth)
    seconds["simulate"] = time.monotonic() - started
    days = pipeline.landing_days()
    plan = demo_plan(days, daily_runs=1)
    outcomes = []
    for dag_id, day, conf in plan:
        started = time.monotonic()
        outcomes.append(run_dag(dag_id, day, conf))
        key = f"{dag_id}{' history' if conf.get('history') else ''}"
        seconds[key] = seconds.get(key, 0.0) + time.monotonic() - started
    print("chain timings (s):", {k: round(v, 1) for k, v in seconds.items()})
    yield ChainRun(home, days, plan, outcomes, seconds)
    patch.undo()
    reset_settings_cache()


def test_every_dag_run_of_the_chain_succeeds_in_the_metadata_db(chain: ChainRun) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    assert [o.dag_id for o in chain.outcomes] == [dag_id for dag_id, _, _ in chain.plan]
    with create_session() as session:
        runs = {
            r.run_id: (r.dag_id, str(r.state))
            for r in session.query(DagRun).filter(
                DagRun.run_id.in_([o.run_id for o in chain.outcomes])
            )
        }
    assert len(runs) == len(chain.plan)
    for outcome in chain.outcomes:
        # A run fails only through an alert check (e.g. a malformed landing file).
        assert set(outcome.alerts) <= pipeline.ALERT_TASKS
        assert runs[outcome.run_id] == (
            outcome.dag_id,
            "failed" if outcome.alerts else "success",
        )


def test_every_landing_file_is_ingested_once_across_history_and_daily_runs(
    chain: ChainRun,
) -> None:
    from yidai.core.settings import get_settings
    from yidai.core.warehouse import connect

    con = connect(get_settings().warehouse, read_only=True)
    try:
        days = [
            row[0]
            for row in con.execute(
                "SELECT DISTINCT delivery_day FROM ingest_manifest ORDER BY 1"
            ).fetchall()
        ]
        loaded_twice = con.execute(
            "SELECT path FROM ingest_manifest WHERE status = 'loaded' "
            "GROUP BY path HAVING count(*) > 1"
        ).fetchall()
    finally:
        con.close()
    assert days == chain.days
    assert loaded_twice == []


def test_the_published_snapshot_and_limits_are_of_the_last_day(chain: ChainRun) -> None:
    from features import current_pointer
    from features.engine import active_feature_sets
    from yidai.core.settings import get_settings
    from yidai.jobs.limits import load_published_limits

    serving = get_settings().serving
    last_day = chain.days[-1]
    for name in active_feature_sets():
        pointer = current_pointer(serving, name)
        assert pointer is not None, name
        assert pointer["as_of"] == last_day.isoformat()
    assert load_published_limits(serving).as_of == last_day


def test_each_model_is_champion_or_named_in_the_training_alert(chain: ChainRun) -> None:
    from models.registry import load_model
    from yidai.core.errors import YidaiError

    train = next(o for o in chain.outcomes if o.dag_id == "train_weekly")
    champions = []
    for name in pipeline.MODEL_NAMES:
        try:
            champions.append(load_model(name, "champion").name)
        except YidaiError:
            assert f"train_{name}" in train.alerts, name
            assert "promotion_report" in train.alerts
    # The chain needs these two: the limit refresh and the fraud decisions.
    assert {"merchant_pd", "payment_fraud"} <= set(champions)


def test_models_list_shows_the_chain_champions(chain: ChainRun) -> None:
    from typer.testing import CliRunner

    from yidai.cli import app

    result = CliRunner().invoke(app, ["models", "list", "--latest", "1"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 8 and cells[1] in pipeline.MODEL_NAMES:
            rows[cells[1]] = cells
    assert {"merchant_pd", "payment_fraud"} <= set(rows)
    assert rows["merchant_pd"][3] == "champion" and rows["merchant_pd"][6].startswith("auc 0.")
    assert rows["payment_fraud"][6].startswith("average_precision 0.")
    assert rows["payment_fraud"][5].endswith("%)")  # OOT rows (fraud share)


def test_the_demo_serving_part_runs_on_the_chain(chain: ChainRun) -> None:
    """scripts/demo-serve.sh (the second half of ``make demo``) on the chain's home: the
    service and dashboards start, every example checkout is answered; then both are stopped."""
    import contextlib
    import os
    import re
    import signal
    import socket
    import subprocess

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "YIDAI_HOME": str(chain.home), "DEMO_SERVE_PORT": str(free_port()),
           "DEMO_DASHBOARD_PORT": str(free_port())}  # fmt: skip
    try:
        done = subprocess.run(["bash", "scripts/demo-serve.sh"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        for pidfile in (chain.home / "demo").glob("*.pid"):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pidfile.read_text()), signal.SIGTERM)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    orders = re.findall(r"^O[0-9A-F]{16}: .+$", done.stdout, flags=re.MULTILINE)
    assert len(orders) == 9 and "checkout for one customer failed" not in done.stdout, orders
    assert re.search(r"^  payment +ready", done.stdout, flags=re.MULTILINE), done.stdout
    assert "Yidai is running" in done.stdout


def test_the_features_asset_event_carries_the_day_for_the_limits_dag(chain: ChainRun) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == pipeline.FEATURES_ASSET_URI)
            .order_by(AssetEvent.timestamp)
            .all()
        )
        days = [e.extra.get("day") for e in events]
    ingest_days = [day.isoformat() for dag_id, day, _ in chain.plan if dag_id == "ingest_daily"]
    assert days[-len(ingest_days) :] == ingest_days


def test_the_dashboards_tables_are_published_by_the_chain(chain: ChainRun) -> None:
    from yidai.core.settings import get_settings
    from yidai.jobs.analytics.dashboard_tables import read_meta, read_table

    serving = get_settings().serving
    last_day = chain.days[-1].isoformat()
    portfolio = read_meta(serving / "portfolio")
    assert portfolio["as_of"] == last_day
    applications = read_table(serving / "portfolio", "applications_daily")
    assert applications is not None and applications["applications"].sum() > 0
    assert str(applications["day"].max())[:10] <= last_day
    scored_meta = read_meta(serving / "applications")
    assert scored_meta["as_of"] == last_day
    assert "merchant" in scored_meta["models"]
    merchant = read_table(serving / "applications", "merchant")
    assert merchant is not None and merchant["pd"].between(0, 1).all()
    monitoring = read_table(serving / "monitoring", "drift")
    assert monitoring is not None and set(monitoring["model"]) >= {"merchant_pd"}


def test_the_limits_dag_fails_on_the_breaker_and_publishes_when_forced(
    chain: ChainRun,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The last night again, with the breaker at 1 % (the chain's second night moves more):
    the refresh task fails naming the breaker and the previous limits stay live; the
    ``force_reason`` param publishes the night with the override recorded.  Runs last: it
    leaves the last day's limits published, as the chain did."""
    import shutil

    from yidai.cli.airflow_local import run_dag
    from yidai.core import publishing
    from yidai.core.errors import YidaiError
    from yidai.core.settings import get_settings, reset_settings_cache
    from yidai.jobs.limits import current_limits_pointer, read_limits_summary

    serving = get_settings().serving
    root = serving / "limits"
    last = current_limits_pointer(serving)
    assert last is not None
    previous = read_limits_summary(serving)["previous_version"]
    assert previous is not None
    # undo the last night: its version folder moved away, the pointer back on the previous
    shutil.move(str(publishing.version_dir(root, last)), str(tmp_path / last))
    publishing.publish(root, previous, {"as_of": chain.days[-2].isoformat()})
    monkeypatch.setenv("YIDAI_LIMITS_MAX_CHANGE_SHARE", "0.01")
    reset_settings_cache()
    try:
        day = chain.days[-1].isoformat()
        with pytest.raises(YidaiError, match="failed in refresh_limits"):
            run_dag("merchant_limits_daily", None, {"day": day})
        captured = capfd.readouterr()
        task_log = captured.out + captured.err + caplog.text
        assert "circuit breaker" in task_log and "over the limit of 1.0%" in task_log
        assert "force_reason" in task_log
        assert current_limits_pointer(serving) == previous
        assert [m["version"] for m in publishing.list_versions(root)] == [previous]
        reason = "chain test: override the breaker"
        run_dag("merchant_limits_daily", None, {"day": day, "force_reason": reason})
        forced = current_limits_pointer(serving)
        assert forced is not None and forced != previous
        assert publishing.read_manifest(root, forced)["forced_reason"] == reason
        assert read_limits_summary(serving)["as_of"] == day
    finally:
        monkeypatch.delenv("YIDAI_LIMITS_MAX_CHANGE_SHARE")
        reset_settings_cache()

"""The DAGs under a real Airflow 3: scheduler, dag-processor, triggerer, the execution API,
the CeleryExecutor with a throwaway Redis broker and one Celery worker, on a tiny simulation.

One cluster for the module.  The history up to the day before the last is ingested and
``merchant_pd`` trained beforehand (in a subprocess, while the cluster starts), as an
installation would have them; then, with ``ingest_daily`` and ``merchant_limits_daily``
unpaused: the scheduler's own run for today (no landing files) waits on the landing sensor
and fails once, without retry, naming the missing sources; a triggered ``ingest_daily`` for
the last landing day ingests it, builds and publishes the features, and the features asset
starts ``merchant_limits_daily``, which publishes the limits of that day.  The warehouse
pool never held two tasks at once.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_cluster import PRISTINE_DB, AirflowCluster
from tests.support.redis_local import RedisServer
from tests.support.webhook_receiver import Receiver

# the module-scoped cluster is set up inside the first test's timeout: room for a loaded machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SENSOR_TIMEOUT_S = 3
UNPAUSED = ("merchant_limits_daily", "ingest_daily")
PREPARE = """
from yidai.core.settings import get_settings
from yidai.ingest import ingest_landing
from yidai.jobs import pipeline
from models.training import train_model
settings = get_settings()
days = pipeline.landing_days()
ingest_landing(settings.landing, settings.warehouse, days=days[:-1])
result = train_model("merchant_pd", as_of=days[-2])
print("trained", result.version)
"""


@dataclass
class ClusterRun:
    cluster: AirflowCluster
    home: Path
    last_day: date
    seconds: dict[str, float]
    stop_seconds: dict[str, float]
    ingest_run: dict[str, Any]
    limits_run: dict[str, Any]
    empty_run: dict[str, Any]
    task_instances: list[dict[str, Any]]
    retries: list[dict[str, Any]]
    listening: dict[int, list[str]]
    alerts: list[dict[str, Any]]


def _done(rows: list[dict[str, Any]]) -> bool:
    return bool(rows) and all(r["state"] in ("success", "failed") for r in rows)


@pytest.fixture(scope="module")
def celery_run(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterRun]:
    from simulator import SimConfig, simulate

    started = time.monotonic()
    seconds: dict[str, float] = {}
    home = tmp_path_factory.mktemp("yidai-celery-home")
    yidai_env = {
        "YIDAI_HOME": str(home),
        "YIDAI_ENV_FILE": "",
        "YIDAI_LANDING_WAIT_TIMEOUT_SECONDS": str(SENSOR_TIMEOUT_S),
        "YIDAI_LANDING_WAIT_POKE_SECONDS": "1",
    }
    receiver = Receiver()  # the failure notifier posts here
    yidai_env["YIDAI_ALERT_WEBHOOK_URL"] = receiver.url
    redis = RedisServer().start()
    cluster = AirflowCluster(yidai_env, broker_url=redis.url(0), result_backend=redis.url(1))
    cluster.use_database(airflow_db / PRISTINE_DB)  # migrated once for the session
    prepare: subprocess.Popen[str] | None = None
    stop_seconds: dict[str, float] = {}
    try:
        config = SimConfig.preset("tiny", n_customers=1500, n_merchants=1500)
        simulate(config, home / "landing", home / "truth")
        landing_days = {date.fromisoformat(p.name[3:]) for p in (home / "landing").glob("*/dt=*")}
        last_day = max(landing_days)
        seconds["simulate"] = time.monotonic() - started
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "YIDAI_"))}
        prepare = subprocess.Popen(
            [sys.executable, "-c", PREPARE], env={**env, **yidai_env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        cluster.start()
        cluster.wait_for(
            "the dag-processor to serialize the DAGs",
            lambda: len(cluster.query("SELECT dag_id FROM serialized_dag")) >= 4,
            timeout_s=90,
        )
        seconds["cluster up"] = time.monotonic() - started
        # unpaused while the training still runs: the scheduler's own run for today waits
        # for files that never come (its sensor touches no warehouse), in parallel
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda d: cluster.airflow("dags", "unpause", d), UNPAUSED))
        output, _ = prepare.communicate(timeout=240)
        assert prepare.returncode == 0, output[-3000:]
        seconds["history + training"] = time.monotonic() - started
        cluster.airflow(
            "dags", "trigger", "ingest_daily", "--run-id", "celery_last_day",
            "--conf", f'{{"day": "{last_day.isoformat()}"}}',
        )  # fmt: skip

        def limits_finished() -> list[dict[str, Any]]:
            runs = cluster.dag_runs("merchant_limits_daily")
            return runs if _done(runs) else []

        cluster.wait_for("merchant_limits_daily to follow", limits_finished, timeout_s=150)
        cluster.wait_for(
            "every ingest_daily run to finish",
            lambda: (
                _done(cluster.dag_runs("ingest_daily"))
                and len(cluster.dag_runs("ingest_daily")) >= 2
            ),
            timeout_s=60,
        )
        seconds["runs"] = time.monotonic() - started
        ingest_runs = cluster.dag_runs("ingest_daily")
        run = ClusterRun(
            cluster=cluster,
            home=home,
            last_day=last_day,
            seconds=seconds,
            stop_seconds=stop_seconds,
            ingest_run=next(r for r in ingest_runs if r["run_id"] == "celery_last_day"),
            limits_run=cluster.dag_runs("merchant_limits_daily")[-1],
            empty_run=next(r for r in ingest_runs if r["run_id"] != "celery_last_day"),
            task_instances=cluster.task_instances(),
            retries=cluster.query("SELECT * FROM task_instance_history"),
            listening=cluster.listening(),
            alerts=list(receiver.received),
        )
    except BaseException:
        stop_seconds.update(cluster.stop())
        redis.stop()
        receiver.close()
        if prepare is not None and prepare.poll() is None:
            prepare.kill()
        print(cluster.tails())
        cluster.cleanup()
        raise
    stop_seconds.update(cluster.stop())
    redis.stop()
    receiver.close()
    seconds["stopped"] = time.monotonic() - started
    print("celery cluster timings (s):", {k: round(v, 1) for k, v in seconds.items()})
    print("shutdown (s):", {k: round(v, 1) for k, v in stop_seconds.items()})
    for ti in sorted(run.task_instances, key=lambda t: str(t["start_date"])):
        print(ti["dag_id"], ti["run_id"][:24], ti["task_id"], ti["state"], ti["queued_dttm"],
              ti["start_date"], ti["end_date"])  # fmt: skip
    yield run
    cluster.cleanup()


def _tis(run: ClusterRun, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    return {
        ti["task_id"]: ti
        for ti in run.task_instances
        if ti["dag_id"] == dag_id and ti["run_id"] == run_id
    }


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_the_triggered_ingest_runs_every_task_on_the_celery_worker(celery_run: ClusterRun) -> None:
    assert celery_run.ingest_run["state"] == "success"
    tis = _tis(celery_run, "ingest_daily", "celery_last_day")
    assert {t: ti["state"] for t, ti in tis.items()} == {
        t: "success"
        for t in (
            "wait_for_landing", "ingest_landing", "check_landing", "build_features",
            "publish_snapshot", "publish_portfolio",
        )
    }  # fmt: skip
    # executed by the Celery worker, not in the scheduler
    assert {ti["executor"] or "" for ti in tis.values()} <= {"", "CeleryExecutor"}
    assert all(ti["hostname"] for ti in tis.values())
    assert all(ti["try_number"] == 1 for ti in tis.values())


def test_merchant_limits_follow_through_the_features_asset(celery_run: ClusterRun) -> None:
    from yidai.jobs.limits import read_limits_summary

    limits = celery_run.limits_run
    assert limits["run_type"] == "asset_triggered"
    assert limits["state"] == "success"
    ingest = _tis(celery_run, "ingest_daily", "celery_last_day")
    refresh = _tis(celery_run, "merchant_limits_daily", limits["run_id"])["refresh_limits"]
    assert _ts(refresh["start_date"]) >= _ts(ingest["publish_snapshot"]["end_date"])
    summary = read_limits_summary(celery_run.home / "serving")
    assert summary["as_of"] == celery_run.last_day.isoformat()


def test_the_warehouse_pool_never_ran_two_tasks_at_once(celery_run: ClusterRun) -> None:
    pooled = sorted(
        (_ts(ti["start_date"]), _ts(ti["end_date"]), f"{ti['dag_id']}.{ti['task_id']}")
        for ti in celery_run.task_instances
        if ti["pool"] == "duckdb_warehouse" and ti["start_date"] and ti["end_date"]
    )
    assert len(pooled) >= 5  # ingest, features, snapshot, portfolio, limits
    for (_, end, first), (start, _, second) in itertools.pairwise(pooled):
        assert start >= end, f"{second} started before {first} ended"


def test_a_day_without_landing_files_fails_once_without_retries(celery_run: ClusterRun) -> None:
    empty = celery_run.empty_run
    assert empty["state"] == "failed"
    tis = _tis(celery_run, "ingest_daily", empty["run_id"])
    wait = tis["wait_for_landing"]
    assert wait["state"] == "failed" and wait["try_number"] == 1
    assert tis["ingest_landing"]["state"] == "upstream_failed"
    assert not [r for r in celery_run.retries if r["run_id"] == empty["run_id"]]
    folder = celery_run.cluster.root / "logs" / "dag_id=ingest_daily"
    task_logs = folder / f"run_id={empty['run_id']}" / "task_id=wait_for_landing"
    attempts = sorted(p.name for p in task_logs.glob("attempt=*") if ".trigger." not in p.name)
    assert attempts == ["attempt=1.log"]
    text = (task_logs / "attempt=1.log").read_text(errors="replace")
    assert "AirflowSensorTimeout" in text
    assert "pos_transactions, payments, mall_orders" in text
    assert "YIDAI_LANDING_WAIT_TIMEOUT_SECONDS" in text
    # the failure notifier, run by the Celery worker, posted exactly this failure; a cluster
    # that runs across the schedule's 01:00 UTC also gets the next day's scheduled run, which
    # fails the same way (and nothing else may fail)
    assert {(a["dag_id"], a["task_id"]) for a in celery_run.alerts} == {
        ("ingest_daily", "wait_for_landing")
    }
    assert all(a["run_id"].startswith("scheduled__") for a in celery_run.alerts)
    [alert] = [a for a in celery_run.alerts if a["run_id"] == empty["run_id"]]
    assert alert["try_number"] == 1 and "AirflowSensorTimeout" in alert["error"]
    assert "pos_transactions, payments, mall_orders" in alert["error"]


def test_every_component_stopped_on_sigterm(celery_run: ClusterRun) -> None:
    assert celery_run.stop_seconds
    killed = [name for name, s in celery_run.stop_seconds.items() if s == float("inf")]
    assert killed == []


def test_library_log_lines_keep_their_level_in_the_task_logs(celery_run: ClusterRun) -> None:
    """MLflow's INFO and WARNING lines are not turned into ``[error] task.stderr`` lines."""
    logs = [
        p
        for p in (celery_run.cluster.root / "logs").rglob("attempt=*.log")
        if ".trigger." not in p.name
    ]
    assert any("task_id=refresh_limits" in str(p) for p in logs)
    stderr_lines = [
        line
        for p in logs
        for line in p.read_text(errors="replace").splitlines()
        if "task.stderr" in line
    ]
    assert [line for line in stderr_lines if "mlflow" in line.lower()] == []


def test_servers_listen_on_the_loopback_only(celery_run: ClusterRun) -> None:
    """The execution API on 127.0.0.1; no task-log server (``--skip-serve-logs``: Airflow
    3.3 would bind it on every interface)."""
    cluster = celery_run.cluster
    assert celery_run.listening[cluster.api_port] == ["127.0.0.1"]
    assert celery_run.listening[cluster.worker_log_port] == []
    assert celery_run.listening[cluster.trigger_log_port] == []

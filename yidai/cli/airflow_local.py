"""The project-local Airflow environment, and a scheduler-free runner for Yidai's DAGs.

``AIRFLOW_HOME`` defaults to ``<YIDAI_HOME>/airflow`` (``var/airflow`` for the demo), with
Airflow's default SQLite metadata database.  :func:`setup_airflow` migrates it and creates
the ``duckdb_warehouse`` pool; :func:`run_dag` runs one DAG run in-process with
``dag.test()``, so the demo and the tests need no scheduler, and the runs show up in the
Airflow UI (``airflow standalone``) started on the same ``AIRFLOW_HOME``.

Airflow reads its configuration when it is first imported: call :func:`activate` (or
export :func:`airflow_environ` in the shell) *before* anything imports ``airflow``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, TextIO

from yidai.core.errors import YidaiError
from yidai.jobs.pipeline import ALERT_TASKS, WAREHOUSE_POOL

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
POOLS: dict[str, tuple[int, str]] = {
    WAREHOUSE_POOL: (1, "Tasks that open the DuckDB warehouse (one read-write process at a time)"),
}
#: On the Spark engine the same pool (the DAG files do not change) only bounds how many tasks
#: send work to the cluster at once (``YIDAI_SPARK_POOL_SLOTS``); nothing opens one file.
SPARK_POOL_DESCRIPTION = "Tasks that send batch work to the Spark cluster (YIDAI_ENGINE=spark)"


def pool_slots() -> dict[str, tuple[int, str]]:
    """The pools and their slots for the active batch engine (``YIDAI_ENGINE``)."""
    # deferred: settings are read at run time only
    from yidai.core.settings import get_settings

    settings = get_settings()
    if settings.engine == "spark":
        return {WAREHOUSE_POOL: (settings.spark_pool_slots, SPARK_POOL_DESCRIPTION)}
    return dict(POOLS)


def airflow_home() -> Path:
    """``$AIRFLOW_HOME`` if set, else ``<YIDAI_HOME>/airflow``."""
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from yidai.core.settings import get_settings

    explicit = os.environ.get("AIRFLOW_HOME")
    return Path(explicit) if explicit else get_settings().home / "airflow"


def dags_folder() -> Path:
    """``$AIRFLOW__CORE__DAGS_FOLDER`` if set, else the project's ``dags/`` folder."""
    explicit = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
    return Path(explicit) if explicit else PROJECT_ROOT / "dags"


def airflow_environ(home: Path | None = None) -> dict[str, str]:
    """The environment variables that point Airflow at the project-local home and DAGs.

    ``home`` wins over ``$AIRFLOW_HOME``; the other variables are only filled in when the
    caller has not set them, so a production ``AIRFLOW__*`` setting always wins.
    """
    defaults = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder().resolve()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # a local UI (`airflow standalone`, `airflow api-server`) answers on the loopback only
        "AIRFLOW__API__HOST": "127.0.0.1",
    }
    env = {key: os.environ.get(key, value) for key, value in defaults.items()}
    env["AIRFLOW_HOME"] = str((home or airflow_home()).resolve())
    return env


def activate(home: Path | None = None) -> dict[str, str]:
    """Export :func:`airflow_environ` into this process; refuses once Airflow is imported.

    Airflow caches its configuration at import, so setting ``AIRFLOW_HOME`` afterwards
    would silently use another metadata database.
    """
    env = airflow_environ(home)
    current = os.environ.get("AIRFLOW_HOME")
    if "airflow.configuration" in sys.modules and (
        current is None or str(Path(current).resolve()) != env["AIRFLOW_HOME"]
    ):
        raise YidaiError(
            "Airflow was imported before its home was set; set AIRFLOW_HOME="
            f"{env['AIRFLOW_HOME']} in the environment instead"
        )
    os.environ.update(env)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    return env


def setup_airflow(home: Path | None = None) -> Path:
    """Create or upgrade the metadata database and the pools; idempotent. Returns the home.

    Runs in this process (like ``airflow db migrate`` then ``airflow pools set``), so call
    it before anything else imports Airflow (see :func:`activate`).
    """
    env = activate(home)
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from airflow.models.pool import Pool
    from airflow.utils import db

    log.info("migrating the Airflow metadata database under %s", env["AIRFLOW_HOME"])
    db.upgradedb()
    for name, (slots, description) in pool_slots().items():
        Pool.create_or_update_pool(name, slots, description, include_deferred=False)
        log.info("pool %s: %d slot(s)", name, slots)
    return Path(env["AIRFLOW_HOME"])


def _utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


@dataclass(frozen=True)
class RunOutcome:
    """A finished DAG run: its id, and the alert tasks that failed (data quality, drift)."""

    dag_id: str
    run_id: str
    alerts: tuple[str, ...]


def run_dag(
    dag_id: str,
    day: date | None,
    conf: Mapping[str, Any] | None = None,
    *,
    fail_fast: bool = True,
) -> RunOutcome:
    """Run one DAG run in this process with ``dag.test()``.

    ``day`` becomes the logical date (the day whose data the run processes; ``None`` for
    an asset-style run without one).  ``fail_fast`` turns retries off for this local run
    and makes the landing sensor fail at once on a missing partition instead of waiting,
    so a failure surfaces at once (a scheduler honours the DAG's retries and waits).  Raises
    :class:`YidaiError` naming the failed tasks if any task but an alert check
    (:data:`yidai.jobs.pipeline.ALERT_TASKS`) failed; failed alert checks are returned.
    """
    activate()
    # deferred: loaded when the command runs, so `yidai --help` starts fast
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_folder()))
    if bag.import_errors:
        path, error = next(iter(bag.import_errors.items()))
        raise YidaiError(f"DAG file {path} does not import: {error.strip()[-300:]}")
    dag = bag.dags.get(dag_id)
    if dag is None:
        raise YidaiError(f"no DAG {dag_id!r} in {dags_folder()}; known: {sorted(bag.dag_ids)}")
    if fail_fast:
        for task in dag.tasks:
            task.retries = 0
            if hasattr(task, "wait_timeout_seconds"):  # the landing sensor: no waiting
                task.wait_timeout_seconds = 0.0
    logical_date = _utc_midnight(day) if day is not None else None
    run = dag.test(logical_date=logical_date, run_conf=dict(conf or {}))
    if run is None:
        raise YidaiError(f"DAG {dag_id} for {day} did not start")
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    failed = sorted(task for task, state in states.items() if state not in ("success", "skipped"))
    blocking = [task for task in failed if task not in ALERT_TASKS]
    if blocking:
        broken = [task for task in blocking if states[task] == "failed"]
        not_run = [task for task in blocking if states[task] != "failed"]
        raise YidaiError(
            f"DAG {dag_id} for {day} failed in {', '.join(broken) or '?'}"
            + (f" (not run: {', '.join(not_run)})" if not_run else "")
        )
    for task_id in failed:
        log.warning("alert: %s.%s failed for %s", dag_id, task_id, day)
    return RunOutcome(dag_id, str(run.run_id), tuple(failed))


def demo_plan(
    days: list[date], daily_runs: int, *, backfill_features: bool = False
) -> list[tuple[str, date, dict[str, Any]]]:
    """The DAG runs of the demo: the history in one go, then ``daily_runs`` daily cycles.

    History (every landing day but the last ``daily_runs``): ``ingest_daily`` with
    ``history``, ``train_weekly`` (models need the warehouse) and ``merchant_limits_daily``
    (needs the champion ``merchant_pd``).  Each later day: ``ingest_daily`` then
    ``merchant_limits_daily`` (what the features asset triggers).  ``monitoring_daily``
    runs once, on the last day (it looks back over the whole window anyway).
    """
    if len(days) <= daily_runs:
        raise YidaiError(
            f"the landing zone has {len(days)} day(s): not enough for {daily_runs} daily runs"
        )
    history_day = days[-daily_runs - 1]
    plan: list[tuple[str, date, dict[str, Any]]] = [
        ("ingest_daily", history_day, {"history": True, "backfill_features": backfill_features}),
        ("train_weekly", history_day, {}),
        ("merchant_limits_daily", history_day, {}),
    ]
    for day in days[len(days) - daily_runs :]:
        plan += [("ingest_daily", day, {"history": False}), ("merchant_limits_daily", day, {})]
    plan.append(("monitoring_daily", plan[-1][1], {}))
    return [(dag_id, day, {**conf, "day": day.isoformat()}) for dag_id, day, conf in plan]


@contextmanager
def output_redirected(log_file: Path | None) -> Iterator[TextIO]:
    """Send this process's stdout/stderr (Airflow's and the tasks' logs) to ``log_file``.

    Yields a stream on the original terminal for progress lines.  ``None`` redirects
    nothing.  Works at the file-descriptor level, so child processes follow it too.
    """
    if log_file is None:
        yield sys.stdout
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1)
    with log_file.open("a", encoding="utf-8") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            terminal.close()

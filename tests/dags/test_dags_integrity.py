"""DagBag integrity: every DAG imports, is tagged, retries, pools warehouse tasks, wires assets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from yidai.jobs import pipeline

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
EXPECTED_DAGS = {"ingest_daily", "merchant_limits_daily", "train_weekly", "monitoring_daily"}
#: Tasks that open the DuckDB warehouse: they must share the one-slot pool.
WAREHOUSE_TASKS = {
    ("ingest_daily", "ingest_landing"),
    ("ingest_daily", "build_features"),
    ("ingest_daily", "publish_snapshot"),
    ("ingest_daily", "publish_portfolio"),
    ("merchant_limits_daily", "refresh_limits"),
    *{("train_weekly", f"train_{name}") for name in pipeline.MODEL_NAMES},
    ("monitoring_daily", "publish_scored"),
    ("monitoring_daily", "compute_monitoring"),
}
#: Waits whose timeout is final (the sensor fails naming the missing sources).
NO_RETRY_WAITS = {("ingest_daily", "wait_for_landing")}
#: Deterministic checks that must fail at once rather than retry.
NO_RETRY_TASKS = {
    ("ingest_daily", "check_landing"),
    ("monitoring_daily", "check_thresholds"),
    ("train_weekly", "promotion_report"),
}


def _dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


@pytest.fixture(scope="module")
def dagbag() -> Any:
    return _dagbag()


def test_every_dag_file_imports_and_holds_one_dag(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED_DAGS
    for dag_id in EXPECTED_DAGS:
        assert Path(dagbag.dags[dag_id].fileloc).name == f"{dag_id}.py"


def test_every_dag_is_tagged_and_every_task_retries(dagbag: Any) -> None:
    for dag_id in EXPECTED_DAGS:
        dag = dagbag.dags[dag_id]
        assert "yidai" in dag.tags and len(dag.tags) >= 2, dag_id
        for task in dag.tasks:
            if (dag_id, task.task_id) in NO_RETRY_WAITS:
                assert task.retries == 0 and task.task_id not in pipeline.ALERT_TASKS
            elif (dag_id, task.task_id) in NO_RETRY_TASKS:
                assert task.task_id in pipeline.ALERT_TASKS
                assert task.retries == 0
            else:
                assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
                assert task.retry_delay.total_seconds() > 0


def test_exactly_the_warehouse_tasks_share_the_one_slot_pool(dagbag: Any) -> None:
    pooled = {
        (dag_id, task.task_id)
        for dag_id in EXPECTED_DAGS
        for task in dagbag.dags[dag_id].tasks
        if task.pool == pipeline.WAREHOUSE_POOL
    }
    assert pooled == WAREHOUSE_TASKS


def test_the_features_asset_schedules_limits_after_the_feature_build(dagbag: Any) -> None:
    from airflow.sdk import Asset

    features = Asset(name=pipeline.FEATURES_ASSET_NAME, uri=pipeline.FEATURES_ASSET_URI)
    ingest = dagbag.dags["ingest_daily"]
    publish = ingest.get_task("publish_snapshot")
    assert features in publish.outlets
    assert "build_features" in publish.get_flat_relative_ids(upstream=True)
    assert "ingest_landing" in publish.get_flat_relative_ids(upstream=True)
    limits = dagbag.dags["merchant_limits_daily"]
    consumed = list(limits.timetable.asset_condition.objects)
    assert consumed == [features]
    # No other task announces the features before they are published.
    for dag_id in EXPECTED_DAGS:
        for task in dagbag.dags[dag_id].tasks:
            if task is not publish:
                assert features not in task.outlets


def test_the_dashboards_tables_are_published_after_their_inputs(dagbag: Any) -> None:
    ingest = dagbag.dags["ingest_daily"]
    upstream = ingest.get_task("publish_portfolio").get_flat_relative_ids(upstream=True)
    assert {"ingest_landing", "build_features", "publish_snapshot"} <= upstream
    monitoring = dagbag.dags["monitoring_daily"]
    compute = monitoring.get_task("compute_monitoring")
    assert "publish_scored" in compute.get_flat_relative_ids(upstream=True)
    # Monitoring still runs (on its own scoring) when publishing the scores failed.
    assert compute.trigger_rule == "all_done"


def test_parsing_the_dags_reads_no_settings_and_touches_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from yidai.core.settings import get_settings, reset_settings_cache

    home = tmp_path / "never-created"
    monkeypatch.setenv("YIDAI_HOME", str(home))
    reset_settings_cache()
    bag = _dagbag()
    assert bag.import_errors == {}
    assert get_settings.cache_info().currsize == 0
    assert not home.exists()


def test_the_day_comes_from_param_then_asset_event_then_logical_date() -> None:
    from datetime import date, datetime

    class Event:
        def __init__(self, day: str) -> None:
            self.extra = {"day": day}

    logical = datetime(2026, 3, 2)
    assert pipeline.resolve_day({"params": {"day": "2026-01-05"}, "logical_date": logical}) == (
        date(2026, 1, 5)
    )
    events = {"features": [Event("2026-02-01"), Event("2026-02-03")]}
    assert pipeline.resolve_day(
        {"params": {"day": None}, "triggering_asset_events": events, "logical_date": None}
    ) == date(2026, 2, 3)
    assert pipeline.resolve_day({"params": {}, "logical_date": logical}) == date(2026, 3, 2)
    from yidai.core.errors import YidaiError

    with pytest.raises(YidaiError, match="no day"):
        pipeline.resolve_day({"params": {}, "logical_date": None})
    with pytest.raises(YidaiError, match="not an ISO date"):
        pipeline.resolve_day({"params": {"day": "tomorrow"}})

"""Permanent errors fail a task at once (no retries); the day of a run and of a training run."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from yidai.jobs import pipeline


class Event:
    def __init__(self, day: str) -> None:
        self.extra = {"day": day}


def test_a_run_without_day_fails_saying_how_to_pass_it() -> None:
    with pytest.raises(pipeline.PermanentError, match="no day") as caught:
        pipeline.resolve_day({"params": {}, "logical_date": None})
    message = str(caught.value)
    assert "--conf" in message and '"day"' in message and "--logical-date" in message
    with pytest.raises(pipeline.PermanentError, match="not an ISO date"):
        pipeline.resolve_day({"params": {"day": "yesterday"}})


def test_fail_fast_turns_permanent_errors_and_bad_settings_into_airflow_fail() -> None:
    from airflow.sdk.exceptions import AirflowFailException
    from pydantic import ValidationError

    from yidai.core.errors import YidaiError
    from yidai.core.settings import Settings

    with pytest.raises(AirflowFailException, match=r"permanent .*no landing files"):  # noqa: SIM117
        with pipeline.fail_fast():
            raise pipeline.PermanentError("no landing files to ingest")
    with pytest.raises(AirflowFailException, match="bad configuration"), pipeline.fail_fast():
        Settings(landing_wait_timeout_seconds=-1)
    # anything else keeps the DAG's retries
    with pytest.raises(YidaiError, match="locked") as caught, pipeline.fail_fast():
        raise YidaiError("warehouse locked")
    assert not isinstance(caught.value, AirflowFailException)
    assert issubclass(pipeline.PermanentError, YidaiError)
    assert not issubclass(ValidationError, YidaiError)


def test_ingest_of_a_day_without_files_is_permanent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from yidai.core.settings import reset_settings_cache

    (tmp_path / "landing" / "payments" / "dt=2026-01-01").mkdir(parents=True)
    (tmp_path / "landing" / "payments" / "dt=2026-01-01" / "part-0.parquet").write_bytes(b"x")
    monkeypatch.setenv("YIDAI_HOME", str(tmp_path))
    reset_settings_cache()
    try:
        with pytest.raises(pipeline.PermanentError, match="no landing files to ingest"):
            pipeline.run_ingest(date(2026, 1, 2))
        with pytest.raises(pipeline.PermanentError, match="no landing day on or before"):
            pipeline.run_ingest(date(2025, 12, 31), history=True)
    finally:
        reset_settings_cache()


def test_daily_sources_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from yidai.core.settings import reset_settings_cache

    monkeypatch.setenv("YIDAI_LANDING_DAILY_SOURCES", "payments, pos_transactions")
    reset_settings_cache()
    assert pipeline.daily_sources() == ["payments", "pos_transactions"]
    monkeypatch.setenv("YIDAI_LANDING_DAILY_SOURCES", "payments,paymnets")
    reset_settings_cache()
    with pytest.raises(pipeline.PermanentError, match="paymnets"):
        pipeline.daily_sources()
    reset_settings_cache()


def test_training_is_as_of_the_last_published_features_day() -> None:
    from airflow.sdk import Asset

    features = Asset(name=pipeline.FEATURES_ASSET_NAME, uri=pipeline.FEATURES_ASSET_URI)
    week_start, week_end = datetime(2026, 11, 22, 3), datetime(2026, 11, 29, 3)
    base = {"params": {}, "logical_date": week_start, "data_interval_end": week_end}
    # no features event: the day before the end of the interval, not its start
    assert pipeline.resolve_training_day(base)[0] == date(2026, 11, 28)
    day, source = pipeline.resolve_training_day(
        {**base, "inlet_events": {features: [Event("2026-11-26"), Event("2026-11-27")]}}
    )
    assert (day, "features asset event" in source) == (date(2026, 11, 27), True)
    assert pipeline.resolve_training_day({**base, "params": {"day": "2026-10-01"}}) == (
        date(2026, 10, 1),
        "the day param",
    )
    assert pipeline.resolve_training_day({**base, "inlet_events": {features: []}})[0] == date(
        2026, 11, 28
    )


def test_a_limits_run_without_day_fails_once_and_alerts_the_webhook(
    airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real DAG run (dag.test) with the DAG's own retries: the task fails on its first
    try and the notifier posts the failure to a throwaway receiver."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    from tests.support.webhook_receiver import Receiver
    from yidai.cli.airflow_local import run_dag
    from yidai.core.errors import YidaiError
    from yidai.core.settings import reset_settings_cache

    receiver = Receiver()
    monkeypatch.setenv("YIDAI_ALERT_WEBHOOK_URL", receiver.url)
    reset_settings_cache()
    try:
        with pytest.raises(YidaiError, match="failed in refresh_limits"):
            run_dag("merchant_limits_daily", None, {}, fail_fast=False)
    finally:
        receiver.close()
        reset_settings_cache()
    [alert] = receiver.received
    assert alert["dag_id"] == "merchant_limits_daily" and alert["task_id"] == "refresh_limits"
    assert "this run has no day" in alert["error"] and "not retried" in alert["error"]
    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter(
                TaskInstance.run_id == alert["run_id"], TaskInstance.task_id == "refresh_limits"
            )
            .one()
        )
        assert (str(ti.state), ti.try_number) == ("failed", 1)


def test_a_local_run_for_a_day_without_files_fails_at_once_naming_the_sources(
    airflow_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from yidai.cli.airflow_local import run_dag
    from yidai.core.errors import YidaiError
    from yidai.core.settings import reset_settings_cache

    (tmp_path / "landing" / "payments" / "dt=2026-01-01").mkdir(parents=True)
    (tmp_path / "landing" / "payments" / "dt=2026-01-01" / "part-0.parquet").write_bytes(b"x")
    monkeypatch.setenv("YIDAI_HOME", str(tmp_path))
    reset_settings_cache()
    try:
        with pytest.raises(YidaiError, match="failed in wait_for_landing"):
            run_dag("ingest_daily", date(2026, 1, 1), {"day": "2026-01-01"})
    finally:
        reset_settings_cache()
    captured = capfd.readouterr()
    task_log = captured.out + captured.err + caplog.text
    assert "AirflowSensorTimeout" in task_log
    assert "from pos_transactions, mall_orders" in task_log

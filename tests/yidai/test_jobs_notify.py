"""Failure alerts: off by default; with a webhook, one JSON message per failed task naming
DAG, task, run and error, and nothing secret.  A real HTTP receiver on the loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support.webhook_receiver import Receiver
from yidai.core.settings import Settings
from yidai.jobs import notify


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _context(error: BaseException) -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id="ingest_daily", task_id="ingest_landing", run_id="scheduled__2026-12-01",
        try_number=3,
    )  # fmt: skip
    return {
        "ti": ti,
        "logical_date": datetime(2026, 12, 1, 1, tzinfo=UTC),
        "exception": error,
        "params": {"day": "2026-12-01", "customer": "C0000001"},
    }


def test_alerts_are_off_by_default(receiver: Receiver) -> None:
    delivered = notify.send_alert({"dag_id": "d", "task_id": "t"}, Settings())
    assert delivered == []
    assert receiver.received == []


def test_a_failed_task_posts_dag_task_run_and_error(receiver: Receiver) -> None:
    settings = Settings(alert_webhook_url=receiver.url)
    error = RuntimeError(
        "MLflow at postgresql://risk:hunter2@pg:5432/mlflow is unreachable\nTraceback ..."
    )
    message = notify.failure_message(_context(error))
    assert notify.send_alert(message, settings) == ["webhook"]
    [got] = receiver.received
    assert got == {
        "source": "yidai",
        "event": "task_failed",
        "dag_id": "ingest_daily",
        "task_id": "ingest_landing",
        "run_id": "scheduled__2026-12-01",
        "logical_date": "2026-12-01T01:00:00+00:00",
        "try_number": 3,
        "error": "RuntimeError: MLflow at postgresql://***@pg:5432/mlflow is unreachable",
    }
    raw = receiver.raw[0].decode()
    # the credentials of the error's URL, the params (a customer id) and the webhook's own
    # token are not in the body
    assert "hunter2" not in json.dumps(got) and "C0000001" not in json.dumps(got)
    assert json.dumps(got).count("s3cr3t") == 0 and raw.count("s3cr3t") == 1  # in the path only


def test_the_airflow_notifier_sends_through_the_settings(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from yidai.core.settings import reset_settings_cache

    monkeypatch.setenv("YIDAI_ALERT_WEBHOOK_URL", receiver.url)
    reset_settings_cache()
    try:
        [callback] = notify.failure_callbacks()
        callback(_context(ValueError("no landing files to ingest")))
    finally:
        reset_settings_cache()
    assert [m["error"] for m in receiver.received] == ["ValueError: no landing files to ingest"]


def test_an_unreachable_webhook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    server = Receiver(status=500)
    url = server.url
    server.close()  # nothing listens there any more
    settings = Settings(alert_webhook_url=url, alert_timeout_seconds=2)
    assert notify.send_alert({"dag_id": "d", "task_id": "t"}, settings) == []
    assert "failure alert not delivered to the webhook" in caplog.text
    assert "s3cr3t" not in caplog.text

"""The landing sensor's trigger: ready when every daily source has its partition, else a
timeout naming the missing ones (the task then fails without retry)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from yidai.jobs.landing_sensor import (
    TRIGGER_PATH,
    LandingPartitionSensor,
    LandingPartitionTrigger,
    missing_partitions,
)

SOURCES = ["pos_transactions", "payments", "mall_orders"]
DAY = "2026-03-02"


def _land(landing: Path, source: str, name: str = "part-0.parquet") -> None:
    folder = landing / source / f"dt={DAY}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"data")


def _first_event(trigger: LandingPartitionTrigger) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(first())


def test_missing_partitions_ignores_in_flight_and_marker_files(tmp_path: Path) -> None:
    _land(tmp_path, "payments")
    _land(tmp_path, "mall_orders", ".part-0.parquet.tmp")
    _land(tmp_path, "pos_transactions", "_SUCCESS")
    assert missing_partitions(tmp_path, DAY, SOURCES) == ["pos_transactions", "mall_orders"]


def test_the_trigger_fires_when_late_files_arrive(tmp_path: Path) -> None:
    _land(tmp_path, "payments")
    trigger = LandingPartitionTrigger(
        landing=str(tmp_path), day=DAY, sources=SOURCES, deadline=time.time() + 30,
        poke_seconds=0.05,
    )  # fmt: skip

    async def land_late_then_wait() -> dict[str, Any]:
        async def late() -> None:
            await asyncio.sleep(0.3)
            _land(tmp_path, "pos_transactions")
            _land(tmp_path, "mall_orders")

        task = asyncio.create_task(late())
        async for event in trigger.run():
            await task
            return dict(event.payload)
        raise AssertionError("no event")

    assert asyncio.run(land_late_then_wait()) == {"status": "ready", "day": DAY}


def test_the_trigger_times_out_naming_the_missing_sources(tmp_path: Path) -> None:
    _land(tmp_path, "payments")
    trigger = LandingPartitionTrigger(
        landing=str(tmp_path), day=DAY, sources=SOURCES, deadline=time.time() + 0.2,
        poke_seconds=0.05,
    )  # fmt: skip
    assert _first_event(trigger) == {
        "status": "timeout", "day": DAY, "missing": ["pos_transactions", "mall_orders"],
    }  # fmt: skip
    path, kwargs = trigger.serialize()
    assert path == TRIGGER_PATH
    assert LandingPartitionTrigger(**kwargs).serialize() == (path, kwargs)


def test_the_sensor_fails_without_retry_naming_the_sources() -> None:
    from airflow.sdk.exceptions import AirflowSensorTimeout

    sensor = LandingPartitionSensor(task_id="wait_for_landing")
    event = {"status": "timeout", "day": DAY, "missing": ["pos_transactions", "mall_orders"]}
    with pytest.raises(AirflowSensorTimeout) as caught:
        sensor.execute_complete({}, event, timeout=21600)
    message = str(caught.value)
    assert "pos_transactions, mall_orders" in message and DAY in message
    assert "21600 s" in message and "YIDAI_LANDING_WAIT_TIMEOUT_SECONDS" in message
    assert sensor.execute_complete({}, {"status": "ready", "day": DAY}) == {
        "day": DAY, "waited": True,
    }  # fmt: skip

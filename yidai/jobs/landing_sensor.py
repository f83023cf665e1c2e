"""The deferrable wait for a day's landing partitions (``ingest_daily``'s first task).

:class:`LandingPartitionSensor` checks once in the worker; if a daily source's ``dt=<day>``
partition is still empty it defers to :class:`LandingPartitionTrigger`, which polls the
landing zone in Airflow's triggerer (no worker slot held while waiting).  When the files
arrive the task succeeds; when ``YIDAI_LANDING_WAIT_TIMEOUT_SECONDS`` have passed it fails
with ``AirflowSensorTimeout`` (never retried) naming the sources that are still missing.

This is the one Airflow-facing module of ``yidai.jobs``: the triggerer imports the trigger
by its class path, so it lives in the installed package, not in the DAG folder.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSensorTimeout
from airflow.triggers.base import BaseTrigger, TriggerEvent

from yidai.core.settings import get_settings
from yidai.jobs import pipeline

TRIGGER_PATH = "yidai.jobs.landing_sensor.LandingPartitionTrigger"


def missing_partitions(landing: Path, day: str, sources: Iterable[str]) -> list[str]:
    """The sources whose ``<landing>/<source>/dt=<day>/`` holds no data file yet (names
    starting with ``.`` or ``_`` are in-flight or markers, as ingestion skips them)."""
    missing = []
    for source in sources:
        folder = landing / source / f"dt={day}"
        files = folder.glob("*") if folder.is_dir() else ()
        if not any(f.is_file() and not f.name.startswith((".", "_")) for f in files):
            missing.append(source)
    return missing


class LandingPartitionTrigger(BaseTrigger):
    """Polls the landing zone until every source has its partition or the deadline passes;
    fires once: ``{"status": "ready"}`` or ``{"status": "timeout", "missing": [...]}``."""

    def __init__(
        self, *, landing: str, day: str, sources: list[str], deadline: float, poke_seconds: float
    ) -> None:
        super().__init__()
        self.landing = landing
        self.day = day
        self.sources = list(sources)
        self.deadline = float(deadline)
        self.poke_seconds = float(poke_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return TRIGGER_PATH, {
            "landing": self.landing,
            "day": self.day,
            "sources": self.sources,
            "deadline": self.deadline,
            "poke_seconds": self.poke_seconds,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            missing = await asyncio.to_thread(
                missing_partitions, Path(self.landing), self.day, self.sources
            )
            if not missing:
                yield TriggerEvent({"status": "ready", "day": self.day})
                return
            remaining = self.deadline - time.time()
            if remaining <= 0:
                yield TriggerEvent({"status": "timeout", "day": self.day, "missing": missing})
                return
            await asyncio.sleep(min(self.poke_seconds, remaining))


class LandingPartitionSensor(BaseOperator):
    """Wait (deferred, in the triggerer) for the day's partitions of the daily sources.

    ``wait_timeout_seconds`` overrides ``YIDAI_LANDING_WAIT_TIMEOUT_SECONDS``; 0 fails at
    once when a partition is missing (the local runner's fail-fast runs)."""

    ui_color = "#e8f0fe"

    def __init__(self, *, wait_timeout_seconds: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wait_timeout_seconds = wait_timeout_seconds

    def execute(self, context: Any) -> dict[str, Any]:
        with pipeline.fail_fast():
            day = pipeline.resolve_day(context)
            sources = pipeline.daily_sources()
            settings = get_settings()
        landing = settings.landing
        missing = missing_partitions(landing, day.isoformat(), sources)
        if not missing:
            return {"day": day.isoformat(), "waited": False}
        timeout = (
            settings.landing_wait_timeout_seconds
            if self.wait_timeout_seconds is None
            else self.wait_timeout_seconds
        )
        if timeout <= 0:
            self.execute_complete(
                context, {"status": "timeout", "day": day.isoformat(), "missing": missing}
            )
        self.log.info(
            "waiting up to %.0f s for the %s partitions of %s", timeout, ", ".join(missing), day
        )
        self.defer(
            trigger=LandingPartitionTrigger(
                landing=str(landing),
                day=day.isoformat(),
                sources=sources,
                deadline=time.time() + timeout,
                poke_seconds=settings.landing_wait_poke_seconds,
            ),
            method_name="execute_complete",
            kwargs={"timeout": timeout},
        )

    def execute_complete(
        self, context: Any, event: dict[str, Any], timeout: float = 0.0
    ) -> dict[str, Any]:
        """Back from the trigger: done, or fail (no retry) naming the missing sources."""
        if event.get("status") == "ready":
            return {"day": event.get("day"), "waited": True}
        raise AirflowSensorTimeout(
            f"landing of {event.get('day')}: no file after {timeout:.0f} s from "
            f"{', '.join(event.get('missing') or [])} (under {get_settings().landing}/"
            f"<source>/dt={event.get('day')}/); YIDAI_LANDING_WAIT_TIMEOUT_SECONDS sets the wait"
        )

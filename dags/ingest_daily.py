"""ingest_daily: the day's landing files into the warehouse, then the features and the snapshot.

One run processes one day (its logical date, or the ``day`` param; a manual run with
neither fails at once saying how to pass it).  ``wait_for_landing`` first waits, deferred
in the triggerer, for the day's partitions of the daily sources; past
``YIDAI_LANDING_WAIT_TIMEOUT_SECONDS`` it fails without retry naming the missing sources.
With the ``history`` param it ingests every landing day up to that day in one run (the
first load of a new installation, or the demo); ``backfill_features`` also rebuilds the
feature tables of every earlier day (training does not need them: it computes features
point-in-time itself).

The snapshot task updates the features asset, which schedules ``merchant_limits_daily``;
last, ``publish_portfolio`` aggregates the warehouse into the dashboards' portfolio and fraud
tables.  A landing file that fails its contract fails ``check_landing`` (an alert) without
holding back the features of the files that did load.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Asset, Param, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from yidai.jobs import notify, pipeline
from yidai.jobs.landing_sensor import LandingPartitionSensor

FEATURES = Asset(name=pipeline.FEATURES_ASSET_NAME, uri=pipeline.FEATURES_ASSET_URI)


@dag(
    dag_id="ingest_daily",
    description="Landing -> DuckDB warehouse (reconciled) -> features -> snapshot -> dashboards",
    schedule=CronDataIntervalTimetable("0 1 * * *", timezone="UTC"),
    start_date=datetime(2025, 10, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        **pipeline.DEFAULT_TASK_ARGS,
        "on_failure_callback": notify.failure_callbacks(),
    },
    params={
        "day": Param(None, type=["null", "string"], description="Day to process (YYYY-MM-DD)"),
        "history": Param(False, type="boolean", description="Load every day up to `day`"),
        "backfill_features": Param(
            False,
            type="boolean",
            description="Also rebuild the feature tables of every earlier day (slow)",
        ),
    },
    tags=["yidai", "ingest", "features"],
)
def ingest_daily() -> None:
    @task(pool=pipeline.WAREHOUSE_POOL)
    def ingest_landing(**context: Any) -> dict[str, Any]:
        """Ingest the landing files of the day (all sources), with reconciliation."""
        with pipeline.fail_fast():
            day = pipeline.resolve_day(context)
            return pipeline.run_ingest(day, history=bool(context["params"]["history"]))

    @task(retries=0)
    def check_landing(ingested: Any) -> dict[str, Any]:
        """Fail loudly, naming the files, if a landing file failed or did not reconcile."""
        return pipeline.check_landing(ingested)

    @task(pool=pipeline.WAREHOUSE_POOL)
    def build_features(**context: Any) -> dict[str, Any]:
        """Build every feature set as of the day (and, on request, of every earlier day)."""
        with pipeline.fail_fast():
            day = pipeline.resolve_day(context)
            backfill = bool(context["params"]["backfill_features"])
            return pipeline.run_feature_build(day, backfill=backfill)

    @task(pool=pipeline.WAREHOUSE_POOL, outlets=[FEATURES])
    def publish_snapshot(**context: Any) -> dict[str, Any]:
        """Publish the online feature snapshot (atomic swap) and announce the features."""
        with pipeline.fail_fast():
            day = pipeline.resolve_day(context)
            summary = pipeline.publish_serving(day)
        context["outlet_events"][FEATURES].extra = {"day": day.isoformat()}
        return summary

    @task(pool=pipeline.WAREHOUSE_POOL)
    def publish_portfolio(**context: Any) -> dict[str, Any]:
        """Publish the dashboards' portfolio and fraud tables of the day."""
        with pipeline.fail_fast():
            return pipeline.publish_portfolio_tables(pipeline.resolve_day(context))

    wait = LandingPartitionSensor(task_id="wait_for_landing", retries=0)
    ingested = ingest_landing()
    wait >> ingested
    check_landing(ingested)
    ingested >> build_features() >> publish_snapshot() >> publish_portfolio()


ingest_daily()

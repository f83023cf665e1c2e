"""monitoring_daily: drift, performance and decision rates, written for the dashboards.

Score and feature drift (PSI against the training window), performance on newly matured
loans and on fraud labels that arrived, approval and step-up rates.  First the credit
applications are scored with the champions and published (model monitoring and the policy
simulator read them; the credit drift reuses them).  The last task fails
loudly when a threshold is passed (Airflow's failure alerting then notifies the team).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from yidai.jobs import pipeline


@dag(
    dag_id="monitoring_daily",
    description="Score/feature drift, performance on matured labels, decision rates; alerts",
    schedule=CronDataIntervalTimetable("0 6 * * *", timezone="UTC"),
    start_date=datetime(2025, 10, 1),
    catchup=False,
    max_active_runs=1,
    default_args=pipeline.DEFAULT_TASK_ARGS,
    params={"day": Param(None, type=["null", "string"], description="As-of day (YYYY-MM-DD)")},
    tags=["yidai", "monitoring"],
)
def monitoring_daily() -> None:
    @task(pool=pipeline.WAREHOUSE_POOL)
    def publish_scored(**context: Any) -> dict[str, Any]:
        """Score every credit application with the champions and publish them."""
        return pipeline.publish_scored(pipeline.resolve_day(context))

    @task(pool=pipeline.WAREHOUSE_POOL, trigger_rule="all_done")
    def compute_monitoring(**context: Any) -> dict[str, Any]:
        """Compute and publish the monitoring tables of the day (also if scoring failed)."""
        return pipeline.run_monitoring(pipeline.resolve_day(context))

    @task(retries=0)
    def check_thresholds(report: Any) -> dict[str, Any]:
        """Fail loudly, naming the metric, when drift or performance passes its threshold."""
        return pipeline.check_monitoring(report)

    report = compute_monitoring()
    publish_scored() >> report
    check_thresholds(report)


monitoring_daily()

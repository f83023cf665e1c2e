"""monitoring_daily: drift, performance and decision rates, written for the dashboards.

Score and feature drift (PSI against the training window, or the first window of complete
feature history when training saw truncated windows; a feature whose drift is structural,
declared in ``models.drift``, against the 28 days before), its monthly trend and the
characteristic analysis of the features that moved, DPD roll rates, performance on newly
matured loans and on fraud labels that arrived, approval and step-up rates: one published
table set (``serving/monitoring``) that the model monitoring page reads too.  First the credit
applications are scored with the champions and published (model monitoring and the policy
simulator read them; the credit drift reuses them).  Scheduled on the features asset
(data-aware): it runs once ``ingest_daily`` has published the features of a day, as of
that day.  The last task fails loudly, naming what was missing, when monitoring was blind
(a model without champion, drift or performance not computable, data older than
``YIDAI_MONITORING_MAX_STALENESS_DAYS``), and when a threshold is passed (the failure
notifier then alerts the team).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Asset, Param, dag, task

from yidai.jobs import notify, pipeline

FEATURES = Asset(name=pipeline.FEATURES_ASSET_NAME, uri=pipeline.FEATURES_ASSET_URI)


@dag(
    dag_id="monitoring_daily",
    description="Score/feature drift, performance on matured labels, decision rates; alerts",
    schedule=[FEATURES],
    start_date=datetime(2025, 10, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        **pipeline.DEFAULT_TASK_ARGS,
        "on_failure_callback": notify.failure_callbacks(),
    },
    params={"day": Param(None, type=["null", "string"], description="As-of day (YYYY-MM-DD)")},
    tags=["yidai", "monitoring"],
)
def monitoring_daily() -> None:
    @task(pool=pipeline.WAREHOUSE_POOL)
    def publish_scored(**context: Any) -> dict[str, Any]:
        """Score every credit application with the champions and publish them."""
        with pipeline.fail_fast():
            return pipeline.publish_scored(pipeline.resolve_day(context))

    @task(pool=pipeline.WAREHOUSE_POOL, trigger_rule="all_done")
    def compute_monitoring(**context: Any) -> dict[str, Any]:
        """Compute and publish the monitoring tables of the day (also if scoring failed)."""
        with pipeline.fail_fast():
            return pipeline.run_monitoring(pipeline.resolve_day(context))

    @task(retries=0)
    def check_thresholds(report: Any) -> dict[str, Any]:
        """Fail, naming what was missing or the metric, when monitoring was blind or drift
        passed its threshold."""
        return pipeline.check_monitoring(report)

    report = compute_monitoring()
    publish_scored() >> report
    check_thresholds(report)


monitoring_daily()

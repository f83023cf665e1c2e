"""merchant_limits_daily: re-underwrite every small merchant's revolving line.

Scheduled on the features asset: it runs once ``ingest_daily`` has published the features
of a day, and refreshes the limits as of that day (the ``day`` param overrides it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Asset, Param, dag, task

from yidai import pipeline

FEATURES = Asset(name=pipeline.FEATURES_ASSET_NAME, uri=pipeline.FEATURES_ASSET_URI)


@dag(
    dag_id="merchant_limits_daily",
    description="Batch limit refresh of small merchants' revolving lines, after the features",
    schedule=[FEATURES],
    start_date=datetime(2025, 10, 1),
    catchup=False,
    max_active_runs=1,
    default_args=pipeline.DEFAULT_TASK_ARGS,
    params={"day": Param(None, type=["null", "string"], description="As-of day (YYYY-MM-DD)")},
    tags=["yidai", "limits", "merchant-credit"],
)
def merchant_limits_daily() -> None:
    @task(pool=pipeline.WAREHOUSE_POOL)
    def refresh_limits(**context: Any) -> dict[str, Any]:
        """Score, apply the policy, version the limits and publish them atomically."""
        return pipeline.run_limits_refresh(pipeline.resolve_day(context))

    refresh_limits()


merchant_limits_daily()

"""merchant_limits_daily: re-underwrite every small merchant's revolving line.

Scheduled on the features asset: it runs once ``ingest_daily`` has published the features
of a day, and refreshes the limits as of that day (the ``day`` param overrides it).
A run without a day (no param, no asset event, no logical date) fails at once, without
retries, saying how to pass it; missing inputs fail the task; so does the circuit breaker
(without retries: the same inputs trip it again), unless a manual run passes
``force_reason`` to override it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Asset, Param, dag, task

from yidai.jobs import notify, pipeline

FEATURES = Asset(name=pipeline.FEATURES_ASSET_NAME, uri=pipeline.FEATURES_ASSET_URI)


@dag(
    dag_id="merchant_limits_daily",
    description="Batch limit refresh of small merchants' revolving lines, after the features",
    schedule=[FEATURES],
    start_date=datetime(2025, 10, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        **pipeline.DEFAULT_TASK_ARGS,
        "on_failure_callback": notify.failure_callbacks(),
    },
    params={
        "day": Param(None, type=["null", "string"], description="As-of day (YYYY-MM-DD)"),
        "force_reason": Param(
            None,
            type=["null", "string"],
            description="Publish past the limits circuit breaker, for this reason (recorded)",
        ),
    },
    tags=["yidai", "limits", "merchant-credit"],
)
def merchant_limits_daily() -> None:
    @task(pool=pipeline.WAREHOUSE_POOL)
    def refresh_limits(**context: Any) -> dict[str, Any]:
        """Score, apply the policy, version the limits and publish them atomically."""
        # deferred: the DAG processor parses this file often; the task loads it
        from airflow.sdk.exceptions import AirflowFailException

        # deferred: the DAG processor parses this file often; the task loads it
        from yidai.jobs.limits.breaker import LimitsBreakerError

        force_reason = (context.get("params") or {}).get("force_reason")
        try:
            with pipeline.fail_fast():
                day = pipeline.resolve_day(context)
            return pipeline.run_limits_refresh(day, force_reason=force_reason)
        except LimitsBreakerError as exc:  # deterministic: a retry would trip again
            raise AirflowFailException(
                f"{exc} (or trigger this DAG with the param force_reason)"
            ) from exc

    refresh_limits()


merchant_limits_daily()

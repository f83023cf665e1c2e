"""train_weekly: training sets, the four models, evaluation, registry and promotion gate.

Every model trains as of the last published features day: the ``day`` param, else the day
of the latest features asset event (the task's inlet), else the day before the end of the
run's weekly interval (never its start, a week behind the data); the MLflow run's notes and
the task's summary say which and why.

Each model trains in its own task (a failure in one leaves the others' champions alone):
its point-in-time training set from the warehouse (so it holds the warehouse pool), the
LightGBM fit, the out-of-time evaluation, registration in MLflow and the promotion gate
(the new version becomes ``champion`` only if it beats the current one).  The report task
runs whatever happened: it logs the gate decisions, updates the models asset, and fails
loudly naming any model that could not be retrained (its current champion stays).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Asset, Param, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from yidai.jobs import notify, pipeline

FEATURES = Asset(name=pipeline.FEATURES_ASSET_NAME, uri=pipeline.FEATURES_ASSET_URI)
MODELS = Asset(name=pipeline.MODELS_ASSET_NAME, uri=pipeline.MODELS_ASSET_URI)


@dag(
    dag_id="train_weekly",
    description="Train, evaluate and register the four models; apply the promotion gate",
    schedule=CronDataIntervalTimetable("0 3 * * 0", timezone="UTC"),
    start_date=datetime(2025, 10, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        **pipeline.DEFAULT_TASK_ARGS,
        "on_failure_callback": notify.failure_callbacks(),
    },
    params={"day": Param(None, type=["null", "string"], description="As-of day (YYYY-MM-DD)")},
    tags=["yidai", "models", "mlflow"],
)
def train_weekly() -> None:
    @task(pool=pipeline.WAREHOUSE_POOL, inlets=[FEATURES])
    def train_model(model_name: str, **context: Any) -> dict[str, Any]:
        """Point-in-time training set, fit, out-of-time evaluation, gate and registration,
        as of the last published features day (written in the MLflow run's notes)."""
        with pipeline.fail_fast():
            day, source = pipeline.resolve_training_day(context)
        return pipeline.run_training(model_name, day, day_source=source)

    @task(outlets=[MODELS], trigger_rule="all_done", retries=0)
    def promotion_report(trained: Any) -> dict[str, Any]:
        """Which new versions became champion or challenger and why; fails if one did not train."""
        return pipeline.promotion_report(trained)

    promotion_report(
        [train_model.override(task_id=f"train_{name}")(name) for name in pipeline.MODEL_NAMES]
    )


train_weekly()

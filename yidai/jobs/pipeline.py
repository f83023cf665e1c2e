"""Task-level entry points of the Airflow DAGs: the glue between a DAG run and the packages.

Each function takes the day a run processes and returns a small JSON-serialisable summary
(it becomes the task's XCom and log line).  Domain logic stays in the owning packages;
these functions only resolve the day, call one package function and summarise.  Nothing
here imports Airflow, so the same functions run from the CLI, the DAGs and the tests.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from features import publish_snapshot
from features.engine import build_features, build_features_history
from features.inputs import require_ingested_day, require_warehouse_day
from models.challengers import credit_models, train_scorecard_challenger
from models.registry import set_run_note
from models.training import train_model
from yidai.core import catalogue
from yidai.core.contracts import CONTRACTS
from yidai.core.errors import YidaiError
from yidai.core.settings import get_settings
from yidai.core.spark import engine_name
from yidai.core.warehouse import connect_existing, connect_tables
from yidai.ingest import ingest_landing
from yidai.jobs.analytics.dashboard_tables import read_meta
from yidai.jobs.analytics.portfolio_tables import PORTFOLIO_AREA, publish_portfolio
from yidai.jobs.analytics.scored import SCORED_AREA, publish_scored_applications
from yidai.jobs.limits.refresh import refresh_limits

log = logging.getLogger(__name__)

#: Pool of one slot shared by every task that opens the DuckDB warehouse.
WAREHOUSE_POOL = "duckdb_warehouse"
#: Asset updated when the features of a day are built and the serving snapshot published.
FEATURES_ASSET_NAME = "yidai_features_daily"
FEATURES_ASSET_URI = "yidai://warehouse/features/daily"
#: Asset updated when the model registry's aliases may have changed.
MODELS_ASSET_NAME = "yidai_models"
MODELS_ASSET_URI = "yidai://mlflow/registry"

#: DuckDB memory bound of the feature build (it spills to disk beyond it).
FEATURE_BUILD_MEMORY_LIMIT = "4GB"

#: Registered model names, in training order (``yidai.core.catalogue``).
MODEL_NAMES: tuple[str, ...] = catalogue.MODEL_NAMES

#: Tasks whose failure is an alert: the DAG run fails (and notifies) but the rest of the
#: pipeline carries on.  Landing-quality and drift checks; model training (a model that
#: cannot be retrained keeps its current champion) and the gate report that names it.
ALERT_TASKS: frozenset[str] = frozenset(
    {
        "check_landing",
        "check_thresholds",
        "promotion_report",
        *(f"train_{name}" for name in MODEL_NAMES),
    }
)

#: ``default_args`` of every DAG: retries with backoff, a bounded run time.
DEFAULT_TASK_ARGS: dict[str, Any] = {
    "owner": "yidai-risk",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=2),
}


class PermanentError(YidaiError):
    """A failure a retry cannot heal (no day, no landing files, a day never ingested, bad
    configuration): the task fails at once, without retries (see :func:`fail_fast`)."""


#: How to give a manual run its day, quoted by the "no day" errors.
HOW_TO_PASS_DAY = (
    'trigger it with the param day, e.g. airflow dags trigger DAG_ID --conf \'{"day": '
    '"YYYY-MM-DD"}\' (or a logical date: --logical-date YYYY-MM-DD)'
)


@contextmanager
def fail_fast() -> Iterator[None]:
    """Inside an Airflow task: a :class:`PermanentError` or an invalid ``YIDAI_`` setting
    fails the task at once (``AirflowFailException``: no retries); anything else (a lost
    connection, a locked file) keeps the DAG's retries."""
    try:
        yield
    except (PermanentError, ValidationError) as exc:
        # deferred: only Airflow tasks call this; the CLI and the tests run without Airflow
        from airflow.sdk.exceptions import AirflowFailException

        kind = "bad configuration" if isinstance(exc, ValidationError) else "permanent"
        raise AirflowFailException(f"{kind} (not retried): {exc}") from exc


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError as exc:
            raise PermanentError(f"day {value!r} is not an ISO date (YYYY-MM-DD)") from exc
    raise PermanentError(f"day {value!r} is not a date")


def _event_days(events: Mapping[Any, Iterable[Any]] | None) -> list[date]:
    days: list[date] = []
    for asset_events in (events or {}).values():
        for event in asset_events:
            extra = getattr(event, "extra", None) or {}
            if extra.get("day"):
                days.append(_as_date(extra["day"]))
    return days


def resolve_day(context: Mapping[str, Any]) -> date:
    """The day a DAG run processes, from its Airflow task context.

    In order: the ``day`` param (manual runs), the latest ``day`` carried by the
    triggering asset events (asset-scheduled runs), the run's logical date (scheduled
    runs: the start of the daily data interval; a manual run triggered with one).  A run
    with none of them fails at once (:class:`PermanentError`) saying how to pass the day.
    """
    params = context.get("params") or {}
    if params.get("day"):
        return _as_date(params["day"])
    event_days = _event_days(context.get("triggering_asset_events"))
    if event_days:
        return max(event_days)
    logical = context.get("logical_date")
    if logical is not None:
        return _as_date(logical)
    raise PermanentError(f"this run has no day: {HOW_TO_PASS_DAY}")


def resolve_training_day(context: Mapping[str, Any]) -> tuple[date, str]:
    """The as-of day of a training run, and where it came from (for the run's notes).

    In order: the ``day`` param; the day of the latest features asset event (the last
    published features day, read through the task's ``inlet_events``); the day before the
    end of the run's data interval (the last day ``ingest_daily`` could have published by
    then).  Not the interval's start, which is a whole week behind the data.
    """
    params = context.get("params") or {}
    if params.get("day"):
        return _as_date(params["day"]), "the day param"
    last_event = _last_features_event(context.get("inlet_events"))
    if last_event is not None:
        days = _event_days({"features": [last_event]})
        if days:
            return days[-1], "the last features asset event (the last published features day)"
    interval_end = context.get("data_interval_end")
    if interval_end is not None:
        day = _as_date(interval_end) - timedelta(days=1)
        return day, "the day before the end of the run's data interval"
    return resolve_day(context), "the run's logical date"


def _last_features_event(inlet_events: Any) -> Any:
    """The latest features asset event among a task's ``inlet_events`` (None if none)."""
    if inlet_events is None:
        return None
    # deferred: only Airflow tasks pass inlet events; the CLI and the tests run without it
    from airflow.sdk import Asset

    try:
        events = inlet_events[Asset(name=FEATURES_ASSET_NAME, uri=FEATURES_ASSET_URI)]
    except KeyError:
        return None
    if hasattr(events, "ascending"):  # Airflow's lazy accessor: fetch only the newest
        events = events.ascending(False).limit(1)
        return next(iter(events), None)
    return events[-1] if len(events) else None


def summarise(result: object) -> dict[str, Any]:
    """A JSON-friendly summary of a package function's result (for XCom and logs)."""
    if result is None:
        return {}
    if isinstance(result, Mapping):
        raw = dict(result)
    elif hasattr(result, "model_dump"):
        raw = result.model_dump()
    elif dataclasses.is_dataclass(result) and not isinstance(result, type):
        raw = dataclasses.asdict(result)
    else:
        return {"result": str(result)}
    return {str(k): _jsonable(v) for k, v in raw.items()}


def _jsonable(value: object) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)


def landing_days() -> list[date]:
    """Every day with a ``dt=YYYY-MM-DD`` partition in the landing zone, sorted."""

    landing = get_settings().landing
    if not landing.is_dir():
        raise PermanentError(f"landing zone {landing} does not exist; run `yidai simulate` first")
    days = {
        date.fromisoformat(part.name[3:])
        for part in landing.glob("*/dt=*")
        if part.is_dir() and len(part.name) == 13
    }
    if not days:
        raise PermanentError(f"landing zone {landing} has no dt=YYYY-MM-DD partitions")
    return sorted(days)


def daily_sources() -> list[str]:
    """The sources that land a partition every day (``YIDAI_LANDING_DAILY_SOURCES``)."""
    names = [n.strip() for n in get_settings().landing_daily_sources.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTRACTS]
    if unknown or not names:
        raise PermanentError(
            f"YIDAI_LANDING_DAILY_SOURCES names no known source: {', '.join(unknown) or '(empty)'}"
            f" (known: {', '.join(sorted(CONTRACTS))})"
        )
    return names


# ------------------------------------------------------------------ ingest_daily
def run_ingest(day: date, *, history: bool = False) -> dict[str, Any]:
    """Ingest the landing files of ``day`` (with ``history``: of every day up to it).

    Files that fail (corrupt, wrongly typed) are recorded in the manifest and listed in the
    summary; :func:`check_landing` turns them into a loud failure without blocking the
    features of the files that did load.
    """

    settings = get_settings()
    days = [d for d in landing_days() if d <= day] if history else [day]
    if not days:
        raise PermanentError(f"no landing day on or before {day}")
    if not any(any(settings.landing.glob(f"*/dt={d.isoformat()}/*")) for d in days):
        raise PermanentError(f"no landing files to ingest under {settings.landing} for {day}")
    if engine_name() == "spark":  # the lake, checked by Spark (yidai.ingest.spark)
        # heavy: pyspark starts only on the Spark engine
        from yidai.ingest.spark import ingest_landing_spark

        report = ingest_landing_spark(settings.landing, settings.lake, days=days)
    else:
        report = ingest_landing(settings.landing, settings.warehouse, days=days)
    summary = {
        "day": day.isoformat(),
        "days": len(days),
        "files_loaded": len(report.with_status("loaded")),
        "files_skipped": len(report.with_status("skipped")),
        "files_failed": [f.describe_error() for f in report.failed],
        "rows_landed": report.rows_landed,
        "rows_loaded": report.rows_loaded,
        "rows_quarantined": report.rows_quarantined,
        "reconciled": report.rows_landed == report.rows_loaded + report.rows_quarantined,
        "seconds": round(report.seconds, 2),
    }
    log.info("ingest %s: %s", day, summary)
    return summary


def check_landing(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Fail, naming the files, when a landing file failed or a batch did not reconcile."""
    problems = list(summary.get("files_failed") or [])
    if not summary.get("reconciled", False):
        problems.append(
            f"rows landed {summary.get('rows_landed')} != loaded {summary.get('rows_loaded')}"
            f" + quarantined {summary.get('rows_quarantined')}"
        )
    if problems:
        raise YidaiError(f"landing of {summary.get('day')}: " + "; ".join(problems))
    return dict(summary)


def run_feature_build(day: date, *, backfill: bool = False) -> dict[str, Any]:
    """Build every feature set as of ``day`` (re-running a day replaces it).

    ``backfill`` also rebuilds the point-in-time feature tables for every landing day
    before ``day`` (slow and memory-hungry at scale; training does not need it: training
    sets compute their features as of each decision from the raw tables).
    """

    if engine_name() == "spark":  # daily profiles into the lake (features.spark)
        # heavy: pyspark starts only on the Spark engine
        from features.spark import build_features_spark

        days = [d for d in landing_days() if d < day] if backfill else []
        built: dict[str, int] = {}
        for each in [*days, day]:  # the point-in-time history: one build per day
            for key, n in build_features_spark(each).items():
                built[key] = built.get(key, 0) + n
        return {"day": day.isoformat(), "engine": "spark", "backfill": backfill, "rows": built}
    warehouse = get_settings().warehouse
    con = connect_existing(warehouse, memory_limit=FEATURE_BUILD_MEMORY_LIMIT)
    try:
        try:
            require_ingested_day(con, day, warehouse)
        except YidaiError as exc:  # the same warehouse, the same answer on a retry
            raise PermanentError(str(exc)) from exc
        written: dict[str, int] = {}
        if backfill:
            first = landing_days()[0]
            if first < day:
                written.update(build_features_history(con, first, day - timedelta(days=1)))
        for key, rows in build_features(con, day).items():
            written[key] = written.get(key, 0) + rows
    finally:
        con.close()
    return {"day": day.isoformat(), "backfill": backfill, "rows": written}


def publish_serving(day: date) -> dict[str, Any]:
    """Publish the online feature snapshot of ``day`` (atomic pointer swap)."""

    settings = get_settings()
    if engine_name() == "spark":  # from the profiles Spark wrote to the lake
        # heavy: pyspark's module of the features (no session is started to publish)
        from features.spark import publish_snapshot_spark

        published = publish_snapshot_spark(settings.serving, day)
    else:
        published = publish_snapshot(settings.warehouse, settings.serving, day)
    return {"day": day.isoformat(), "snapshots": {k: str(v) for k, v in published.items()}}


def publish_portfolio_tables(day: date) -> dict[str, Any]:
    """Publish the dashboards' portfolio and fraud tables as of ``day`` (warehouse read-only)."""

    version = publish_portfolio(as_of=day)
    area = get_settings().serving / PORTFOLIO_AREA
    return {"day": day.isoformat(), "version": version, "area": str(area)}


# ---------------------------------------------------------- merchant_limits_daily
def run_limits_refresh(day: date, *, force_reason: str | None = None) -> dict[str, Any]:
    """Re-underwrite every merchant's line as of ``day`` and publish the new limits
    (``force_reason``: override the circuit breaker, see :mod:`yidai.jobs.limits.breaker`)."""

    result = refresh_limits(day, force_reason=force_reason)
    return {
        "day": day.isoformat(),
        "version": result.version,
        "published": result.published,
        "reused": result.reused,
        "summary": summarise(result.summary),
    }


# ------------------------------------------------------------------- train_weekly
def run_training(model_name: str, day: date, *, day_source: str = "") -> dict[str, Any]:
    """Train, evaluate, register and gate ``model_name`` on the data known at ``day``; the
    MLflow run's notes say which day and why (``day_source``).  A credit model also gets its
    scorecard challenger (whose failure is reported, not fatal: the champion's training
    stands on its own)."""

    result = train_model(model_name, as_of=day)
    note = f"Trained as of {day.isoformat()}" + (f", from {day_source}." if day_source else ".")
    summary = {"day": day.isoformat(), "as_of_from": day_source, **summarise(result)}
    if summary.get("run_id"):
        set_run_note(str(summary["run_id"]), note)
    log.info("%s: %s", model_name, note)
    if model_name in credit_models():
        try:
            card = train_scorecard_challenger(model_name, as_of=day)
            summary["scorecard"] = {"version": card.version, "oot_auc": card.metrics["oot_auc"]}
        except YidaiError as exc:
            log.warning("the scorecard challenger of %s was not trained: %s", model_name, exc)
            summary["scorecard"] = {"error": str(exc)}
    return summary


def promotion_report(trained: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Log each new version's gate decision; raise naming the models that did not train.

    ``trained`` holds one training summary per model (``None`` for a model whose training
    task failed: its current champion stays in place).
    """
    results = [t for t in trained if t]
    report = {
        str(t["name"]): {
            "version": t.get("version"),
            "alias": t.get("alias"),
            "reason": t.get("gate_reason"),
        }
        for t in results
    }
    for name, row in report.items():
        log.info("%s v%s -> %s: %s", name, row["version"], row["alias"], row["reason"])
    missing = [name for name in MODEL_NAMES if name not in report]
    if missing:
        raise YidaiError(
            f"not retrained (see their train_<model> tasks; the current champions stay): "
            f"{', '.join(missing)}"
        )
    return report


# --------------------------------------------------------------- monitoring_daily
def publish_scored(day: date) -> dict[str, Any]:
    """Score every credit application up to ``day`` with the champions (and challengers)
    and publish them for model monitoring and the policy simulator (warehouse read-only)."""

    version = publish_scored_applications(as_of=day)
    meta = read_meta(get_settings().serving / SCORED_AREA, version)
    return {"day": day.isoformat(), "version": version, "models": meta.get("models")}


def run_monitoring(day: date) -> dict[str, Any]:
    """Compute and publish drift, performance and decision rates as of ``day``; the summary
    also says what monitoring could see (performance per model, newest data per table)."""
    # heavy: loads SQLAlchemy
    from yidai.jobs import monitoring

    try:
        require_warehouse_day(None, day)  # the active engine's tables
    except YidaiError as exc:  # the same warehouse, the same answer on a retry
        raise PermanentError(str(exc)) from exc
    report = monitoring.run_monitoring(day)
    con = connect_tables(read_only=True)
    try:
        latest = monitoring.latest_data_day(con)
    finally:
        con.close()
    return {
        **report.summary(),
        "performance_computable": monitoring.performance_computable(report.performance),
        "latest_data_day": {k: v.isoformat() if v else None for k, v in latest.items()},
    }


def check_monitoring(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Raise naming what was missing if monitoring was blind (no champion, drift or
    performance not computable, data staler than ``YIDAI_MONITORING_MAX_STALENESS_DAYS``),
    and naming model and feature if any PSI passed the report's threshold (both at once
    when both happened)."""
    # heavy: loads SQLAlchemy
    from yidai.jobs import monitoring

    problems: list[YidaiError] = []
    try:
        monitoring.check_not_blind(
            summary,
            latest_days=summary.get("latest_data_day") or {},
            performance=summary.get("performance_computable") or {},
            max_staleness_days=get_settings().monitoring_max_staleness_days,
        )
    except monitoring.BlindMonitoringError as exc:
        problems.append(exc)
    threshold = float(summary.get("threshold") or monitoring.DEFAULT_PSI_THRESHOLD)
    try:
        monitoring.check_drift(summary, threshold=threshold)
    except monitoring.DriftError as exc:
        problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise monitoring.BlindMonitoringError("; ".join(str(p) for p in problems))
    return {"as_of": summary.get("as_of"), "max_psi": summary.get("max_psi"), "drifted": 0}

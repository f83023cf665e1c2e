"""Cached access to the published files the dashboards read (never the DuckDB warehouse).

Every loader keys its cache on the published file's path and modification time, so a new
publication (a new version folder behind the ``CURRENT`` pointer) is picked up on the next
rerun while unchanged files are read once.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from yidai.core.errors import YidaiError
from yidai.core.settings import get_settings
from yidai.jobs.analytics import dashboard_tables as published
from yidai.jobs.analytics.tiers import payment_tiers as live_tiers
from yidai.jobs.limits import (
    current_limits_pointer,
    read_limit_runs,
    read_limits_summary,
    read_limits_table,
)


def serving_area(area: str) -> Path:
    """Folder of one published area under ``settings.serving``."""
    return get_settings().serving / area


@st.cache_data(show_spinner=False, max_entries=128)
def _read_parquet(path: str, stamp: int) -> pd.DataFrame:
    return pd.read_parquet(path)


def file_stamp(path: Path) -> int:
    """Cache key part that changes when the file is rewritten."""
    return path.stat().st_mtime_ns


def published_table(area: str, table: str) -> pd.DataFrame | None:
    """The current version of a published table, or None if it was never published."""
    path = published.table_path(serving_area(area), table)
    if path is None:
        return None
    try:
        return _read_parquet(str(path), file_stamp(path))
    except FileNotFoundError:  # pruned between the pointer read and the file read
        path = published.table_path(serving_area(area), table)
        return None if path is None else _read_parquet(str(path), file_stamp(path))


def published_meta(area: str) -> dict[str, object]:
    """The ``meta.json`` of an area's current version (empty if none)."""
    return published.read_meta(serving_area(area))


def payment_tiers() -> tuple[tuple[str, float], ...]:
    """Amount tiers of the live payment policy."""

    return live_tiers()


@st.cache_data(show_spinner=False, ttl=15, max_entries=64)
def _audit_query(
    url: str, decision_id: str | None, entity_id: str | None, limit: int
) -> pd.DataFrame:
    # heavy: loads SQLAlchemy
    from yidai.jobs.analytics.decisions import find_decisions

    return find_decisions(url, decision_id=decision_id, entity_id=entity_id, limit=limit)


def audit_decisions(
    decision_id: str | None = None, entity_id: str | None = None, limit: int = 500
) -> pd.DataFrame:
    """Decisions from the audit store (read-only, cached for 15 s), newest first."""
    return _audit_query(get_settings().audit_url, decision_id, entity_id, limit)


@st.cache_data(show_spinner=False, ttl=60)
def _payment_decisions(url: str) -> pd.DataFrame:
    # heavy: loads SQLAlchemy
    from yidai.jobs.analytics.decisions import payment_decisions as read

    return read(url)


def payment_decisions() -> pd.DataFrame:
    """Payment-risk decisions from the audit store (read-only, cached for a minute)."""
    return _payment_decisions(get_settings().audit_url)


@st.cache_data(show_spinner=False, max_entries=16)
def _limits_table(serving: str, name: str, version: str) -> pd.DataFrame:

    return read_limits_table(Path(serving), name, version)


def limits_version() -> str | None:
    """The live merchant limits version (None if no refresh was published)."""

    return current_limits_pointer(get_settings().serving)


def limits_table(name: str) -> pd.DataFrame | None:
    """A table of the live limits version: ``limits``, ``changes`` or ``summary_by_grade``."""
    version = limits_version()
    if version is None:
        return None
    try:
        return _limits_table(str(get_settings().serving), f"{name}.parquet", version)
    except FileNotFoundError:
        return None


def limits_summary() -> dict[str, object]:
    """The live limits run's summary (empty if none)."""

    version = limits_version()
    return {} if version is None else read_limits_summary(get_settings().serving, version)


def limit_runs() -> pd.DataFrame:
    """One summary row per refresh run (empty if none)."""

    return read_limit_runs(get_settings().serving)


def scored_products() -> list[str]:
    """Credit products with published scored applications, in product order."""
    area = serving_area("applications")
    return [p for p in ("personal", "merchant", "sme") if published.table_path(area, p) is not None]


@st.cache_data(show_spinner=False, ttl=15, max_entries=64)
def _find_any(url: str, text: str, limit: int) -> tuple[pd.DataFrame, str]:
    # heavy: loads SQLAlchemy
    from yidai.jobs.analytics.explorer import find_by_any_id

    return find_by_any_id(url, text, limit)


def find_decisions_by_any_id(text: str, limit: int = 500) -> tuple[pd.DataFrame, str]:
    """Decisions matching a decision, customer, merchant, SME or account id, and how."""
    return _find_any(get_settings().audit_url, text, limit)


@st.cache_resource(show_spinner=False, max_entries=8)
def _population(serving: str, feature_set: str, stamp: str) -> dict[str, object]:
    # deferred: only the decision explorer reads snapshots
    from yidai.jobs.analytics.explorer import snapshot_population

    return dict(snapshot_population(Path(serving), feature_set))


def feature_population(feature_set: str) -> dict[str, object]:
    """Sorted values of each feature over the live snapshot of ``feature_set`` (cached per
    snapshot)."""
    # heavy: features.serving reads the snapshot pointer
    from features.serving import current_pointer

    serving = get_settings().serving
    meta = current_pointer(serving, feature_set)
    if meta is None:
        return {}
    return _population(str(serving), feature_set, str(meta["snapshot_id"]))


@st.cache_resource(show_spinner=False, max_entries=8)
def _model(name: str, alias: str) -> object | None:
    # heavy: MLflow
    from models.registry import load_model

    try:
        return load_model(name, alias)
    except YidaiError:
        return None


def registered_model(model_version: str) -> object | None:
    """The loaded model of an audited ``"<name>:<version>"`` if it is still the champion or
    the challenger (None otherwise: its contributions cannot be recomputed here)."""
    # deferred: only the decision explorer asks
    from yidai.jobs.analytics.explorer import split_model_version

    name, version = split_model_version(model_version)
    uri = get_settings().tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None  # no registry in this home (nothing was trained): nothing to load
    for alias in ("champion", "challenger"):
        model = _model(name, alias)
        if model is not None and str(getattr(model, "version", "")) == version:
            return model
    return None

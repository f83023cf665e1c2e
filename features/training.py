"""Spines (who was decided when, with which label) and point-in-time training sets.

A decision at time t reads the profiles as of the close of the day before t's day (exactly
what the online snapshot holds when t happens) plus request-time features of t computed by
:func:`features.request.request_features_batch`; nothing at or after t can reach a row.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from features.declarations import FeatureSet
from features.definitions import CREDIT_FEATURE_SETS, FRAUD_FEATURE_SET
from features.engine import compute_profiles_for_keys, fetch_one, resolve_feature_sets
from features.request import (
    FRAUD_REQUEST_FIELDS,
    US_PER_DAY,
    US_PER_HOUR,
    prepare_history,
    request_features_batch,
    to_us,
)
from features.sources import FRAUD_EVENTS_SQL, FRAUD_REF_TYPE, SOURCES
from yidai.core.contracts import PRODUCTS
from yidai.core.errors import YidaiError
from yidai.core.settings import BAD_DAYS_PAST_DUE, Settings, get_settings
from yidai.core.spark import engine_name
from yidai.core.warehouse import ensure_tables

SPINE_COLUMNS = ("entity_id", "decision_ts", "label")

log = logging.getLogger(__name__)

#: Fraud: how much labelled history to train on, and the share of legitimate events kept in
#: the training window (all frauds are kept; calibration and test windows are complete).
FRAUD_HISTORY_DAYS = 240
FRAUD_TRAIN_NEGATIVE_SHARE = 0.25


def _settings_default(value: int | None, name: str) -> int:
    if value is not None:
        return value

    result: int = getattr(get_settings(), name)
    return result


def credit_spine(
    con: duckdb.DuckDBPyConnection,
    product: str,
    as_of: dt.date,
    performance_months: int | None = None,
    *,
    include_declined: bool = False,
) -> pd.DataFrame:
    """Applications of ``product`` up to ``as_of`` with their default label.

    label = 1 if the account the application opened or reviewed (a merchant's or an SME's
    one line) reached ``BAD_DAYS_PAST_DUE`` (90) days past due within ``performance_months``
    of the decision, to the day: a month-end tape row's first miss (its date less its days past due)
    due at least 90 days before the window's end, read on the rows up to the month end that
    follows the window's end, so a decision on any day of the month has the same exposure.
    Only approved accounts booked at least ``performance_months`` before the end of ``as_of``
    are labelled (on the rows known by then: with ``as_of`` a month end, every one is read
    in full); by default the others are left out, with ``include_declined`` every
    application is kept (label <NA>), for scoring and policy simulation.  Columns:
    entity_id, decision_ts, label, application_id, product, requested_amount, decision,
    approved_limit.
    """
    if product not in PRODUCTS:
        raise YidaiError(f"unknown product {product!r}; known: {', '.join(PRODUCTS)}")
    months = _settings_default(performance_months, "performance_months")
    if months < 1:
        raise YidaiError(f"performance_months must be >= 1, got {months}")
    ensure_tables(con)
    end = as_of + dt.timedelta(days=1)
    sql = f"""
    WITH apps AS (
      SELECT application_id, applicant_id, ts, requested_amount, decision, approved_limit,
             coalesce(account_id, application_id) AS account_id,
             decision = 'approved' AND ts + INTERVAL {months} MONTH <= CAST(? AS TIMESTAMP)
               AS matured
      FROM loan_applications WHERE product = ? AND ts < CAST(? AS TIMESTAMP)),
    perf AS (
      SELECT a.application_id, max(p.days_past_due) AS worst
      FROM apps a JOIN loan_performance p ON p.account_id = a.account_id
      WHERE a.matured AND p.snapshot_date >= a.ts
        AND p.snapshot_date <= last_day(a.ts + INTERVAL {months} MONTH)
        AND p.snapshot_date < CAST(? AS TIMESTAMP)
        AND CAST(p.snapshot_date AS DATE) - p.days_past_due
          <= CAST(a.ts AS DATE) + INTERVAL {months} MONTH - INTERVAL {BAD_DAYS_PAST_DUE} DAY
      GROUP BY a.application_id)
    SELECT a.applicant_id AS entity_id, a.ts AS decision_ts,
           CASE WHEN a.matured
             THEN CAST(coalesce(perf.worst, 0) >= {BAD_DAYS_PAST_DUE} AS INTEGER) END AS label,
           a.application_id, ? AS product, a.requested_amount, a.decision, a.approved_limit
    FROM apps a LEFT JOIN perf USING (application_id)
    {"" if include_declined else "WHERE a.matured"}
    ORDER BY a.ts, a.application_id
    """
    df = con.execute(sql, [end, product, end, end, product]).df()
    df["label"] = df["label"].astype("Int64")
    return df


def fraud_spine(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    label_delay_days: int | None = None,
    *,
    start: dt.date | None = None,
) -> pd.DataFrame:
    """POS card transactions and outgoing payments as events, labelled by the fraud reports
    known at the end of ``as_of``; events of the last ``label_delay_days`` days are left out
    (their reports may not have arrived).  Columns: entity_id (= payer_id), decision_ts, label,
    then the event's fields (event_id, event_type, ts, payer_id, counterpart_id, ...).
    """
    delay = label_delay_days if label_delay_days is not None else fraud_label_delay(con, as_of)
    if delay < 0:
        raise YidaiError(f"label_delay_days must be >= 0, got {delay}")
    ensure_tables(con)
    known_until = as_of + dt.timedelta(days=1)
    events_until = known_until - dt.timedelta(days=delay)
    lo = start or dt.date(1900, 1, 1)
    sql = f"""
    SELECT e.payer_id AS entity_id, e.ts AS decision_ts,
           CAST(EXISTS (SELECT 1 FROM fraud_reports r WHERE r.ref_id = e.event_id
                 AND r.ref_type = {FRAUD_REF_TYPE} AND r.reported_at < CAST(? AS TIMESTAMP))
                AS INTEGER) AS label,
           e.*
    FROM ({FRAUD_EVENTS_SQL}) e
    WHERE e.ts < CAST(? AS TIMESTAMP) AND e.ts >= CAST(? AS TIMESTAMP)
    ORDER BY e.ts, e.event_id
    """
    df = con.execute(sql, [known_until, events_until, lo]).df()
    df["label"] = df["label"].astype("Int64")
    return df


def _validate_spine(con: duckdb.DuckDBPyConnection, spine: pd.DataFrame, fs_name: str) -> None:
    if not isinstance(spine, pd.DataFrame):
        raise YidaiError("the spine must be a pandas DataFrame")
    missing = [c for c in SPINE_COLUMNS if c not in spine.columns]
    if missing:
        raise YidaiError(f"the spine lacks the columns {missing} (needs {list(SPINE_COLUMNS)})")
    if spine["entity_id"].isna().any():
        raise YidaiError(f"the spine has {int(spine['entity_id'].isna().sum())} null entity_id")
    ts = pd.to_datetime(spine["decision_ts"], errors="coerce")
    if ts.isna().any():
        raise YidaiError(
            f"the spine has {int(ts.isna().sum())} missing or unreadable decision_ts values"
        )
    row = fetch_one(
        con,
        "SELECT max(m) FROM (SELECT max(ts) AS m FROM pos_transactions UNION ALL "
        "SELECT max(ts) FROM payments UNION ALL SELECT max(ts) FROM mall_orders UNION ALL "
        "SELECT max(ts) FROM loan_applications)",
    )
    latest = pd.Timestamp(row[0]) if row and row[0] is not None else None
    now = pd.Timestamp.now()
    limit = now if latest is None else min(now, latest.normalize() + pd.Timedelta(days=1))
    future = ts > limit
    if future.any():
        raise YidaiError(
            f"the spine has {int(future.sum())} decision_ts after the data "
            f"(latest usable {limit}), e.g. {ts[future].iloc[0]}: features would be unknown"
        )
    if resolve_feature_sets([fs_name])[0].entity == "payer":  # every payment-fraud version
        lacking = [c for c in FRAUD_REQUEST_FIELDS if c not in spine.columns]
        if lacking:
            raise YidaiError(f"a {fs_name} spine needs the event fields {lacking} (fraud_spine)")


def _profiles_at(
    con: duckdb.DuckDBPyConnection,
    fs_name: str,
    entity: str,
    entity_ids: pd.Series,
    days: pd.Series,
) -> pd.DataFrame:
    """Profile columns for each (entity_id, as_of) row, row-aligned with the inputs."""
    fs = resolve_feature_sets([fs_name])[0]
    cols = fs.profile_columns(entity)
    wanted = pd.DataFrame({"entity_id": entity_ids.astype(object).to_numpy(), "as_of": days})
    known = wanted.dropna(subset=["entity_id"]).drop_duplicates()
    if engine_name() == "spark":  # the same declared queries on Spark, over the lake
        # heavy: pyspark starts only on the Spark engine
        from features.spark import profiles_for_keys_frame

        prof = profiles_for_keys_frame(fs, entity, known) if len(known) else None
    else:
        prof = _profiles_duckdb(con, fs, entity, known)
    out = wanted.copy()
    out["as_of"] = pd.to_datetime(out["as_of"]).astype("datetime64[us]")
    if prof is None:
        for c in cols:
            f = fs.feature(c)
            out[c] = np.nan if f.fill is None else f.fill
        return out[cols].reset_index(drop=True)
    prof["as_of"] = pd.to_datetime(prof["as_of"]).astype("datetime64[us]")
    merged = out.merge(prof, on=["entity_id", "as_of"], how="left", validate="many_to_one")
    for c in cols:  # entities absent from keys (null ids) get what an empty profile yields
        f = fs.feature(c)
        if f.fill is not None:
            merged[c] = merged[c].fillna(f.fill)
    return merged[cols].reset_index(drop=True)


def _profiles_duckdb(
    con: duckdb.DuckDBPyConnection, fs: FeatureSet, entity: str, known: pd.DataFrame
) -> pd.DataFrame | None:
    """The profiles of the (entity_id, as_of) rows of ``known`` computed by DuckDB."""
    keys = f"__keys_{uuid.uuid4().hex[:8]}"
    con.register(f"{keys}_df", known)
    con.execute(
        f"CREATE TEMP TABLE {keys} AS SELECT CAST(entity_id AS VARCHAR) AS entity_id, "
        f"CAST(as_of AS DATE) AS as_of FROM {keys}_df"
    )
    con.unregister(f"{keys}_df")
    try:
        return compute_profiles_for_keys(con, fs, entity, keys).df() if len(known) else None
    finally:
        con.execute(f"DROP TABLE IF EXISTS {keys}")


def _fraud_history(con: duckdb.DuckDBPyConnection, spine: pd.DataFrame) -> dict[str, np.ndarray]:
    lo = spine["decision_ts"].min() - pd.Timedelta(days=1)
    hi = spine["decision_ts"].max()
    df = con.execute(
        f"SELECT payer_id, ts, amount, counterpart_id, device_id, channel "
        f"FROM ({FRAUD_EVENTS_SQL}) WHERE ts >= ? AND ts < ?",
        [lo.to_pydatetime(), hi.to_pydatetime()],
    ).df()
    return prepare_history(df)


def _fraud_seen_before_today(
    con: duckdb.DuckDBPyConnection, spine: pd.DataFrame
) -> dict[str, np.ndarray]:
    """Per pair field: did the payer use this value before the event's day (SQL, offline)."""
    frame = pd.DataFrame(
        {
            "i": np.arange(len(spine)),
            "payer_id": spine["payer_id"].astype(object).to_numpy(),
            "day": pd.to_datetime(spine["decision_ts"]).dt.normalize().to_numpy(),
            **{f: spine[f].astype(object).to_numpy() for f in ("counterpart_id", "device_id")},
            "channel": spine["channel"].astype(object).to_numpy(),
        }
    )
    name = f"__spine_{uuid.uuid4().hex[:8]}"
    con.register(name, frame)
    out: dict[str, np.ndarray] = {}
    try:
        for field in ("counterpart_id", "device_id", "channel"):
            got = con.execute(
                f"""
                WITH first AS (SELECT payer_id, {field} AS v, min(ts) AS first_ts
                               FROM ({FRAUD_EVENTS_SQL}) WHERE {field} IS NOT NULL
                               GROUP BY ALL)
                SELECT s.i, coalesce(f.first_ts < s.day, false) AS seen
                FROM {name} s LEFT JOIN first f ON f.payer_id = s.payer_id AND f.v = s.{field}
                ORDER BY s.i"""
            ).fetchnumpy()
            out[field] = np.asarray(got["seen"], dtype=bool)
    finally:
        con.unregister(name)
    return out


def build_training_set(
    con: duckdb.DuckDBPyConnection, spine: pd.DataFrame, feature_set: str
) -> pd.DataFrame:
    """The spine's columns (all kept) followed by the feature set's columns, in order, each
    as known just before the row's ``decision_ts`` (profiles as of the previous close, plus
    request-time features).  ``df[FEATURE_SETS[feature_set].columns]`` is the model input.
    """
    fs = resolve_feature_sets([feature_set])[0]
    ensure_tables(con)
    _validate_spine(con, spine, fs.name)
    clash = [c for c in fs.columns if c in spine.columns]
    if clash:
        raise YidaiError(f"the spine already has feature columns {clash}")
    spine = spine.reset_index(drop=True)
    decision = pd.to_datetime(spine["decision_ts"]).astype("datetime64[us]")
    spine = spine.assign(decision_ts=decision)
    day_before = decision.dt.normalize() - pd.Timedelta(days=1)
    id_columns = {"payer": "payer_id", "counterpart": "counterpart_id", "merchant": "merchant_id"}
    parts = []
    for entity in fs.profile_entities:
        ids = spine[id_columns[entity]] if fs.entity == "payer" else spine["entity_id"]
        parts.append(_profiles_at(con, fs.name, entity, ids, day_before))
    profiles = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=spine.index)
    requests = spine.copy()
    requests["ts"] = spine["decision_ts"]
    history: dict[str, np.ndarray] | None = None
    seen: dict[str, np.ndarray] | None = None
    if fs.entity == "payer":
        history = _fraud_history(con, spine) if len(spine) else None
        seen = _fraud_seen_before_today(con, spine) if len(spine) else None
    if len(spine) == 0:
        matrix = np.zeros((0, len(fs.columns)))
    else:
        matrix = request_features_batch(fs, profiles, requests, history, seen)
    features = pd.DataFrame(matrix, columns=fs.columns, index=spine.index)
    return pd.concat([spine, features], axis=1)


__all__ = [
    "CREDIT_FEATURE_SETS",
    "FRAUD_FEATURE_SET",
    "US_PER_DAY",
    "US_PER_HOUR",
    "build_training_set",
    "credit_spine",
    "fraud_spine",
    "to_us",
]


# ------------------------------------------------------------------ whole training frames
def source_first_days(con: Any, sources: Iterable[str]) -> dict[str, pd.Timestamp]:
    """The first day with an event of each of the daily ``sources`` (left out: none yet)."""
    firsts = {}
    for name in sorted(set(sources)):
        row = fetch_one(con, SOURCES[name].first_day_sql())
        if row is not None and row[0] is not None:
            firsts[name] = pd.Timestamp(row[0])
    return firsts


def complete_history_from(con: Any, feature_set: FeatureSet) -> dict[str, pd.Timestamp]:
    """Per feature of the set, the first decision day that sees its window complete: the
    first day of its source's events plus its window (:attr:`Feature.window_days`: a
    180-day POS turnover from half a year after the POS data begins, a line's 180-day
    utilisation from half a year after the first loan).  A feature without a window of days,
    or whose source has no event yet, counts from the set's earliest source day; empty
    without any event.  Decisions before it have a truncated value, which drifts against
    any later window by construction."""
    firsts = source_first_days(con, (f.source for f in feature_set.features if f.source in SOURCES))
    if not firsts:
        return {}
    earliest = min(firsts.values())
    return {
        f.name: firsts.get(f.source, earliest) + pd.Timedelta(days=f.window_days or 0)
        for f in feature_set.features
    }


def default_as_of(con: duckdb.DuckDBPyConnection) -> dt.date:
    """The last day with POS transactions or payments in the warehouse."""
    row = con.execute(
        "SELECT max(d) FROM (SELECT max(ts) AS d FROM pos_transactions "
        "UNION ALL SELECT max(ts) FROM payments)"
    ).fetchone()
    if row is None or row[0] is None:
        raise YidaiError("the warehouse holds no transactions; run `yidai ingest` first")
    value = row[0]
    return value.date() if isinstance(value, dt.datetime) else value


def credit_training_frame(
    con: duckdb.DuckDBPyConnection,
    product: str,
    feature_set: str,
    as_of: dt.date,
    performance_months: int,
    truth_dir: Path,
) -> pd.DataFrame:
    """Every matured application of ``product``: point-in-time features, ``id``, ``ts``,
    ``label``, and the simulator's ``true_pd`` when its truth exists (oracle only)."""
    spine = credit_spine(con, product, as_of, performance_months)
    frame = build_training_set(con, spine, feature_set)
    frame = frame.rename(columns={"decision_ts": "ts"}).assign(
        id=frame["application_id"], label=frame["label"].astype(int)
    )
    truth = _read_truth(truth_dir, "applications.parquet", ["application_id", "true_pd"])
    if truth is not None:
        frame = frame.merge(truth, on="application_id", how="left", validate="one_to_one")
    return frame


def fraud_training_frame(
    con: duckdb.DuckDBPyConnection,
    feature_set: str,
    as_of: dt.date,
    label_delay_days: int,
    truth_dir: Path,
    *,
    complete_days: int,
    seed: int,
) -> pd.DataFrame:
    """Labelled payment events of the last ``FRAUD_HISTORY_DAYS``: every fraud, and a
    ``FRAUD_TRAIN_NEGATIVE_SHARE`` of the legitimate events before the last
    ``complete_days`` (the calibration and test windows stay complete), sampled before the
    costly point-in-time build; ``true_fraud`` from the simulator's truth when it exists."""
    start = as_of - dt.timedelta(days=label_delay_days + FRAUD_HISTORY_DAYS)
    spine = fraud_spine(con, as_of, label_delay_days, start=start)
    if spine.empty:
        raise YidaiError(
            f"no labelled payment events between {start} and {as_of} - {label_delay_days}d"
        )
    ts = pd.to_datetime(spine["decision_ts"])
    complete_from = ts.max().normalize() - pd.Timedelta(days=complete_days)
    rng = np.random.default_rng(seed)
    keep = (
        (ts >= complete_from).to_numpy()
        | (spine["label"] == 1).to_numpy()
        | (rng.uniform(size=len(spine)) < FRAUD_TRAIN_NEGATIVE_SHARE)
    )
    frame = build_training_set(con, spine[keep].reset_index(drop=True), feature_set)
    frame = frame.drop(columns=["ts"]).rename(columns={"decision_ts": "ts"})
    frame = frame.assign(
        id=frame["event_id"], label=frame["label"].astype(int), card=frame["payer_id"]
    )
    truth = _read_truth(truth_dir, "fraud.parquet", ["ref_type", "ref_id"])
    if truth is not None:
        known = set(zip(truth["ref_type"], truth["ref_id"], strict=True))
        frame["true_fraud"] = [
            int((t, i) in known)
            for t, i in zip(frame["event_type"], frame["event_id"], strict=True)
        ]
    return frame


def _read_truth(folder: Path, name: str, columns: list[str]) -> pd.DataFrame | None:
    """A simulator truth table, or None when there is none (real bank data)."""
    path = folder / name
    if not path.exists():
        log.info("no simulator truth at %s: the oracle is skipped", path)
        return None
    return pd.read_parquet(path, columns=columns)


#: Reports are measured on payments at least this old, so that late reports have arrived.
LABEL_DELAY_MATURITY_DAYS = 120
#: Fewer reports than this make a measured label delay too noisy: set it instead.
MIN_REPORTS_FOR_DELAY = 30


def measured_label_delay(con: duckdb.DuckDBPyConnection, as_of: dt.date, share: float) -> int:
    """Days after a payment by which ``share`` of its fraud reports have arrived: the
    ``share`` quantile of ``reported_at - ts`` (rounded up to whole days) over the reports
    known at the end of ``as_of`` of events from ``FRAUD_HISTORY_DAYS`` to
    ``LABEL_DELAY_MATURITY_DAYS`` before it (younger events still miss their late reports)."""
    if not 0 < share < 1:
        raise YidaiError(f"the label-delay share must be in (0, 1), got {share}")
    ensure_tables(con)
    known_until = as_of + dt.timedelta(days=1)
    oldest = as_of - dt.timedelta(days=FRAUD_HISTORY_DAYS)
    youngest = as_of - dt.timedelta(days=LABEL_DELAY_MATURITY_DAYS)
    row = con.execute(
        f"""SELECT count(*), quantile_cont(epoch(r.reported_at - e.ts) / 86400.0, ?)
        FROM fraud_reports r JOIN ({FRAUD_EVENTS_SQL}) e
          ON r.ref_id = e.event_id AND r.ref_type = {FRAUD_REF_TYPE}
        WHERE r.reported_at < CAST(? AS TIMESTAMP)
          AND e.ts >= CAST(? AS TIMESTAMP) AND e.ts < CAST(? AS TIMESTAMP)""",
        [share, known_until, oldest, youngest],
    ).fetchone()
    n, delay = row if row is not None else (0, None)
    if n < MIN_REPORTS_FOR_DELAY or delay is None:
        raise YidaiError(
            f"only {n} fraud reports on payments between {oldest} and {youngest}: too few to "
            f"measure the label delay; set YIDAI_FRAUD_LABEL_DELAY_DAYS"
        )
    return max(0, math.ceil(delay))


def fraud_label_delay(
    con: duckdb.DuckDBPyConnection, as_of: dt.date, settings: Settings | None = None
) -> int:
    """The label delay of the settings (``get_settings()`` by default), or measured on the
    data when it is unset."""
    settings = settings or get_settings()
    if settings.fraud_label_delay_days is not None:
        return settings.fraud_label_delay_days
    delay = measured_label_delay(con, as_of, settings.fraud_label_delay_share)
    log.info(
        "fraud label delay: %.0f%% of reports arrive within %d days (measured as of %s)",
        100 * settings.fraud_label_delay_share,
        delay,
        as_of,
    )
    return delay

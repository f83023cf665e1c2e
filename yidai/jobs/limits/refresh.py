"""The nightly merchant limit refresh: re-underwrite every merchant, version, publish.

Steps (:func:`refresh_limits`): read the serving snapshot of the merchant policy's feature set
(``merchant_credit_v4``), score it with the ``merchant_pd`` champion, take current lines from
the previous limits version (or, the first time, from the warehouse loan book) and
outstanding balances / days past due from the warehouse, underwrite with the online merchant policy
(:func:`yidai.decisioning.credit.decide_credit_batch`), bound the change with
:func:`yidai.decisioning.merchant_limits.propose_line_changes`, write a version folder
(limits, change log, summary) and swap the ``CURRENT`` pointer.

The version id is ``<as-of>-<hash of the inputs>``: re-running a date with the same inputs
gives the same version (nothing rewritten).  A failure before the pointer swap publishes
nothing.  An older as-of than the published one is written but not published.

Missing inputs stop the run before anything is written: no warehouse or no ingested rows
for the as-of day, no published snapshot of that day (or an empty one), no ``merchant_pd``
champion, an empty loan book.  So does the circuit breaker (:mod:`yidai.jobs.limits.breaker`):
a change set moving more than ``YIDAI_LIMITS_MAX_CHANGE_SHARE`` of the book is refused
unless forced with a reason, which is logged and recorded in the version's manifest and
summary (``forced_reason``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features import load_snapshot
from features.definitions import get_feature_set
from features.inputs import require_warehouse_day
from features.request import request_features_batch
from models.registry import load_model
from yidai.core import publishing
from yidai.core.errors import YidaiError
from yidai.core.settings import Settings, get_settings
from yidai.core.warehouse import connect_tables, tables_location
from yidai.decisioning import exposure as defs
from yidai.decisioning.credit import decide_credit_batch
from yidai.decisioning.merchant_limits import (
    POLICY_FILE,
    REASONS,
    STATUSES,
    MerchantLimitPolicy,
    load_merchant_limit_policy,
    propose_line_changes,
)
from yidai.decisioning.policy import load_credit_policy
from yidai.jobs.limits.breaker import book_move, check_breaker
from yidai.jobs.limits.serving import (
    CHANGES_FILE,
    LIMITS_FILE,
    SUMMARY_BY_GRADE_FILE,
    SUMMARY_FILE,
    limits_root,
)

log = logging.getLogger(__name__)

UNSCORED_GRADE = "NA"
RUNS_FILE = "runs.parquet"


class PDModel(Protocol):
    """What the refresh needs of a loaded model (``models.registry.LoadedModel``)."""

    name: str
    version: str
    feature_names: list[str]

    def predict_pd(self, X: np.ndarray) -> np.ndarray: ...
    def score_points(self, pd_: np.ndarray) -> np.ndarray: ...
    def grade(self, pd_: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh run produced."""

    version: str
    as_of: date
    path: Path
    published: bool
    reused: bool  # the version existed already (idempotent re-run)
    summary: dict[str, Any]


# ---------------------------------------------------------------------------- inputs
def read_loan_book(
    warehouse: Path | None, as_of: date, *, settings: Settings | None = None
) -> pd.DataFrame:
    """Merchant lines from the warehouse as of ``as_of`` (inclusive); ``None``: the engine's
    tables of ``settings`` (the warehouse, or on Spark the lake read in place).

    A merchant has one line for life (``loan_applications.account_id``: its first approved
    application opens it, later ones review it).  One row per merchant with a line:
    ``merchant_id``, ``account_id`` (the line), ``book_line`` (the line of its latest
    month-end row, or the latest approved review's limit if that review came after it, never
    under the balance: a review does not cut a line under what is drawn on it),
    ``line_approved_at`` (latest approved review), ``outstanding`` (latest month-end
    balance; an older book without ``account_id`` sums its accounts), ``dpd`` (worst current
    days past due from unpaid schedule items due before ``as_of``, else the latest month-end
    figure) and ``charged_off`` (the line was written off: closed for good, nothing owed).
    """

    cutoff = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    sql = """
        WITH apps AS (
            SELECT coalesce(account_id, application_id) AS account_id,
                   applicant_id AS merchant_id, approved_limit, ts
            FROM loan_applications
            WHERE product = 'merchant' AND decision = 'approved' AND ts < $cutoff
        ),
        lines AS (
            SELECT merchant_id, arg_max(account_id, ts) AS account_id,
                   arg_max(approved_limit, ts) AS reviewed_line, max(ts) AS line_approved_at
            FROM apps GROUP BY merchant_id
        ),
        perf AS (
            SELECT account_id,
                   max(snapshot_date) AS perf_at,
                   arg_max(credit_limit, snapshot_date) AS perf_line,
                   arg_max(outstanding, snapshot_date) AS outstanding,
                   arg_max(days_past_due, snapshot_date) AS perf_dpd,
                   bool_or(status = 'charged_off') AS charged_off
            FROM loan_performance
            WHERE snapshot_date < $cutoff AND account_id IN (SELECT account_id FROM apps)
            GROUP BY account_id
        ),
        sched AS (
            SELECT account_id,
                   max(CASE WHEN due_date < $cutoff - INTERVAL 1 DAY
                             AND (paid_at IS NULL OR paid_at >= $cutoff)
                            THEN date_diff('day', due_date, $cutoff - INTERVAL 1 DAY)
                            ELSE 0 END) AS sched_dpd
            FROM loan_repayments
            WHERE due_date < $cutoff AND account_id IN (SELECT account_id FROM apps)
            GROUP BY account_id
        ),
        owed AS (  -- older books (no account_id) hold one account per approval: all are owed
            SELECT a.merchant_id, sum(coalesce(p.outstanding, 0)) AS outstanding,
                   max(coalesce(s.sched_dpd, p.perf_dpd, 0)) AS dpd
            FROM (SELECT DISTINCT merchant_id, account_id FROM apps) a
            LEFT JOIN perf p USING (account_id)
            LEFT JOIN sched s USING (account_id)
            GROUP BY a.merchant_id
        )
        SELECT l.merchant_id, l.account_id,
               CASE WHEN p.perf_at > l.line_approved_at THEN p.perf_line
                    -- a review never cuts a line under the balance drawn on it
                    ELSE greatest(l.reviewed_line, coalesce(p.outstanding, 0)) END AS book_line,
               l.line_approved_at,
               CASE WHEN p.charged_off THEN 0 ELSE o.outstanding END AS outstanding,
               CASE WHEN p.charged_off THEN 0 ELSE o.dpd END AS dpd,
               coalesce(p.charged_off, false) AS charged_off
        FROM lines l
        JOIN owed o USING (merchant_id)
        LEFT JOIN perf p USING (account_id)
        ORDER BY l.merchant_id
    """
    con = connect_tables(warehouse, settings=settings, read_only=True)
    try:
        missing = {"loan_applications", "loan_performance", "loan_repayments"} - {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        if missing:
            raise YidaiError(
                f"{tables_location(warehouse, settings=settings)} lacks tables "
                f"{sorted(missing)}; run `yidai ingest` first"
            )
        book = con.execute(sql, {"cutoff": cutoff.to_pydatetime()}).df()
    finally:
        con.close()
    book["book_line"] = book["book_line"].astype(np.float64)
    book["outstanding"] = book["outstanding"].astype(np.float64)
    book["dpd"] = book["dpd"].astype(np.float64)
    book["charged_off"] = book["charged_off"].astype(bool)
    return book


class SnapshotLike(Protocol):
    """What the refresh needs of a feature snapshot (``features.FeatureSnapshot``)."""

    feature_set: str
    fingerprint: str
    as_of: date

    @property
    def frame(self) -> pd.DataFrame: ...


def _previous_version(root: Path, as_of: date) -> dict[str, Any] | None:
    """Manifest of the latest complete version with an earlier as-of date."""
    earlier = [m for m in publishing.list_versions(root) if str(m["as_of"]) < as_of.isoformat()]
    return max(earlier, key=lambda m: (str(m["as_of"]), str(m["version"])), default=None)


def _merchant_ids(features: pd.DataFrame) -> pd.Series:
    for column in ("merchant_id", "entity_id"):
        if column in features.columns:
            return features[column].astype(str)
    if features.index.name in ("merchant_id", "entity_id"):
        return pd.Series(features.index.astype(str), index=features.index)
    raise YidaiError(
        "merchant feature snapshot has no merchant_id / entity_id column; "
        f"columns: {list(features.columns)[:10]}"
    )


# ---------------------------------------------------------------------------- the job
@contextmanager
def _steps(enabled: bool, total: int) -> Iterator[Any]:
    """A rich progress bar over the job's steps (a no-op when disabled)."""
    if not enabled:

        class _Null:
            def step(self, label: str) -> None:
                log.info("limit refresh: %s", label)

        yield _Null()
        return
    # heavy: rich
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]limits[/bold] {task.description}"), BarColumn(), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task("start", total=total)

        class _Bar:
            def step(self, label: str) -> None:
                log.info("limit refresh: %s", label)
                bar.update(task, advance=1, description=label)

        yield _Bar()


def refresh_limits(
    as_of: date,
    *,
    settings: Any = None,
    progress: bool = False,
    force_reason: str | None = None,
) -> RefreshResult:
    """Run the nightly refresh for ``as_of`` with the real loaders and publish it.

    Reads the policy files, the warehouse (it must hold ingested rows for ``as_of``), the
    merchant feature snapshot of ``as_of`` (``features.load_snapshot``), the ``merchant_pd``
    champion (``models.registry.load_model``) and the warehouse loan book.  Raises
    :class:`YidaiError` (nothing published) on any missing or empty input, a failed write,
    or (:class:`~yidai.jobs.limits.breaker.LimitsBreakerError`) when the circuit breaker trips
    and ``force_reason`` is not given.
    """

    settings = settings or get_settings()
    _check_force_reason(force_reason)
    policy = load_merchant_limit_policy(settings.policies / POLICY_FILE)
    credit_policy = load_credit_policy(policy.underwriting_product, settings.policies)
    require_warehouse_day(None, as_of, settings=settings)  # the engine's tables
    snapshot = load_snapshot(settings.serving, credit_policy.feature_set)
    _check_snapshot(snapshot, as_of)
    model = load_model(
        credit_policy.model,
        "champion",
        expected_feature_set_version=snapshot.fingerprint,
        settings=settings,
    )
    book = read_loan_book(None, as_of, settings=settings)
    return run_refresh(
        as_of,
        snapshot=snapshot,
        model=model,
        book=book,
        policy=policy,
        credit_policy=credit_policy,
        serving_dir=settings.serving,
        progress=progress,
        max_change_share=settings.limits_max_change_share,
        force_reason=force_reason,
    )


def _check_snapshot(snapshot: SnapshotLike, as_of: date) -> None:
    """Refuse an empty snapshot, or one of another day than the refresh (no feature rows
    for ``as_of``: stale profiles would move lines as if nothing had happened since)."""
    if len(snapshot.frame) == 0:
        raise YidaiError(f"feature snapshot {snapshot.feature_set} is empty; no limits published")
    if snapshot.as_of > as_of:
        raise YidaiError(
            f"feature snapshot {snapshot.feature_set} is as of {snapshot.as_of}, after the "
            f"refresh date {as_of}; refusing to use future data"
        )
    if snapshot.as_of != as_of:
        raise YidaiError(
            f"no feature rows for {as_of}: the published snapshot of {snapshot.feature_set} is "
            f"as of {snapshot.as_of}; run `yidai features build --as-of {as_of}` and "
            f"`yidai features publish --as-of {as_of}` first; no limits published"
        )


def _check_force_reason(force_reason: str | None) -> None:
    if force_reason is not None and not force_reason.strip():
        raise YidaiError("a forced limit refresh needs a reason (it is logged and recorded)")


def _previous_limits(root: Path, previous: dict[str, Any] | None) -> pd.DataFrame | None:
    """The previous version's decisions (for the breaker: moves continuing them)."""
    if previous is None:
        return None
    table = pd.read_parquet(publishing.version_dir(root, str(previous["version"])) / LIMITS_FILE)
    wanted = ["merchant_id", "decision", "change_capped", "target_line", "credit_line"]
    return table[[c for c in wanted if c in table.columns]]


def run_refresh(
    as_of: date,
    *,
    snapshot: SnapshotLike,
    model: PDModel,
    book: pd.DataFrame,
    policy: MerchantLimitPolicy,
    credit_policy: Any,
    serving_dir: Path,
    progress: bool = False,
    max_change_share: float = 1.0,
    force_reason: str | None = None,
) -> RefreshResult:
    """The refresh on already loaded inputs (see :func:`refresh_limits`).

    ``max_change_share`` is the circuit breaker's limit (1.0: never trips; the real loaders
    pass ``YIDAI_LIMITS_MAX_CHANGE_SHARE``); ``force_reason`` overrides a trip.  The breaker
    is not applied to a first publication (no previous version) nor to a version already
    written by an earlier run with the same inputs.
    """
    _check_force_reason(force_reason)
    _check_snapshot(snapshot, as_of)
    _check_book(book, as_of)
    snapshot_version = f"{snapshot.feature_set}@{snapshot.fingerprint}:{snapshot.as_of}"
    root = limits_root(serving_dir)
    with _steps(progress, 6) as steps:
        previous = _previous_version(root, as_of)
        frame = _load_inputs(snapshot.frame, book, previous, root, policy)
        steps.step("inputs assembled")
        scores = _score_rows(frame, snapshot.feature_set, model, policy)
        steps.step("scored")
        changes = _apply_policies(frame, scores, policy, credit_policy)
        steps.step("policy applied")
        digest = _input_digest(
            frame, snapshot.frame, policy, credit_policy, model, snapshot_version, previous, as_of
        )
        tables = _build_tables(frame, changes, as_of, f"{as_of:%Y%m%d}-{digest[:12]}")
        tables.summary.update(
            previous_version=previous["version"] if previous else None,
            model=f"{model.name} v{model.version}",
            feature_snapshot=snapshot_version,
            policy=policy.version,
            underwriting_policy=getattr(credit_policy, "policy_version", ""),
        )
        steps.step("tables built")
        result = _publish(root, as_of, tables, previous, max_change_share, force_reason, steps)
    _log_refresh(result.version, result.summary)
    return result


def _check_book(book: pd.DataFrame, as_of: date) -> None:
    if len(book) == 0:
        raise YidaiError(
            f"the loan book as of {as_of} is empty (no approved merchant line in the "
            "warehouse); no limits published"
        )


def _load_inputs(
    features: pd.DataFrame,
    book: pd.DataFrame,
    previous: dict[str, Any] | None,
    root: Path,
    policy: MerchantLimitPolicy,
) -> pd.DataFrame:
    """One row per merchant with the policy's turnover columns, scaled."""
    frame = _assemble(features, book, previous, root)
    turnover = policy.turnover
    frame["monthly_turnover"] = _col(frame, turnover.monthly_turnover) * (
        turnover.monthly_turnover_scale
    )
    frame["recent_turnover"] = _col(frame, turnover.recent_turnover) * (
        turnover.recent_turnover_scale
    )
    if turnover.seasonal_decline is not None:
        frame["seasonal_decline"] = _col(frame, turnover.seasonal_decline)
    return frame


def _score_rows(
    frame: pd.DataFrame, feature_set: str, model: PDModel, policy: MerchantLimitPolicy
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PD, score and grade of every merchant (unscored without a feature row), also added
    to ``frame`` as ``pd``, ``score`` and ``grade``."""
    has_features = frame["has_features"].to_numpy()
    X = _model_matrix(frame.loc[has_features], feature_set, model, policy)
    pd_all = np.full(len(frame), np.nan)
    if X.shape[0]:
        pd_all[has_features] = _predict(model, X)
    score = np.where(has_features, model.score_points(np.nan_to_num(pd_all, nan=0.5)), np.nan)
    grade = np.where(
        has_features,
        model.grade(np.nan_to_num(pd_all, nan=0.5)).astype(object),
        UNSCORED_GRADE,
    )
    frame["pd"], frame["score"] = pd_all, score
    frame["grade"] = pd.Categorical(grade)
    return pd_all, score, grade


def _apply_policies(
    frame: pd.DataFrame,
    scores: tuple[np.ndarray, np.ndarray, np.ndarray],
    policy: MerchantLimitPolicy,
    credit_policy: Any,
) -> pd.DataFrame:
    """Re-underwrite every merchant (the online rules; columns added to ``frame``), then
    propose the line changes."""
    uw = decide_credit_batch(
        credit_policy,
        frame,
        *scores,
        applicant_ids=frame["merchant_id"].to_numpy(dtype=object),
        has_features=frame["has_features"].to_numpy(),
    )
    frame["underwriting_decision"] = pd.Categorical(uw["decision"].to_numpy())
    frame["underwriting_limit"] = uw["proposed_limit"].to_numpy()
    frame["underwriting_codes"] = pd.Categorical([";".join(c) for c in uw["reason_codes"]])
    return propose_line_changes(frame, policy)


@dataclass
class _Tables:
    """The version's content: limits, change log, summary and its by-grade table."""

    version: str
    limits: pd.DataFrame
    change_log: pd.DataFrame
    summary: dict[str, Any]
    by_grade: pd.DataFrame


def _build_tables(frame: pd.DataFrame, changes: pd.DataFrame, as_of: date, version: str) -> _Tables:
    limits = _limits_table(frame, changes, as_of, version)
    summary, by_grade = summarise(limits)
    summary.update(version=version, as_of=as_of.isoformat())
    return _Tables(version, limits, _change_log(limits), summary, by_grade)


def _publish(
    root: Path,
    as_of: date,
    tables: _Tables,
    previous: dict[str, Any] | None,
    max_change_share: float,
    force_reason: str | None,
    steps: Any,
) -> RefreshResult:
    """Write the version (behind the circuit breaker) and publish it unless a later one is
    live."""
    version, limits, change_log = tables.version, tables.limits, tables.change_log
    summary, by_grade = tables.summary, tables.by_grade
    reused = publishing.is_complete(root, version)
    move = book_move(limits, _previous_limits(root, previous))
    forced = None
    breaker_applied = previous is not None and not reused  # a first one starts from the book
    if breaker_applied:
        pointer = publishing.read_pointer(root)
        forced = check_breaker(
            move,
            max_change_share,
            as_of=as_of,
            live_version=str(pointer["version"]) if pointer else None,
            force_reason=force_reason,
        )
    summary.update(
        book_moved=move.moved,
        book_change_share=round(move.share, 6),
        book_change_limit=max_change_share,
        breaker_applied=breaker_applied,
        forced_reason=forced,
    )

    def fill(folder: Path) -> None:
        limits.to_parquet(folder / LIMITS_FILE, index=False)
        change_log.to_parquet(folder / CHANGES_FILE, index=False)
        by_grade.to_parquet(folder / SUMMARY_BY_GRADE_FILE, index=False)
        publishing.write_json_atomic(folder / SUMMARY_FILE, summary)

    manifest = {
        "version": version,
        "as_of": as_of.isoformat(),
        "previous_version": summary["previous_version"],
        "rows": len(limits),
        "changes": len(change_log),
        "book_change_share": summary["book_change_share"],
        "forced_reason": forced,
    }
    path = publishing.write_version(root, version, manifest, fill)
    steps.step("version written")

    pointer = publishing.read_pointer(root)
    published = pointer is None or str(pointer.get("as_of", "")) <= as_of.isoformat()
    if published:
        publishing.publish(root, version, {"as_of": as_of.isoformat()})
        _write_runs(root)
    else:
        log.warning(
            "limits %s written but not published: version %s of %s is live",
            version,
            pointer and pointer.get("version"),
            pointer and pointer.get("as_of"),
        )
    steps.step("published" if published else "written (not published)")
    return RefreshResult(version, as_of, path, published, reused, summary)


def _log_refresh(version: str, summary: dict[str, Any]) -> None:
    log.info(
        "limits %s: %d merchants, %d up, %d down, %d frozen, %d new, exposure %.0f -> %.0f",
        version,
        summary["merchants"],
        summary["increase"],
        summary["decrease"],
        summary["freeze"],
        summary["new"],
        summary["exposure_before"],
        summary["exposure_after"],
    )


def _predict(model: PDModel, X: np.ndarray) -> np.ndarray:
    """The PDs of ``X``: in partitions on Spark with ``YIDAI_ENGINE=spark`` (issue 19)."""
    if get_settings().engine == "spark":
        # heavy: pyspark starts only on the Spark engine
        from yidai.jobs.limits.spark_scoring import predict_pd_spark

        return predict_pd_spark(model, X)
    return _predict_parallel(model, X)


def _predict_parallel(model: PDModel, X: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """``model.predict_pd`` over row chunks on two threads (LightGBM releases the GIL)."""
    if len(X) <= chunk:
        return np.asarray(model.predict_pd(X))

    parts = [X[i : i + chunk] for i in range(0, len(X), chunk)]
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        return np.concatenate(list(pool.map(model.predict_pd, parts)))


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        raise YidaiError(f"merchant feature snapshot lacks column {name!r} (merchant limit policy)")
    return frame[name].to_numpy(np.float64, na_value=np.nan)


def _model_matrix(
    rows: pd.DataFrame, feature_set: str, model: PDModel, policy: MerchantLimitPolicy
) -> np.ndarray:
    """The model's input matrix for merchants with a feature row.

    Profile columns come from the snapshot; the request-time features are computed by the
    feature store's own function, for a request of the current line (or, without a line,
    ``new_line_request_months`` of turnover).
    """

    fs = get_feature_set(feature_set)
    unknown = [c for c in model.feature_names if c not in fs.columns]
    if unknown:
        raise YidaiError(
            f"{model.name} v{model.version} needs features {unknown[:10]} that "
            f"{feature_set} does not declare"
        )
    if len(rows) == 0:
        return np.empty((0, len(model.feature_names)))
    profile_cols = fs.profile_columns(fs.entity)
    missing = [c for c in profile_cols if c not in rows.columns]
    if missing:
        raise YidaiError(f"merchant feature snapshot lacks columns {missing[:10]}")
    current = rows["current_line"].to_numpy(np.float64)
    requested = np.where(
        current > 0,
        current,
        policy.new_line_request_months * np.nan_to_num(rows["monthly_turnover"].to_numpy()),
    )
    full = request_features_batch(
        fs, rows[profile_cols], pd.DataFrame({"requested_amount": np.maximum(requested, 0.0)})
    )
    return full[:, [fs.columns.index(c) for c in model.feature_names]]


def _assemble(
    features: pd.DataFrame,
    book: pd.DataFrame,
    previous: dict[str, Any] | None,
    root: Path,
) -> pd.DataFrame:
    """One row per merchant in the snapshot, the loan book or the previous version."""
    ids = _merchant_ids(features)
    if ids.duplicated().any():
        raise YidaiError(
            f"merchant feature snapshot has {int(ids.duplicated().sum())} duplicate merchants"
        )
    feats = features.drop(columns=[c for c in ("merchant_id", "entity_id") if c in features])
    feats = feats.reset_index(drop=True)
    feats.insert(0, "merchant_id", ids.to_numpy())
    feats["has_features"] = True

    need = {"merchant_id", "book_line", "outstanding", "dpd"}
    if not need <= set(book.columns):
        raise YidaiError(f"loan book lacks columns {sorted(need - set(book.columns))}")
    book = book.copy()
    book["merchant_id"] = book["merchant_id"].astype(str)
    if "account_id" not in book.columns:
        book["account_id"] = None
    if "line_approved_at" not in book.columns:
        book["line_approved_at"] = pd.NaT
    if "charged_off" not in book.columns:
        book["charged_off"] = False
    frame = feats.merge(
        book[
            [
                "merchant_id",
                "account_id",
                "book_line",
                "line_approved_at",
                "outstanding",
                "dpd",
                "charged_off",
            ]
        ],
        on="merchant_id",
        how="outer",
        sort=False,
    )
    if previous is not None:
        prev = pd.read_parquet(
            publishing.version_dir(root, str(previous["version"])) / LIMITS_FILE,
            columns=["merchant_id", "credit_line", "status"],
        ).rename(columns={"credit_line": "previous_line", "status": "previous_status"})
        frame = frame.merge(prev, on="merchant_id", how="outer", sort=False)
        previous_as_of = pd.Timestamp(str(previous["as_of"])) + pd.Timedelta(days=1)
    else:
        previous_as_of = None
        frame["previous_line"] = np.nan
        frame["previous_status"] = None
    frame = frame.sort_values("merchant_id", kind="stable").reset_index(drop=True)

    frame["has_features"] = frame["has_features"].fillna(False).astype(bool)
    book_line = frame["book_line"].fillna(0.0).to_numpy(np.float64)
    in_prev = frame["previous_status"].notna().to_numpy()
    # a line approved in the loan book after the previous version (a line review) replaces it
    reviewed = (
        (frame["line_approved_at"] >= previous_as_of).fillna(False).to_numpy(dtype=bool)
        if previous_as_of is not None
        else np.zeros(len(frame), dtype=bool)
    )
    previous_line = frame["previous_line"].fillna(0.0).to_numpy(np.float64)
    balance = frame["outstanding"].fillna(0.0).to_numpy(np.float64)
    # The core book lets a borrower draw up to the book's line: a balance drawn above the
    # last published figure but within the book's line was drawn on a line in force, not over
    # it, so that much of the book's line is the current line (only interest accrual takes a
    # balance past the book's line: KEEP_OVER_LIMIT).
    honoured = np.where(
        previous_line > 0,
        np.maximum(previous_line, np.minimum(book_line, balance)),
        previous_line,
    )
    frame["current_line"] = np.where(in_prev & ~reviewed, honoured, book_line)
    prev_status = frame["previous_status"].eq("frozen").fillna(False).to_numpy(dtype=bool)
    prev_active = frame["previous_status"].eq("active").fillna(False).to_numpy(dtype=bool)
    status_code = np.where(
        in_prev & ~(reviewed & ~prev_status),
        np.where(prev_status, 1, np.where(prev_active, 0, 2)),
        np.where(book_line > 0, 0, 2),
    )
    frame["previous_status"] = pd.Categorical.from_codes(status_code, categories=pd.Index(STATUSES))
    frame["was_frozen"] = prev_status & in_prev
    frame["outstanding"] = frame["outstanding"].fillna(0.0).astype(np.float64)
    frame["dpd"] = frame["dpd"].fillna(0.0).astype(np.float64)
    frame["charged_off"] = frame["charged_off"].fillna(False).astype(bool)
    return frame.drop(columns=["previous_line", "book_line", "line_approved_at"])


def _input_digest(
    frame: pd.DataFrame,
    features: pd.DataFrame,
    policy: MerchantLimitPolicy,
    credit_policy: Any,
    model: PDModel,
    snapshot_version: str,
    previous: dict[str, Any] | None,
    as_of: date,
) -> str:
    """Hash of everything that decides the output (the version id's suffix)."""
    h = hashlib.sha256()
    for part in (
        as_of.isoformat(),
        policy.digest(),
        getattr(credit_policy, "policy_version", repr(credit_policy)),
        f"{model.name}:{model.version}",
        snapshot_version,
        str(previous["version"]) if previous else "",
    ):
        h.update(part.encode())
        h.update(b"\0")
    book = ["merchant_id", "account_id", "current_line", "outstanding", "dpd", "previous_status"]
    for part in (frame[book], features):
        h.update(pd.util.hash_pandas_object(part, index=True).to_numpy().tobytes())
    return h.hexdigest()


def _limits_table(
    frame: pd.DataFrame, changes: pd.DataFrame, as_of: date, version: str
) -> pd.DataFrame:
    """The published limits: one row per merchant."""
    line = changes["new_line"].to_numpy()
    status = changes["status"].astype(str).to_numpy()
    outstanding = frame["outstanding"].to_numpy()
    available = defs.available(line, outstanding, status)
    utilisation = defs.line_utilisation(outstanding, line)
    return pd.DataFrame(
        {
            "merchant_id": frame["merchant_id"].astype("str"),
            "account_id": frame["account_id"].astype("str"),
            "credit_line": line,
            "outstanding": outstanding,
            "available": available,
            "utilisation": utilisation,
            "status": changes["status"],
            "decision": changes["decision"],
            "reason_code": changes["reason_code"],
            "underwriting_decision": frame["underwriting_decision"],
            "underwriting_codes": frame["underwriting_codes"],
            "pd": frame["pd"].to_numpy(),
            "score": frame["score"].to_numpy(),
            "grade": frame["grade"],
            "dpd": frame["dpd"].to_numpy(),
            "target_line": changes["target_line"].to_numpy(),
            "previous_line": frame["current_line"].to_numpy(),
            "previous_status": frame["previous_status"].astype(changes["status"].dtype),
            "change_capped": changes["change_capped"].to_numpy(),
            "floored_at_outstanding": changes["floored_at_outstanding"].to_numpy(),
            "as_of": pd.Timestamp(as_of),
            "version": version,
        }
    )


def _change_log(limits: pd.DataFrame) -> pd.DataFrame:
    """Merchants whose line or status changed, with the change and its reason."""
    changed = (limits["credit_line"] != limits["previous_line"]) | (
        limits["status"].cat.codes != limits["previous_status"].cat.codes
    )
    log_ = limits.loc[
        changed,
        [
            "merchant_id",
            "account_id",
            "previous_status",
            "status",
            "previous_line",
            "credit_line",
            "outstanding",
            "decision",
            "reason_code",
            "underwriting_codes",
            "grade",
            "pd",
            "as_of",
            "version",
        ],
    ].reset_index(drop=True)
    log_["change"] = log_["credit_line"] - log_["previous_line"]
    texts = {code: en for code, (en, _zh) in REASONS.items()}
    log_["reason_text"] = log_["reason_code"].map(texts)
    return log_


def summarise(limits: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame]:
    """Run summary (counts per decision, exposure before/after) and exposure by risk grade
    (exposure = drawn + available, :func:`yidai.decisioning.exposure.exposure`)."""
    before = defs.exposure(
        limits["previous_line"].to_numpy(),
        limits["outstanding"].to_numpy(),
        limits["previous_status"].astype(str).to_numpy(),
    )
    after = defs.exposure(
        limits["credit_line"].to_numpy(),
        limits["outstanding"].to_numpy(),
        limits["status"].astype(str).to_numpy(),
    )
    counts = limits["decision"].value_counts()
    decision = limits["decision"].eq("freeze").to_numpy(dtype=bool)
    summary: dict[str, Any] = {
        "merchants": len(limits),
        **{d: int(counts.get(d, 0)) for d in ("new", "increase", "keep", "decrease", "freeze")},
        "no_line": int(counts.get("none", 0)),
        "newly_frozen": int(
            (decision & limits["previous_status"].ne("frozen").to_numpy(dtype=bool)).sum()
        ),
        "lines_before": int((limits["previous_status"] != "none").sum()),
        "lines_after": int((limits["status"] != "none").sum()),
        "exposure_before": float(before.sum()),
        "exposure_after": float(after.sum()),
        "exposure_change": float(after.sum() - before.sum()),
        "outstanding_total": float(limits["outstanding"].sum()),
        "reasons": {str(k): int(v) for k, v in limits["reason_code"].value_counts().items()},
    }
    by_grade = (
        pd.DataFrame(
            {
                "grade": limits["grade"].astype(str).to_numpy(),
                "merchants": 1,
                "lines_after": (limits["status"] != "none").to_numpy().astype(int),
                "exposure_before": before,
                "exposure_after": after,
            }
        )
        .groupby("grade", sort=True, as_index=False)
        .sum()
    )
    by_grade["exposure_change"] = by_grade["exposure_after"] - by_grade["exposure_before"]
    return summary, by_grade


def _write_runs(root: Path) -> None:
    """Rewrite ``runs.parquet``: one summary row per complete version the refresh wrote (for
    the dashboards); a version published by other means (no ``summary.json``: a hand-made or
    test version) has no run to show."""
    rows = []
    for manifest in publishing.list_versions(root):
        path = publishing.version_dir(root, str(manifest["version"])) / SUMMARY_FILE
        if not path.exists():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        data.pop("reasons", None)
        rows.append(data)
    runs = pd.DataFrame(rows).sort_values(["as_of", "version"]).reset_index(drop=True)
    tmp = root / f".{RUNS_FILE}.tmp"
    runs.to_parquet(tmp, index=False)
    os.replace(tmp, root / RUNS_FILE)

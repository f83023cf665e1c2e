"""Model and decision monitoring behind the ``monitoring_daily`` DAG.

For every champion model: score and feature drift (PSI of the latest days against the
model's training window), performance on matured credit cohorts (AUC / KS / bad rate vs mean
PD by booking month) and on the fraud labels that have arrived (AUC / average precision by
week); from the decision audit store: approve / refer / decline and allow / step-up / decline
rates by product and amount tier.  The tables are published under ``<serving>/monitoring``
(atomic pointer swap, :mod:`yidai.jobs.analytics.dashboard_tables`) for the dashboards;
:func:`check_drift` raises :class:`DriftError` naming every drifted feature, so the DAG task
fails loudly.

The metric functions themselves (PSI, AUC, KS, average precision) are ``models.metrics``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import FEATURE_SETS, build_training_set, credit_spine, fraud_spine
from features.training import complete_history_from
from models.drift import STRUCTURAL_DRIFT, DriftThresholds, is_structural
from models.metrics import PSI_ALERT_THRESHOLD, psi
from models.registry import load_model
from yidai.audit import AuditReader
from yidai.core import catalogue
from yidai.core.errors import YidaiError
from yidai.core.settings import get_settings
from yidai.core.warehouse import connect_tables
from yidai.decisioning import exposure as book
from yidai.jobs.analytics import credit_risk
from yidai.jobs.analytics.dashboard_tables import publish_tables, read_meta, read_table
from yidai.jobs.analytics.model_monitoring import characteristic_table, cohort_performance
from yidai.jobs.analytics.scored import SCORED_AREA
from yidai.jobs.analytics.tiers import CREDIT_TIERS, amount_tier, payment_tiers

log = logging.getLogger(__name__)

AREA = "monitoring"
DEFAULT_PSI_THRESHOLD = PSI_ALERT_THRESHOLD
#: PSI bins hold at least this many rows of the smaller sample on average (at most 10 bins):
#: with few rows, empty bins alone push PSI far above any threshold.
MIN_ROWS_PER_BIN = 20
#: The current side of the drift holds at least this many decisions: for a low-volume
#: product the recent window widens (up to ``MAX_CURRENT_DAYS``) until it does.
MIN_CURRENT_ROWS = 100
MAX_CURRENT_DAYS = 60
#: The rolling reference of a structural feature (``models.drift.STRUCTURAL_DRIFT``): the
#: days just before the current window, so slow calendar growth is not drift, a jump is.
ROLLING_REFERENCE_DAYS = 28
#: A month of the PSI trend needs at least this many decisions (fewer: left out).
MIN_TREND_ROWS = 2 * MIN_ROWS_PER_BIN
#: Characteristic analysis: every feature at ``shift`` or worse, and at least the
#: ``CHARACTERISTIC_TOP`` largest PSIs of each model (at most ``CHARACTERISTIC_MAX``).
CHARACTERISTIC_TOP = 3
CHARACTERISTIC_MAX = 10
SCORE = "__score__"  # the feature name under which the score's PSI is reported
CREDIT_MODELS = {m.name: m.product for m in catalogue.CREDIT_MODELS}
FRAUD_MODEL = catalogue.FRAUD_MODEL.name
#: The amount tier of a decision without a (numeric) amount.
UNKNOWN_TIER = "unknown"


#: The columns of a drift table (:func:`drift_table`).
DRIFT_COLUMNS = [
    "model", "feature", "psi", "status", "n_reference", "n_current", "mean_reference",
    "mean_current", "bins", "reference", "reference_window", "structural",
]  # fmt: skip
#: The drift columns carried in the run's summary (XCom) and read by :func:`check_drift`.
DRIFT_SUMMARY_COLUMNS = (
    "model", "feature", "psi", "status", "reference", "reference_window", "structural", "moved",
)  # fmt: skip


class DriftError(YidaiError):
    """Drift above the threshold; the message lists every drifted feature."""


# ---------------------------------------------------------------------------- pure metrics
def psi_status(psi: float, threshold: float = DEFAULT_PSI_THRESHOLD) -> str:
    """``stable`` (< 0.1), ``shift`` (< threshold) or ``drift`` (``models.drift``'s
    severities: the alert and the gate use the same thresholds); ``unknown`` for NaN."""
    return DriftThresholds(watch=min(0.1, threshold), alert=threshold).status(psi)


def psi_bins(n_reference: int, n_current: int, max_bins: int = 10) -> int:
    """Number of PSI bins for samples of these sizes (``MIN_ROWS_PER_BIN`` rows each, 2-10)."""
    return max(2, min(max_bins, min(n_reference, n_current) // MIN_ROWS_PER_BIN))


def drift_table(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    *,
    model: str = "",
    bins: int | None = None,
    threshold: float = DEFAULT_PSI_THRESHOLD,
    reference_kind: str = "",
    reference_window: str = "",
) -> pd.DataFrame:
    """PSI of each column of ``current`` against ``reference`` (``models.metrics.psi``).

    ``bins`` defaults to :func:`psi_bins` of the sample sizes.  Returns ``model, feature,
    psi, status, n_reference, n_current, mean_reference, mean_current, bins, reference,
    reference_window, structural`` (``reference`` = ``reference_kind``, ``reference_window``
    its days ``first..last``; ``structural`` = why the feature's
    drift is structural, ``models.drift.STRUCTURAL_DRIFT``, else empty); an empty side gives
    PSI NaN with status ``unknown`` (never a crash).
    """

    missing = [c for c in columns if c not in reference.columns or c not in current.columns]
    if missing:
        raise YidaiError(f"drift: columns missing from the samples: {missing[:10]}")
    bins = bins or psi_bins(len(reference), len(current))
    rows = []
    for column in columns:
        ref = reference[column].to_numpy(np.float64, na_value=np.nan)
        cur = current[column].to_numpy(np.float64, na_value=np.nan)
        value = psi(ref, cur, bins) if len(ref) and len(cur) else float("nan")
        rows.append(
            {
                "model": model,
                "feature": column,
                "psi": value,
                "status": psi_status(value, threshold),
                "n_reference": len(ref),
                "n_current": len(cur),
                "mean_reference": float(np.nanmean(ref)) if np.isfinite(ref).any() else np.nan,
                "mean_current": float(np.nanmean(cur)) if np.isfinite(cur).any() else np.nan,
                "bins": bins,
                "reference": reference_kind,
                "reference_window": reference_window,
                "structural": STRUCTURAL_DRIFT.get(column, ""),
            }
        )
    return pd.DataFrame(rows, columns=DRIFT_COLUMNS)


def decision_rates(
    decisions: pd.DataFrame,
    payment_tiers: Sequence[tuple[str, float]],
    credit_tiers: Sequence[tuple[str, float]] = CREDIT_TIERS,
) -> pd.DataFrame:
    """Outcome rates by product and amount tier from audited decisions.

    ``decisions`` has ``product``, ``outcome``, ``amount`` (requested amount or payment
    amount).  Returns ``product, amount_tier, outcome, n, total, rate`` where ``rate`` is the
    share of the tier's decisions with that outcome (the rates of a tier sum to 1).
    """
    columns = ["product", "amount_tier", "outcome", "n", "total", "rate"]
    if decisions.empty:
        return pd.DataFrame(columns=columns)
    tier = pd.Series(UNKNOWN_TIER, index=decisions.index, dtype=object)
    is_payment = decisions["product"] == "payment"
    if is_payment.any():
        payments = decisions.loc[is_payment, "amount"]
        tier[is_payment] = amount_tier(payments, payment_tiers, missing=UNKNOWN_TIER).astype(object)
    if (~is_payment).any():
        credit = decisions.loc[~is_payment, "amount"]
        tier[~is_payment] = amount_tier(credit, credit_tiers, missing=UNKNOWN_TIER).astype(object)
    counts = (
        decisions.assign(amount_tier=tier)
        .groupby(["product", "amount_tier", "outcome"], sort=True)
        .size()
        .rename("n")
        .reset_index()
    )
    counts["total"] = counts.groupby(["product", "amount_tier"])["n"].transform("sum")
    counts["rate"] = counts["n"] / counts["total"]
    return counts[columns]


def check_drift(
    drift: pd.DataFrame | Mapping[str, Any] | Iterable[Mapping[str, Any]],
    threshold: float = DEFAULT_PSI_THRESHOLD,
) -> None:
    """Raise :class:`DriftError` listing every (model, feature) whose PSI >= ``threshold``.

    Accepts the drift table, a :meth:`MonitoringReport.summary` dict (its ``drift`` rows) or
    an iterable of drift rows; returns None when nothing drifted.
    """
    if isinstance(drift, Mapping):
        drift = drift.get("drift", [])
    table = drift if isinstance(drift, pd.DataFrame) else pd.DataFrame(list(drift))
    if table.empty:
        return
    psi_values = pd.to_numeric(table["psi"], errors="coerce")
    bad = table.assign(psi=psi_values)[(psi_values >= threshold).to_numpy()]
    if bad.empty:
        return
    bad = bad.sort_values(["model", "psi"], ascending=[True, False])
    parts = []
    for model_name, group in bad.groupby("model", sort=True):
        blank = pd.Series("", index=group.index)
        kinds = (group.get("reference", blank)).fillna("")
        days = (group.get("reference_window", blank)).fillna("")
        kinds = kinds.str.cat(days, sep=" ").str.strip()
        moved = (group.get("moved", blank)).fillna("")
        names = ", ".join(
            f"{'score' if f == SCORE else f} {p:.3f}"
            + (f" (vs {k}{'; ' + m if m else ''})" if k or m else "")
            for f, p, k, m in zip(group["feature"], group["psi"], kinds, moved, strict=True)
        )
        parts.append(f"{model_name}: {names}")
    raise DriftError(
        f"PSI >= {threshold:g} for {len(bad)} feature(s) against the training window "
        "(a feature whose window was truncated there against a baseline of complete "
        "history; a structural feature against a rolling reference): " + "; ".join(parts)
    )


def explain_drift(drift: pd.DataFrame, characteristics: pd.DataFrame) -> pd.DataFrame:
    """``drift`` with a ``moved`` column: for each (model, feature) of the characteristic
    analysis, the bin contributing most to its PSI and how its share moved (``bin > 3.2:
    10.0% -> 31.5%``), so an alert says what changed; empty for the other rows."""
    out = drift.copy()
    out["moved"] = ""
    if characteristics.empty:
        return out
    worst = characteristics.loc[
        characteristics.groupby(["model", "feature"])["contribution"].idxmax()
    ]
    text = {
        (m, f): f"bin {b}: {r:.1%} -> {c:.1%}"
        for m, f, b, r, c in zip(
            worst["model"], worst["feature"], worst["label"],
            worst["reference_share"], worst["current_share"], strict=True,
        )
    }  # fmt: skip
    keys = list(zip(out["model"], out["feature"], strict=True))
    out["moved"] = [text.get(k, "") for k in keys]
    return out


# ---------------------------------------------------------------------------- orchestration
@dataclass
class MonitoringReport:
    """What one monitoring run computed (and published, if ``version`` is set)."""

    as_of: date
    drift: pd.DataFrame
    performance: pd.DataFrame
    decision_rates: pd.DataFrame
    models: pd.DataFrame
    version: str | None = None
    notes: list[str] = field(default_factory=list)
    liquidity: dict[str, Any] = field(default_factory=dict)
    #: Monthly PSI per model and feature against the same reference (:func:`drift_trend`).
    drift_trend: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Bin-level distributions of the drifting features (:func:`characteristics`).
    characteristics: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Month-to-month DPD roll rates of the credit book (``credit_risk.roll_rates``).
    roll_rates: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self, threshold: float = DEFAULT_PSI_THRESHOLD) -> dict[str, Any]:
        """A JSON-friendly digest (for Airflow XCom and logs); ``check_drift`` accepts it."""
        drift = self.drift.replace({np.nan: None})
        return {
            "as_of": self.as_of.isoformat(),
            "version": self.version,
            "threshold": threshold,
            "max_psi": None
            if self.drift.empty or self.drift["psi"].isna().all()
            else float(self.drift["psi"].max()),
            "drifted": int((self.drift["psi"] >= threshold).sum()) if len(self.drift) else 0,
            "watch": int((self.drift["status"] == "shift").sum()) if len(self.drift) else 0,
            "drift": json.loads(
                drift[[c for c in DRIFT_SUMMARY_COLUMNS if c in drift.columns]].to_json(
                    orient="records"
                )
            )
            if len(drift)
            else [],
            "models": json.loads(self.models.to_json(orient="records", date_format="iso")),
            "notes": list(self.notes),
            "liquidity": self.liquidity,
        }


def _window(metadata: Mapping[str, Any], name: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    raw = (metadata.get("windows") or {}).get(name)
    if not raw or ".." not in str(raw):
        return None
    start, end = str(raw).split("..", 1)
    return pd.Timestamp(start), pd.Timestamp(end) + pd.Timedelta(days=1)


def _complete_from(con: Any, model: Any) -> dict[str, pd.Timestamp]:
    """Per feature of ``model``'s declared set, the first day that sees its window complete
    (``features.training.complete_history_from``); empty for a set not in the catalogue."""
    feature_set = FEATURE_SETS.get(str(getattr(model, "feature_set", "")))
    return {} if feature_set is None else complete_history_from(con, feature_set)


def _window_text(start: pd.Timestamp | None, end: pd.Timestamp) -> str:
    """``[start, end)`` as its days ``first..last`` (``..last`` without a start)."""
    first = "" if start is None else f"{start:%Y-%m-%d}"
    return f"{first}..{end - pd.Timedelta(days=1):%Y-%m-%d}"


def _in_window(ts: pd.Series, text: str) -> np.ndarray:
    """Which ``ts`` fall in a window written by :func:`_window_text`."""
    first, _, last = str(text).partition("..")
    inside = ts < pd.Timestamp(last) + pd.Timedelta(days=1)
    if first:
        inside &= ts >= pd.Timestamp(first)
    return inside.to_numpy()


def column_references(
    train_window: tuple[pd.Timestamp, pd.Timestamp] | None,
    recent_start: pd.Timestamp,
    complete_from: Mapping[str, pd.Timestamp],
    columns: Sequence[str],
) -> dict[tuple[pd.Timestamp | None, pd.Timestamp, str], list[str]]:
    """The drift reference of each of ``columns`` (:func:`reference_window`), grouped: a
    feature's complete history starts at its ``complete_from`` day (``features.training.
    complete_history_from``), the score's (:data:`SCORE`) at the latest of its features', so
    a 180-day feature is compared from half a year of history even when the model also
    reads a year's window.  A feature without a day keeps the training window."""
    known = [complete_from[c] for c in columns if c in complete_from]
    groups: dict[tuple[pd.Timestamp | None, pd.Timestamp, str], list[str]] = {}
    for column in columns:
        day = (max(known) if known else None) if column == SCORE else complete_from.get(column)
        groups.setdefault(reference_window(train_window, recent_start, day), []).append(column)
    return groups


def reference_window(
    train_window: tuple[pd.Timestamp, pd.Timestamp] | None,
    recent_start: pd.Timestamp,
    complete_from: pd.Timestamp | None = None,
) -> tuple[pd.Timestamp | None, pd.Timestamp, str]:
    """The drift reference ``[start, end)`` and what it is (``training`` or ``baseline``).

    The model's training window, unless part of it lies before ``complete_from`` (the first
    day with a complete feature history): then the reference is the window of the same
    length starting at ``complete_from`` (a ``baseline`` of the first comparable decisions),
    cut at the recent days.  Without a training window: everything before the recent days.
    """
    if train_window is None:
        start = complete_from
        return start, recent_start, "before recent" if start is None else "baseline"
    start, end = train_window
    if complete_from is None or start >= complete_from:
        return start, end, "training"
    length = max(end - start, pd.Timedelta(days=30))
    return complete_from, min(complete_from + length, recent_start), "baseline"


def current_start(
    ts: pd.Series, end: pd.Timestamp, recent_days: int, min_rows: int, max_days: int
) -> pd.Timestamp:
    """Start of the drift's current window: ``recent_days`` before ``end``, widened by whole
    days until it holds ``min_rows`` decisions, but never beyond ``max_days``."""
    start = end - pd.Timedelta(days=recent_days)
    if min_rows <= 0:
        return start
    floor = end - pd.Timedelta(days=max(max_days, recent_days))
    before = ts[(ts < end) & (ts >= floor)].sort_values(ascending=False)
    if len(before) < min_rows:
        return min(start, floor)
    return min(start, before.iloc[min_rows - 1].normalize())


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= n else frame.sample(n=n, random_state=seed).sort_index()


def monitor_model(
    model: Any,
    scored: pd.DataFrame,
    *,
    as_of: date,
    recent_days: int,
    fraud: bool,
    threshold: float = DEFAULT_PSI_THRESHOLD,
    complete_from: Mapping[str, pd.Timestamp] | None = None,
    min_current_rows: int = 0,
    max_current_days: int = MAX_CURRENT_DAYS,
    rolling_days: int = ROLLING_REFERENCE_DAYS,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Drift and performance of one model from its scored decisions.

    ``scored`` has ``ts``, ``label`` (NaN = not known yet), ``score`` and the model's
    features.  Reference = the model's training window (``metadata["windows"]["train"]``;
    without it, everything before the recent days); current = the last ``recent_days``
    (widened to ``min_current_rows`` decisions, see :func:`current_start`).
    With ``complete_from`` (per feature, the first day that sees its window complete), a
    training window whose decisions saw a feature's window truncated is replaced, for that
    feature, by the first window of complete history (:func:`column_references`), so PSI
    compares like with like; the score's by that of the model's longest window.  A feature
    whose drift is structural (``models.drift.STRUCTURAL_DRIFT``, e.g. a tenure that grows
    with calendar time) is compared with the ``rolling_days`` before the current window
    instead: its row says so (``reference`` ``rolling <n>d``, ``structural`` the reason).
    """
    ts = pd.to_datetime(scored["ts"])
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    recent_start = current_start(ts, end, recent_days, min_current_rows, max_current_days)
    window = _window(getattr(model, "metadata", {}) or {}, "train")
    cur_mask = (ts >= recent_start) & (ts < end)
    frame = scored.rename(columns={"score": SCORE})
    current = frame[cur_mask.to_numpy()]
    fixed = [SCORE, *(f for f in model.feature_names if not is_structural(f))]
    structural = [f for f in model.feature_names if is_structural(f)]
    groups = column_references(window, recent_start, complete_from or {}, fixed)
    parts = []
    for (ref_start, ref_end, kind), columns in groups.items():
        text = _window_text(ref_start, ref_end)
        parts.append(
            drift_table(
                frame[_in_window(ts, text)], current, columns, model=model.name,
                threshold=threshold, reference_kind=kind, reference_window=text,
            )
        )  # fmt: skip
    if structural:
        roll_start = recent_start - pd.Timedelta(days=rolling_days)
        parts.append(
            drift_table(
                frame[((ts >= roll_start) & (ts < recent_start)).to_numpy()], current,
                structural, model=model.name, threshold=threshold,
                reference_kind=f"rolling {rolling_days}d",
                reference_window=_window_text(roll_start, recent_start),
            )
        )  # fmt: skip
    (ref_start, ref_end, reference_kind), _ = next(iter(groups.items()))  # the score's
    reference_text = _window_text(ref_start, ref_end)
    order = {f: i for i, f in enumerate([*fixed, *structural])}
    drift = pd.concat(parts, ignore_index=True)
    drift = drift.sort_values("feature", key=lambda f: f.map(order), kind="stable")
    drift = drift.reset_index(drop=True)
    performance = cohort_performance(
        scored[ts < end], model=model.name, period="W" if fraud else "M", fraud=fraud
    )
    features = drift.loc[drift["feature"] != SCORE, "psi"]
    info = {
        "model": model.name,
        "version": str(model.version),
        "reference": reference_kind,
        "reference_window": reference_text,
        "training_window": _window_text(*window) if window else None,
        "current_window": _window_text(recent_start, end),
        "n_reference": int(_in_window(ts, reference_text).sum()),
        "n_current": len(current),
        "score_psi": float(drift.loc[drift["feature"] == SCORE, "psi"].iloc[0]),
        "max_feature_psi": float(features.max()) if len(features) else np.nan,
        "status": "ok",
    }
    return drift, performance, info


def _month_windows(
    ts: pd.Series, start: pd.Timestamp | None, end: pd.Timestamp
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    first = ts.min() if start is None else start
    months = pd.period_range(pd.Timestamp(first), end - pd.Timedelta(days=1), freq="M")
    return [
        (
            max(m.start_time, pd.Timestamp(first)),
            min(m.end_time.normalize() + pd.Timedelta(days=1), end),
        )
        for m in months
    ]


def drift_trend(
    model: Any,
    scored: pd.DataFrame,
    drift: pd.DataFrame,
    info: Mapping[str, Any],
    *,
    threshold: float = DEFAULT_PSI_THRESHOLD,
    rolling_days: int = ROLLING_REFERENCE_DAYS,
    min_rows: int = MIN_TREND_ROWS,
) -> pd.DataFrame:
    """Monthly PSI of the score and of every feature against the same reference as the
    day's ``drift`` (each row's ``reference_window``, from :func:`monitor_model`; a
    structural feature against the ``rolling_days`` before the month), from the earliest
    reference's first month to the as-of month (``info["current_window"]`` end).  Months
    with fewer than ``min_rows`` decisions are left out.  Returns the :func:`drift_table`
    columns plus ``month``; the statuses use the alert's thresholds."""
    columns = [*drift_table(scored, scored, []).columns, "month"]
    ts = pd.to_datetime(scored["ts"])
    if ts.isna().all():
        return pd.DataFrame(columns=columns)
    frame = scored.rename(columns={"score": SCORE})
    end = pd.Timestamp(str(info["current_window"]).partition("..")[2]) + pd.Timedelta(days=1)
    day = drift[(drift["model"] == model.name) & (drift["structural"].fillna("") == "")]
    references = [
        (kind, text, frame[_in_window(ts, text)], list(rows["feature"]))
        for (kind, text), rows in day.groupby(["reference", "reference_window"], sort=False)
    ]
    firsts = [str(text).partition("..")[0] for _, text, _, _ in references]
    start = min((pd.Timestamp(f) for f in firsts if f), default=None)
    structural = [f for f in model.feature_names if is_structural(f)]
    parts = []
    for lo, hi in _month_windows(ts, start, end):
        month = frame[((ts >= lo) & (ts < hi)).to_numpy()]
        if len(month) < min_rows:
            continue
        rows = [
            drift_table(
                reference, month, names, model=model.name, threshold=threshold,
                reference_kind=kind, reference_window=text,
            )
            for kind, text, reference, names in references
            if len(reference)
        ]  # fmt: skip
        roll_start = lo - pd.Timedelta(days=rolling_days)
        rolling = frame[((ts >= roll_start) & (ts < lo)).to_numpy()]
        if structural and len(rolling):
            rows.append(
                drift_table(
                    rolling, month, structural, model=model.name, threshold=threshold,
                    reference_kind=f"rolling {rolling_days}d",
                    reference_window=_window_text(roll_start, lo),
                )
            )  # fmt: skip
        if rows:
            month_rows = pd.concat(rows, ignore_index=True)
            parts.append(month_rows.assign(month=lo.to_period("M").start_time))
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)


def characteristics(
    model: Any,
    scored: pd.DataFrame,
    drift: pd.DataFrame,
    info: Mapping[str, Any],
    *,
    top: int = CHARACTERISTIC_TOP,
    limit: int = CHARACTERISTIC_MAX,
) -> pd.DataFrame:
    """Characteristic analysis of the day's drift for one model: for every feature at
    ``shift`` or worse (and at least the ``top`` largest PSIs; at most ``limit``), the
    distribution by bin of its reference (the row's ``reference_window``) and of the current
    window, with each bin's contribution to the PSI
    (:func:`~yidai.jobs.analytics.model_monitoring.characteristic_table`, the same bins as
    the drift row, so the contributions sum to its PSI)."""
    rows = drift[(drift["model"] == model.name) & (drift["feature"] != SCORE)]
    rows = rows[rows["psi"].notna()].sort_values("psi", ascending=False)
    chosen = rows[(rows["status"] != "stable") | (np.arange(len(rows)) < top)].head(limit)
    if chosen.empty:
        return pd.DataFrame()
    ts = pd.to_datetime(scored["ts"])
    current = _in_window(ts, str(info["current_window"]))
    parts = []
    for row in chosen.itertuples(index=False):
        ref = scored.loc[_in_window(ts, row.reference_window), row.feature]
        cur = scored.loc[current, row.feature]
        table = characteristic_table(
            ref.to_numpy(np.float64, na_value=np.nan),
            cur.to_numpy(np.float64, na_value=np.nan),
            int(row.bins),
        )
        parts.append(
            table.assign(
                model=model.name, feature=row.feature, psi=row.psi, status=row.status,
                reference=row.reference,
            )
        )  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def _scored_decisions(
    con: Any,
    model: Any,
    as_of: date,
    *,
    fraud: bool,
    product: str | None,
    lookback_days: int,
    max_rows: int,
    seed: int,
    recent_days: int = 7,
) -> pd.DataFrame:
    """Decisions of the model's product (credit: applications with their label when
    matured; fraud: events with the reports known at ``as_of``), features as known at the
    time (``features.build_training_set``) and the champion's score."""

    if fraud:
        start = as_of - timedelta(days=lookback_days)
        spine = fraud_spine(con, as_of, label_delay_days=0, start=start)
    else:
        assert product is not None
        spine = credit_spine(con, product, as_of, include_declined=True)
        spine = spine[
            pd.to_datetime(spine["decision_ts"])
            >= pd.Timestamp(as_of) - pd.Timedelta(days=lookback_days)
        ]
    # Half the sample from the recent days (the drift's current side), half from before.
    spine = spine.reset_index(drop=True)
    recent = (
        pd.to_datetime(spine["decision_ts"])
        >= pd.Timestamp(as_of) - pd.Timedelta(days=recent_days - 1)
    ).to_numpy()
    spine = pd.concat(
        [_sample(spine[~recent], max_rows // 2, seed), _sample(spine[recent], max_rows // 2, seed)]
    ).reset_index(drop=True)
    if spine.empty:
        return pd.DataFrame(columns=["ts", "label", "score", *model.feature_names])
    frame = build_training_set(con, spine, model.feature_set)
    frame["score"] = model.predict_pd(frame[model.feature_names])
    frame["ts"] = frame["decision_ts"]
    frame["label"] = pd.to_numeric(frame["label"], errors="coerce").astype("Float64")
    return frame[["ts", "label", "score", *model.feature_names]]


def published_scored_decisions(
    serving: Any, model: Any, product: str, as_of: date, lookback_days: int
) -> pd.DataFrame | None:
    """The credit decisions :func:`yidai.jobs.analytics.scored.publish_scored_applications`
    published (features at decision time, the champion's PD, the label when matured), in the
    shape of :func:`_scored_decisions`; None unless they are of ``as_of`` and this champion."""

    area = Path(serving) / SCORED_AREA
    meta = read_meta(area)
    models = meta.get("models")
    if meta.get("as_of") != as_of.isoformat() or not isinstance(models, dict):
        return None
    if models.get(product) != f"{model.name} v{model.version}":
        return None
    table = read_table(area, product)
    columns = ["decision_ts", "label", "pd", *model.feature_names]
    if table is None or any(c not in table.columns for c in columns):
        return None
    ts = pd.to_datetime(table["decision_ts"])
    table = table[(ts >= pd.Timestamp(as_of) - pd.Timedelta(days=lookback_days)).to_numpy()]
    frame = table[columns].rename(columns={"decision_ts": "ts", "pd": "score"})
    frame["label"] = pd.to_numeric(frame["label"], errors="coerce").astype("Float64")
    return frame.reset_index(drop=True)


def read_audit_decisions(audit_url: str, start: date, end: date) -> pd.DataFrame:
    """Audited decisions created in ``[start, end]``: ``created_at, product, outcome, arm,
    amount`` (requested amount for credit, amount for payments)."""
    with AuditReader(audit_url) as reader:
        return reader.decision_outcomes(since=start, before=end + timedelta(days=1))


def run_monitoring(
    as_of: date,
    *,
    settings: Any = None,
    recent_days: int = 7,
    lookback_days: int = 365,
    max_rows: int = 20_000,
    fraud_max_rows: int = 4_000,
    min_current_rows: int = MIN_CURRENT_ROWS,
    threshold: float = DEFAULT_PSI_THRESHOLD,
    publish: bool = True,
) -> MonitoringReport:
    """Compute every monitoring table as of ``as_of`` and publish them for the dashboards.

    Credit models reuse the scored applications published for the dashboards when they are
    of ``as_of`` and the current champion (else their features are rebuilt, at most
    ``max_rows`` decisions); the fraud model scores a sample of ``fraud_max_rows`` events.
    A model without a champion is reported (status ``missing``), not fatal; the run fails
    only if no model at all can be monitored.  Drift is *not* raised here: call
    :func:`check_drift` (the DAG's last task does).
    """

    settings = settings or get_settings()
    drifts, perfs, infos, notes = [], [], [], []
    trends: list[pd.DataFrame] = []
    chars: list[pd.DataFrame] = []
    con = connect_tables(settings=settings, read_only=True)  # the engine's tables
    try:
        rolls = credit_risk.roll_rates(credit_risk.read_tape(con, as_of))
        for name in (*CREDIT_MODELS, FRAUD_MODEL):
            fraud = name == FRAUD_MODEL
            try:
                model = load_model(name, "champion", settings=settings)
            except YidaiError as exc:
                notes.append(f"{name}: {exc}")
                infos.append({"model": name, "version": None, "status": "missing"})
                continue
            product = CREDIT_MODELS.get(name)
            scored = (
                None
                if product is None
                else published_scored_decisions(
                    settings.serving, model, product, as_of, lookback_days
                )
            )
            source = "published scores"
            if scored is None:
                source = "rebuilt features"
                scored = _scored_decisions(
                    con,
                    model,
                    as_of,
                    fraud=fraud,
                    product=product,
                    lookback_days=lookback_days,
                    max_rows=fraud_max_rows if fraud else max_rows,
                    seed=settings.seed,
                    recent_days=recent_days,
                )
            drift, perf, info = monitor_model(
                model, scored, as_of=as_of, recent_days=recent_days, fraud=fraud,
                threshold=threshold, complete_from=_complete_from(con, model),
                min_current_rows=min_current_rows,
            )  # fmt: skip
            info["source"] = source
            if info["reference"] == "baseline":
                notes.append(
                    f"{name}: its training window {info['training_window']} began before "
                    "its features' windows were complete (truncated features); the score's "
                    f"drift is measured against {info['reference_window']} instead, each "
                    "feature's from its own window's complete history"
                )
            drifts.append(drift)
            perfs.append(perf)
            infos.append(info)
            trends.append(drift_trend(model, scored, drift, info, threshold=threshold))
            chars.append(characteristics(model, scored, drift, info))
            log.info(
                "monitoring %s v%s: score PSI %.3f, max feature PSI %.3f",
                name, model.version, info["score_psi"], info["max_feature_psi"],
            )  # fmt: skip
    finally:
        con.close()
    if not drifts:
        raise YidaiError("no champion model to monitor: " + "; ".join(notes))
    try:
        decisions = read_audit_decisions(
            settings.audit_url, as_of - timedelta(days=recent_days - 1), as_of
        )
    except Exception as exc:  # an unreachable audit store must not hide model drift
        notes.append(f"audit store: {exc}")
        decisions = pd.DataFrame(columns=["created_at", "product", "outcome", "arm", "amount"])

    try:
        liquidity = check_liquidity(as_of, settings=settings, days=recent_days)
    except Exception as exc:  # liquidity figures must not hide model drift either
        liquidity = {"problem": str(exc)}
    if liquidity.get("alert"):
        notes.append(liquidity["alert"])
    report = MonitoringReport(
        as_of=as_of,
        drift=explain_drift(
            pd.concat(drifts, ignore_index=True), pd.concat(chars, ignore_index=True)
        ),
        performance=pd.concat(perfs, ignore_index=True),
        decision_rates=decision_rates(decisions, payment_tiers()),
        models=pd.DataFrame(infos),
        notes=notes,
        liquidity=liquidity,
        drift_trend=pd.concat(trends, ignore_index=True),
        characteristics=pd.concat(chars, ignore_index=True),
        roll_rates=rolls,
    )
    if publish:
        report.version = publish_report(report, settings.serving, threshold)
    return report


#: The line products as a SQL list (``catalogue.LINE_PRODUCTS``: names from the catalogue).
_LINE_PRODUCTS_SQL = ", ".join(f"'{p}'" for p in catalogue.LINE_PRODUCTS)
_LINES_SQL = f"""
    WITH lines AS (
        SELECT DISTINCT account_id FROM loan_applications
        WHERE product IN ({_LINE_PRODUCTS_SQL}) AND account_id IS NOT NULL
    )
    SELECT p.account_id, arg_max(p.credit_limit, p.snapshot_date) AS credit_limit,
           arg_max(p.outstanding, p.snapshot_date) AS outstanding,
           arg_max(p.status, p.snapshot_date) AS status
    FROM loan_performance p JOIN lines USING (account_id)
    WHERE p.snapshot_date < $end
    GROUP BY p.account_id
"""
_DRAWN_SQL = f"""
    SELECT CAST(d.ts AS DATE) AS day, sum(d.amount) AS drawn
    FROM loan_drawdowns d
    WHERE d.ts >= $start AND d.ts < $end AND d.account_id IN (
        SELECT account_id FROM loan_applications WHERE product IN ({_LINE_PRODUCTS_SQL}))
    GROUP BY 1 ORDER BY 1
"""


def check_liquidity(as_of: date, *, settings: Any = None, days: int = 7) -> dict[str, Any]:
    """Liquidity of the revolving book (merchant and SME lines) as of ``as_of``.

    The undrawn commitment (the most the book could draw tomorrow,
    :func:`yidai.decisioning.exposure.undrawn_commitment` over each line's latest month-end
    row: open lines active, frozen ones frozen, charged-off ones closed), each of the last
    ``days`` days' drawdowns as a share of it (:func:`~yidai.decisioning.exposure.drawn_share`)
    and an ``alert`` text when a day's share passes ``liquidity_drawn_share_alert``.
    Called by :func:`run_monitoring` (the monitoring job); the alert goes to its notes.
    """
    settings = settings or get_settings()
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    start = end - pd.Timedelta(days=days)
    con = connect_tables(settings=settings, read_only=True)  # the engine's tables
    try:
        lines = con.execute(_LINES_SQL, {"end": end.to_pydatetime()}).df()
        drawn = con.execute(
            _DRAWN_SQL, {"start": start.to_pydatetime(), "end": end.to_pydatetime()}
        ).df()
    finally:
        con.close()
    status = lines["status"].map({"open": "active", "frozen": "frozen"}).fillna("none")
    undrawn = book.undrawn_commitment(lines["credit_limit"], lines["outstanding"], status)
    threshold = float(settings.liquidity_drawn_share_alert)
    per_day: list[dict[str, Any]] = [
        {"day": str(d.date()), "drawn": float(a), "share": book.drawn_share(float(a), undrawn)}
        for d, a in zip(pd.to_datetime(drawn["day"]), drawn["drawn"], strict=True)
    ]
    worst = max((float(d["share"]) for d in per_day), default=0.0)
    result: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "lines": len(lines),
        "undrawn_commitment": undrawn,
        "drawn_per_day": per_day,
        "max_drawn_share": worst,
        "threshold": threshold,
        "alert": None,
    }
    if worst > threshold:
        day = next(d for d in per_day if d["share"] == worst)
        result["alert"] = (
            f"liquidity: drawdowns of {day['day']} took {worst:.1%} of the undrawn commitment "
            f"{undrawn:,.0f} CNY (alert above {threshold:.0%})"
        )
        log.warning("ALERT %s", result["alert"])
    else:
        log.info(
            "liquidity: undrawn commitment %.0f CNY, max daily drawn share %.2f%%",
            undrawn, 100 * worst,
        )  # fmt: skip
    return result


def publish_report(report: MonitoringReport, serving_dir: Any, threshold: float) -> str:
    """Publish the report's tables under ``<serving>/monitoring`` (atomic pointer swap).

    ``drift_history`` carries the daily drift rows of earlier runs forward (a re-run of a
    day replaces that day's rows), so the dashboards can chart PSI over time.
    """

    area = Path(serving_dir) / AREA
    day = pd.Timestamp(report.as_of)
    today = report.drift.assign(as_of=day)
    previous = read_table(area, "drift_history")
    if previous is not None and len(previous):
        previous = previous[pd.to_datetime(previous["as_of"]) != day]
        history = pd.concat([previous, today], ignore_index=True)
    else:
        history = today
    history = history.sort_values(["as_of", "model", "feature"]).reset_index(drop=True)
    perf = report.performance.copy()
    if "cohort" in perf:
        perf["cohort"] = pd.to_datetime(perf["cohort"])
    tables = {
        "drift": today,
        "drift_history": history,
        "performance": perf,
        "decision_rates": report.decision_rates.assign(as_of=day),
        "models": report.models.assign(as_of=day),
        "drift_trend": report.drift_trend.assign(as_of=day),
        "characteristics": report.characteristics.assign(as_of=day),
        "roll_rates": report.roll_rates.assign(as_of=day),
    }
    meta = {
        "as_of": report.as_of.isoformat(),
        "threshold": threshold,
        "watch_threshold": min(DriftThresholds().watch, threshold),
        "rolling_reference_days": ROLLING_REFERENCE_DAYS,
        "notes": report.notes,
    }
    return publish_tables(area, tables, meta)


# ---------------------------------------------------------------------------- refusing to be blind
class BlindMonitoringError(YidaiError):
    """Monitoring could not see: drift or performance not computable, or stale data; the
    message names every model, table and day that was missing."""


#: The event tables the features mostly read: POS and payment traces, and the lending book;
#: the monitoring refuses to be blind when one of them is stale (:func:`latest_data_day`).
HISTORY_TABLES = ("pos_transactions", "payments", "loan_applications")


def latest_data_day(con: Any) -> dict[str, date | None]:
    """The newest event day of each of :data:`HISTORY_TABLES` (None for an empty table)."""
    out: dict[str, date | None] = {}
    for table in HISTORY_TABLES:
        row = con.execute(f"SELECT max(ts) FROM {table}").fetchone()
        out[table] = None if row is None or row[0] is None else pd.Timestamp(row[0]).date()
    return out


def performance_computable(performance: pd.DataFrame) -> dict[str, bool]:
    """Per model of a performance table: whether at least one cohort has a ranking metric."""
    if performance.empty:
        return {}
    finite = pd.to_numeric(performance["auc"], errors="coerce").notna()
    return {str(k): bool(v) for k, v in finite.groupby(performance["model"]).any().items()}


def blind_spots(
    summary: Mapping[str, Any],
    *,
    latest_days: Mapping[str, str | date | None],
    performance: Mapping[str, bool],
    max_staleness_days: int,
) -> list[str]:
    """What a monitoring run could not see (empty: it saw everything it should).

    A model without a champion, a model whose score PSI is unknown (no current or no
    reference rows), a model with no performance metric on any matured cohort, and an
    event table whose newest day is more than ``max_staleness_days`` before the as-of day
    (or that is empty)."""
    as_of = date.fromisoformat(str(summary["as_of"])[:10])
    problems: list[str] = []
    for info in summary.get("models") or []:
        name = str(info.get("model"))
        if info.get("status") == "missing":
            problems.append(f"{name}: no champion to monitor")
            continue
        psi = info.get("score_psi")
        if psi is None or (isinstance(psi, float) and math.isnan(psi)):
            problems.append(
                f"{name}: score drift unknown ({info.get('n_current', 0)} current rows in "
                f"{info.get('current_window')}, {info.get('n_reference', 0)} reference rows)"
            )
        if not performance.get(name, False):
            problems.append(f"{name}: no performance metric (no matured cohort with both classes)")
    for table, day in latest_days.items():
        if day is None:
            problems.append(f"{table}: no data")
            continue
        newest = date.fromisoformat(str(day)[:10])
        if (as_of - newest).days > max_staleness_days:
            problems.append(
                f"{table}: newest data {newest.isoformat()} is {(as_of - newest).days} days "
                f"before {as_of.isoformat()} (limit {max_staleness_days})"
            )
    return problems


def check_not_blind(
    summary: Mapping[str, Any],
    *,
    latest_days: Mapping[str, str | date | None],
    performance: Mapping[str, bool],
    max_staleness_days: int,
) -> None:
    """Raise :class:`BlindMonitoringError` naming everything :func:`blind_spots` found."""
    problems = blind_spots(
        summary,
        latest_days=latest_days,
        performance=performance,
        max_staleness_days=max_staleness_days,
    )
    if problems:
        raise BlindMonitoringError(
            f"monitoring of {summary.get('as_of')} cannot see: " + "; ".join(problems)
        )

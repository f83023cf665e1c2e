"""Model monitoring on scored historical applications: discrimination on matured cohorts,
score and feature stability, calibration, champion vs challenger.

Every metric comes from :mod:`models.metrics` (AUC, KS, PSI, calibration table); this module
only slices the scored applications into cohorts.  ``label`` is set only for matured loans.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from models import metrics
from models.drift import PSI_WATCH_THRESHOLD

#: The dashboard shows AUC / KS only for booking months with at least this many matured loans.
MIN_COHORT = 30


def matured(scored: pd.DataFrame) -> pd.DataFrame:
    """Applications whose default label is known (approved and matured)."""
    return scored.loc[scored["label"].notna()]


def _ranking_metrics(label: np.ndarray, score: np.ndarray, fraud: bool) -> dict[str, float]:
    """AUC and KS (and average precision for fraud); NaN when ``label`` has a single class."""
    if len(label) < 2 or label.min() == label.max():
        return {"auc": np.nan, "ks": np.nan, **({"average_precision": np.nan} if fraud else {})}
    out = {"auc": metrics.auc(label, score), "ks": metrics.ks(label, score)}
    if fraud:
        out["average_precision"] = metrics.average_precision(label, score)
    return out


def cohort_performance(
    scored: pd.DataFrame,
    *,
    score: str = "score",
    cohort: str | None = None,
    period: str = "M",
    model: str = "",
    fraud: bool = False,
    min_rows: int = 1,
) -> pd.DataFrame:
    """Ranking and calibration per cohort of the labelled rows of ``scored`` (``label`` set).

    Cohorts are the values of column ``cohort`` (e.g. ``booking_month``), else the ``period``
    of ``ts`` (``M`` booking month for credit, ``W`` week for fraud).  Per cohort: ``model,
    cohort, n, positives, positive_rate`` (observed), ``mean_score`` (expected), ``auc``,
    ``ks`` (and ``average_precision`` with ``fraud``); the ranking metrics are NaN for a
    cohort with a single class or fewer than ``min_rows`` rows.
    """
    columns = ["model", "cohort", "n", "positives", "positive_rate", "mean_score", "auc", "ks"]
    columns += ["average_precision"] if fraud else []
    labelled = matured(scored)
    if labelled.empty:
        return pd.DataFrame(columns=columns)
    if cohort is not None:
        keys = labelled[cohort].to_numpy()
    else:
        keys = pd.to_datetime(labelled["ts"]).dt.to_period(period).dt.start_time.dt.date.to_numpy()
    no_ranking = _ranking_metrics(np.zeros(0), np.zeros(0), fraud)
    rows = []
    for key, part in labelled.groupby(keys, sort=True):
        label = part["label"].to_numpy(np.int64)
        values = part[score].to_numpy(np.float64)
        ranking = _ranking_metrics(label, values, fraud) if len(part) >= min_rows else no_ranking
        rows.append(
            {
                "model": model,
                "cohort": key,
                "n": len(part),
                "positives": int(label.sum()),
                "positive_rate": float(label.mean()),
                "mean_score": float(values.mean()),
                **ranking,
            }
        )
    return pd.DataFrame(rows, columns=columns)


def reference_months(scored: pd.DataFrame, months: int = 3) -> list[pd.Timestamp]:
    """The earliest ``months`` booking months: the stability reference window."""
    return sorted(pd.to_datetime(scored["booking_month"]).unique())[:months]


def months_of_window(scored: pd.DataFrame, window: str) -> list[pd.Timestamp]:
    """The booking months of ``scored`` inside a ``YYYY-MM-DD..YYYY-MM-DD`` window (e.g. the
    drift reference of the monitoring run); empty when the window is malformed."""
    start, _, end = str(window).partition("..")
    try:
        lo = pd.Timestamp(start).to_period("M").start_time if start else pd.Timestamp.min
        hi = pd.Timestamp(end)
    except ValueError:
        return []
    months = pd.to_datetime(pd.Series(scored["booking_month"].unique()))
    return sorted(months[(months >= lo) & (months <= hi)])


def score_psi_by_month(
    scored: pd.DataFrame, reference: Sequence[pd.Timestamp], column: str = "pd"
) -> pd.DataFrame:
    """PSI of ``column`` in each booking month against the reference months (all applicants)."""
    months = pd.to_datetime(scored["booking_month"])
    expected = scored.loc[months.isin(reference), column].to_numpy(np.float64)
    rows = [
        {
            "booking_month": month,
            "applications": len(group),
            "psi": metrics.psi(expected, group[column].to_numpy(np.float64)),
        }
        for month, group in scored.groupby(months, sort=True)
    ]
    return pd.DataFrame(rows, columns=["booking_month", "applications", "psi"])


def feature_psi(
    scored: pd.DataFrame,
    features: Sequence[str],
    reference: Sequence[pd.Timestamp],
    recent_months: int = 2,
) -> pd.DataFrame:
    """PSI of each feature: the latest ``recent_months`` booking months against the reference."""
    months = pd.to_datetime(scored["booking_month"])
    recent = sorted(months.unique())[-recent_months:]
    values = metrics.psi_by_feature(
        scored.loc[months.isin(reference), list(features)],
        scored.loc[months.isin(recent), list(features)],
    )
    out = pd.DataFrame({"feature": list(values), "psi": list(values.values())})
    return out.sort_values(["psi", "feature"], ascending=[False, True]).reset_index(drop=True)


def calibration(scored: pd.DataFrame, pd_column: str = "pd", bins: int = 10) -> pd.DataFrame:
    """Expected vs observed default rate per PD decile on matured loans."""
    done = matured(scored)
    if done.empty:
        return pd.DataFrame(columns=["bucket", "n", "expected_rate", "observed_rate"])
    return metrics.calibration_table(
        done["label"].to_numpy(np.int64), done[pd_column].to_numpy(np.float64), bins
    )


def champion_vs_challenger(scored: pd.DataFrame) -> pd.DataFrame:
    """AUC, KS and Brier of the champion and the challenger on the same matured loans."""
    done = matured(scored)
    rows = []
    arms = [
        ("champion", "pd", "model_version"),
        ("challenger", "challenger_pd", "challenger_version"),
    ]
    for arm, column, version in arms:
        if column not in done or done[column].isna().all():
            continue
        y = done["label"].to_numpy(np.int64)
        p = done[column].to_numpy(np.float64)
        ranking = _ranking_metrics(y, p, fraud=False)
        rows.append(
            {
                "arm": arm,
                "version": str(done[version].iloc[0]) if len(done) else "",
                "accounts": len(done),
                "auc": ranking["auc"],
                "ks": ranking["ks"],
                "brier": metrics.brier(y, p) if len(done) else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=["arm", "version", "accounts", "auc", "ks", "brier"])


def _edge(value: float) -> str:
    """A bin edge as a reader wants it: 12,345 / 3.25 / 0.0123."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3g}"


def characteristic_table(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Characteristic analysis of one feature: its distribution by bin in the reference
    (``expected``) and the current (``actual``) sample, and each bin's part of the PSI.

    The bins are those of :func:`models.metrics.psi`: the ``bins`` quantiles of the
    reference (repeated edges merged; bin ``i`` holds ``edge[i-1] < x <= edge[i]``) plus a
    ``missing`` bin; shares are floored at ``PSI_EPSILON``.  ``contribution_i = (a_i - e_i)
    * ln(a_i / e_i)``, so the contributions sum to the feature's PSI.  Returns ``bin, label,
    lower, upper, n_reference, n_current, reference_share, current_share, contribution``.
    """
    e = np.asarray(expected, dtype=np.float64).ravel()
    a = np.asarray(actual, dtype=np.float64).ravel()
    if e.size == 0 or a.size == 0:
        raise ValueError("characteristic_table needs non-empty reference and current samples")
    present = e[~np.isnan(e)]
    edges = (
        np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
        if present.size
        else np.empty(0)
    )

    def counts(values: np.ndarray) -> np.ndarray:
        missing = np.isnan(values)
        idx = np.searchsorted(edges, values[~missing], side="left")
        return np.r_[np.bincount(idx, minlength=edges.size + 1), missing.sum()].astype(np.int64)

    n_e, n_a = counts(e), counts(a)
    e_share = np.maximum(n_e / e.size, metrics.PSI_EPSILON)
    a_share = np.maximum(n_a / a.size, metrics.PSI_EPSILON)
    lower = np.r_[-np.inf, edges, np.nan]
    upper = np.r_[edges, np.inf, np.nan]
    labels = [f"≤ {_edge(edges[0])}" if edges.size else "all values"]
    labels += [f"{_edge(lo)} – {_edge(hi)}" for lo, hi in itertools.pairwise(edges)]
    labels += [f"> {_edge(edges[-1])}"] if edges.size else []
    labels += ["missing"]
    return pd.DataFrame(
        {
            "bin": np.arange(len(labels)),
            "label": labels,
            "lower": lower,
            "upper": upper,
            "n_reference": n_e,
            "n_current": n_a,
            "reference_share": e_share,
            "current_share": a_share,
            "contribution": (a_share - e_share) * np.log(a_share / e_share),
        }
    )


#: The drift alert's thresholds (``models.drift``), for pages that chart PSI.
PSI_WATCH = PSI_WATCH_THRESHOLD
PSI_ALERT = metrics.PSI_ALERT_THRESHOLD
#: The name under which the monitoring job reports the score's PSI.
SCORE_FEATURE = "__score__"


def model_drift(drift: pd.DataFrame, model: str) -> pd.DataFrame:
    """The published drift rows of ``model`` (``monitoring/drift``), worst first, the
    score shown as ``score``, with ``is_structural`` (the row's reference is rolling)."""
    rows = drift[drift["model"] == model].copy()
    rows["feature"] = rows["feature"].replace({SCORE_FEATURE: "score"})
    structural = rows["structural"] if "structural" in rows else pd.Series("", index=rows.index)
    rows["structural"] = structural.fillna("").astype(str)
    rows["is_structural"] = rows["structural"] != ""
    for column in ("reference", "reference_window"):  # absent from older published runs
        if column not in rows:
            rows[column] = ""
    return rows.sort_values(["psi", "feature"], ascending=[False, True]).reset_index(drop=True)


def trend_for(trend: pd.DataFrame, model: str, top: int = 8) -> pd.DataFrame:
    """The monthly PSI rows (``monitoring/drift_trend``) of ``model`` for the score and the
    ``top`` features with the largest PSI in the latest month, oldest month first."""
    rows = trend[trend["model"] == model].copy()
    if rows.empty:
        return rows
    rows["feature"] = rows["feature"].replace({SCORE_FEATURE: "score"})
    latest = rows[rows["month"] == rows["month"].max()].sort_values("psi", ascending=False)
    keep = ["score", *[f for f in latest["feature"] if f != "score"][:top]]
    return rows[rows["feature"].isin(keep)].sort_values(["month", "feature"]).reset_index(drop=True)

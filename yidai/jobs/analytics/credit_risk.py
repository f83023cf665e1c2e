"""Credit risk monitoring as a model-risk team reports it: calibration over time (observed
default rate against the model's predicted PD, by grade and by score band, per booking
period) and roll rates between days-past-due buckets month by month.

Pure functions on frames (the scored applications of :mod:`yidai.jobs.analytics.scored`, the
month-end performance tape); :func:`read_tape` is the one warehouse reader.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from yidai.core.errors import YidaiError

#: Days-past-due buckets of the roll-rate matrix, best to worst; ``charged_off`` is absorbing.
DPD_BUCKETS = ("current", "1-30", "31-60", "61-90", "90+", "charged_off")
#: Where an account goes when it has no row next month (repaid or closed, not charged off).
CLOSED = "closed"
#: Score bands: the model's score points (higher = safer), 50 points wide.
SCORE_BAND_WIDTH = 50
#: |z| of the binomial test at or above which calibration is amber / red (95% / 99%).
Z_AMBER, Z_RED = 1.96, 2.58


def dpd_bucket(days_past_due: pd.Series, status: pd.Series | None = None) -> pd.Series:
    """The bucket of each month-end row: ``charged_off`` when ``status`` says so, else by
    days past due: 0 ``current``, 1-30, 31-60, 61-90, 91+ ``90+``.  A negative or missing
    DPD raises (a tape row without it cannot be bucketed)."""
    dpd = pd.to_numeric(days_past_due, errors="coerce")
    if dpd.isna().any() or (dpd < 0).any():
        raise YidaiError("dpd_bucket: days_past_due must be a whole number >= 0 on every row")
    out = pd.cut(dpd, [-1, 0, 30, 60, 90, np.inf], labels=list(DPD_BUCKETS[:5]), right=True).astype(
        object
    )
    if status is not None:
        out[(status.astype(str) == "charged_off").to_numpy()] = "charged_off"
    return out


def roll_rates(tape: pd.DataFrame) -> pd.DataFrame:
    """Month-to-month roll rates between DPD buckets.

    ``tape`` has ``account_id, snapshot_date, days_past_due`` and optionally ``status`` and
    ``product``.  For each account in bucket ``i`` at month end ``m`` (not charged off), its
    bucket ``j`` at the next month end (``closed`` when it has no row then):
    ``rate(m, i -> j) = n(m, i -> j) / n(m, i)``; the rates out of a bucket sum to 1.  The
    latest month has no next month and is left out.  Returns ``product, month, from_bucket,
    to_bucket, n, from_total, rate`` (``product`` = ``all`` when the tape has none).
    """
    columns = ["product", "month", "from_bucket", "to_bucket", "n", "from_total", "rate"]
    if tape.empty:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(
        {
            "account_id": tape["account_id"].to_numpy(),
            "product": tape["product"].to_numpy() if "product" in tape else "all",
            "month": pd.to_datetime(tape["snapshot_date"]).dt.to_period("M").to_numpy(),
            "bucket": dpd_bucket(tape["days_past_due"], tape.get("status")).to_numpy(),
        }
    )
    last = frame["month"].max()
    following = frame.assign(month=frame["month"] - 1)[["account_id", "month", "bucket"]]
    pairs = frame[(frame["bucket"] != "charged_off") & (frame["month"] < last)].merge(
        following.rename(columns={"bucket": "to_bucket"}), on=["account_id", "month"], how="left"
    )
    pairs["to_bucket"] = pairs["to_bucket"].fillna(CLOSED)
    counts = (
        pairs.rename(columns={"bucket": "from_bucket"})
        .groupby(["product", "month", "from_bucket", "to_bucket"], sort=True)
        .size()
        .rename("n")
        .reset_index()
    )
    counts["from_total"] = counts.groupby(["product", "month", "from_bucket"])["n"].transform("sum")
    counts["rate"] = counts["n"] / counts["from_total"]
    counts["month"] = counts["month"].dt.start_time
    return counts[columns].reset_index(drop=True)


def roll_forward(rates: pd.DataFrame) -> pd.DataFrame:
    """Per product and month, the share of each bucket's accounts that rolled one bucket
    worse (or from 90+ to charged off): ``current -> 1-30``, ``1-30 -> 31-60``, ...  The
    classic roll-rate line: ``product, month, transition, rate, from_total``."""
    columns = ["product", "month", "transition", "rate", "from_total"]
    steps = list(itertools.pairwise(DPD_BUCKETS))
    rows: list[dict[str, Any]] = []
    for (product, month, source), group in rates.groupby(
        ["product", "month", "from_bucket"], sort=True
    ):
        for frm, to in steps:
            if frm == source:
                hit = group.loc[group["to_bucket"] == to, "rate"]
                rows.append(
                    {
                        "product": product,
                        "month": month,
                        "transition": f"{frm} → {to}",
                        "rate": float(hit.sum()) if len(hit) else 0.0,
                        "from_total": int(group["from_total"].iloc[0]),
                    }
                )
    return pd.DataFrame(rows, columns=columns)


_TAPE_SQL = """
    WITH accounts AS (
        SELECT coalesce(account_id, application_id) AS account_id, any_value(product) AS product
        FROM loan_applications WHERE decision = 'approved' GROUP BY 1)
    SELECT p.account_id, a.product, p.snapshot_date, p.days_past_due, p.status
    FROM loan_performance p JOIN accounts a USING (account_id)
    WHERE p.snapshot_date < $end
"""


def read_tape(con: Any, as_of: date) -> pd.DataFrame:
    """The month-end performance tape known at ``as_of`` with each account's product:
    ``account_id, product, snapshot_date, days_past_due, status``."""
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    return con.execute(_TAPE_SQL, {"end": end.to_pydatetime()}).df()


def score_band(score: pd.Series, width: int = SCORE_BAND_WIDTH) -> pd.Series:
    """The band ``[lo, lo + width)`` of each score (points), labelled ``"600-649"``; a
    missing score gets ``<NA>``."""
    if width <= 0:
        raise YidaiError(f"score_band: width must be > 0, got {width}")
    points = pd.to_numeric(score, errors="coerce")
    lo = np.floor(points / width) * width
    labels = [
        pd.NA if np.isnan(v) else f"{int(v)}-{int(v) + width - 1}" for v in lo.to_numpy(float)
    ]
    return pd.Series(labels, index=score.index, dtype="string")


def calibration_over_time(
    scored: pd.DataFrame,
    by: str,
    *,
    period: str = "Q",
    pd_column: str = "pd",
    month_column: str = "booking_month",
) -> pd.DataFrame:
    """Observed default rate against the predicted PD per booking period and group.

    On matured applications (``label`` set), per ``period`` of ``month_column`` (``Q``
    quarter, ``M`` month) and value of column ``by`` (e.g. ``grade``, ``score_band``):
    ``n``, ``defaults`` = sum(label), ``observed_rate`` = defaults / n, ``expected_rate`` =
    mean(PD), ``ratio`` = observed / expected, and the binomial test
    ``z = (defaults - sum PD) / sqrt(sum PD (1 - PD))`` with ``status`` green (|z| < 1.96),
    amber (< 2.58) or red.  Returns ``period, <by>, n, defaults, observed_rate,
    expected_rate, ratio, z, status``.
    """
    columns = ["period", by, "n", "defaults", "observed_rate", "expected_rate", "ratio", "z"]
    columns.append("status")
    if by not in scored.columns:
        raise YidaiError(f"calibration_over_time: no column {by!r} in the scored applications")
    done = scored.loc[scored["label"].notna()]
    if done.empty:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(
        {
            "period": pd.to_datetime(done[month_column]).dt.to_period(period).dt.start_time,
            by: done[by].astype(str).to_numpy(),
            "label": done["label"].astype(float).to_numpy(),
            "pd": done[pd_column].astype(float).to_numpy(),
        }
    )
    frame["var"] = frame["pd"] * (1 - frame["pd"])
    out = (
        frame.groupby(["period", by], sort=True)
        .agg(
            n=("label", "size"), defaults=("label", "sum"), pd_sum=("pd", "sum"), var=("var", "sum")
        )
        .reset_index()
    )
    out["defaults"] = out["defaults"].astype(int)
    out["observed_rate"] = out["defaults"] / out["n"]
    out["expected_rate"] = out["pd_sum"] / out["n"]
    out["ratio"] = out["observed_rate"] / out["expected_rate"].where(out["expected_rate"] > 0)
    out["z"] = (out["defaults"] - out["pd_sum"]) / np.sqrt(out["var"].where(out["var"] > 0))
    out["status"] = calibration_status(out["z"])
    return out[columns]


def calibration_status(z: pd.Series) -> pd.Series:
    """``green`` (|z| < 1.96), ``amber`` (< 2.58), ``red``; ``unknown`` for a NaN z."""
    values = z.abs().to_numpy(float)
    labels = np.where(values >= Z_RED, "red", np.where(values >= Z_AMBER, "amber", "green"))
    return pd.Series(np.where(np.isnan(values), "unknown", labels), index=z.index)


def band_order(labels: Iterable[str]) -> list[str]:
    """Score-band labels (``"600-649"``) sorted by their lower bound."""
    return sorted({str(v) for v in labels}, key=lambda v: int(v.split("-")[0]))


def roll_matrix(rates: pd.DataFrame, month: pd.Timestamp) -> pd.DataFrame:
    """The roll-rate matrix of one month (rows: bucket at that month end, columns: bucket
    at the next; each row sums to 1), buckets in :data:`DPD_BUCKETS` order plus ``closed``;
    rows of buckets with no account are left out."""
    rows = rates[pd.to_datetime(rates["month"]) == pd.Timestamp(month)]
    if rows.empty:
        return pd.DataFrame()
    matrix = rows.pivot_table(
        index="from_bucket", columns="to_bucket", values="n", aggfunc="sum", fill_value=0
    )
    order = [b for b in (*DPD_BUCKETS, CLOSED)]
    matrix = matrix.reindex(
        index=[b for b in order if b in matrix.index], columns=order, fill_value=0
    )
    return matrix.div(matrix.sum(axis=1), axis=0)

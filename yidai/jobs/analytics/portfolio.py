"""Portfolio analytics on the published tables: KPIs, vintage curves, lines and drawdown spikes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd


def filter_rows(
    frame: pd.DataFrame,
    *,
    products: Sequence[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    date_column: str = "day",
    product_column: str = "product",
) -> pd.DataFrame:
    """Rows of the selected products whose ``date_column`` falls in ``[start, end]``."""
    mask = pd.Series(True, index=frame.index)
    if products is not None:
        mask &= frame[product_column].isin(list(products))
    days = pd.to_datetime(frame[date_column])
    if start is not None:
        mask &= days >= pd.Timestamp(start)
    if end is not None:
        mask &= days <= pd.Timestamp(end)
    return frame.loc[mask]


def portfolio_kpis(
    applications_daily: pd.DataFrame, exposure_monthly: pd.DataFrame
) -> dict[str, float]:
    """Headline figures: applications, approval rate, booked amount, and latest exposure.

    ``approval_rate = approved / applications``; exposure figures come from the latest
    month-end snapshot: ``drawn`` (outstanding), ``committed`` (lines) and
    ``utilisation = drawn / committed``; ``dpd30_share`` is the 30+ DPD share of drawn balance.
    """
    applications = float(applications_daily["applications"].sum())
    approved = float(applications_daily["approved"].sum())
    kpis = {
        "applications": applications,
        "approved": approved,
        "approval_rate": approved / applications if applications else float("nan"),
        "booked_amount": float(applications_daily["booked_amount"].sum()),
        "committed": float("nan"),
        "drawn": float("nan"),
        "utilisation": float("nan"),
        "dpd30_share": float("nan"),
    }
    if len(exposure_monthly):
        latest = exposure_monthly[
            exposure_monthly["snapshot_date"] == exposure_monthly["snapshot_date"].max()
        ]
        committed, drawn = float(latest["committed"].sum()), float(latest["drawn"].sum())
        kpis.update(
            committed=committed,
            drawn=drawn,
            utilisation=drawn / committed if committed else float("nan"),
            dpd30_share=float(latest["dpd30_balance"].sum()) / drawn if drawn else float("nan"),
        )
    return kpis


def daily_activity(applications_daily: pd.DataFrame) -> pd.DataFrame:
    """Per day and product: applications, approvals, ``approval_rate`` and booked amount."""
    out = applications_daily.groupby(["day", "product"], as_index=False)[
        ["applications", "approved", "booked_amount"]
    ].sum()
    out["approval_rate"] = out["approved"] / out["applications"].where(out["applications"] > 0)
    return out


def vintage_curves(vintages: pd.DataFrame, dpd: int = 30) -> pd.DataFrame:
    """Cumulative bad rate by booking month and months on book: ``ever{dpd} / accounts``."""
    if dpd not in (30, 90):
        raise ValueError(f"vintage curves exist for 30+ or 90+ DPD, not {dpd}")
    column = f"ever{dpd}"
    out = (
        vintages.groupby(["booking_month", "mob"], as_index=False)[["accounts", column]]
        .sum()
        .sort_values(["booking_month", "mob"])
    )
    out["bad_rate"] = out[column] / out["accounts"].where(out["accounts"] > 0)
    out["cohort"] = pd.to_datetime(out["booking_month"]).dt.strftime("%Y-%m")
    return out.reset_index(drop=True)


def committed_vs_drawn(exposure_monthly: pd.DataFrame) -> pd.DataFrame:
    """Per month-end and product: committed lines, drawn balance, undrawn and utilisation."""
    out = exposure_monthly.groupby(["snapshot_date", "product"], as_index=False)[
        ["committed", "drawn", "accounts"]
    ].sum()
    out["undrawn"] = out["committed"] - out["drawn"]
    out["utilisation"] = out["drawn"] / out["committed"].where(out["committed"] > 0)
    return out


def drawdown_spikes(
    drawdowns_daily: pd.DataFrame, window: int = 28, threshold: float = 3.0
) -> pd.DataFrame:
    """Daily drawn amount against its trailing baseline, flagging liquidity-pressure spikes.

    Over all selected products, for each day: ``baseline`` is the mean of the previous
    ``window`` days (the day itself excluded), ``zscore = (amount - baseline) / std`` with the
    same window's standard deviation, and ``spike = zscore >= threshold``.  Days with fewer
    than ``window // 2`` previous days get no z-score.
    """
    daily = drawdowns_daily.groupby("day", as_index=False)[["amount", "drawdowns"]].sum()
    daily["day"] = pd.to_datetime(daily["day"])
    daily = daily.set_index("day").asfreq("D", fill_value=0).reset_index().sort_values("day")
    prior = daily["amount"].shift(1).rolling(window, min_periods=max(window // 2, 2))
    daily["baseline"] = prior.mean()
    std = prior.std().replace(0, np.nan)
    daily["zscore"] = (daily["amount"] - daily["baseline"]) / std
    daily["spike"] = daily["zscore"] >= threshold
    return daily.reset_index(drop=True)


def vintage_curves_by_cohort(
    vintages: pd.DataFrame, dpd: int = 30, cohort: str = "Q"
) -> pd.DataFrame:
    """Cumulative bad rate per product, origination cohort and months on book.

    ``cohort`` is ``"Q"`` (origination quarter, e.g. ``2025Q2``) or ``"M"`` (month,
    ``2025-04``).  ``bad_rate = sum(ever{dpd}) / sum(accounts)`` over the cohort's booking
    months observed at that month on book (a quarter's later months join as they age).
    """
    if dpd not in (30, 90):
        raise ValueError(f"vintage curves exist for 30+ or 90+ DPD, not {dpd}")
    if cohort not in ("Q", "M"):
        raise ValueError(f"cohort is 'Q' (quarter) or 'M' (month), not {cohort!r}")
    column = f"ever{dpd}"
    months = pd.to_datetime(vintages["booking_month"])
    label = months.dt.to_period("Q").astype(str) if cohort == "Q" else months.dt.strftime("%Y-%m")
    out = (
        vintages.assign(cohort=label)
        .groupby(["product", "cohort", "mob"], as_index=False)[["accounts", column]]
        .sum()
        .sort_values(["product", "cohort", "mob"])
    )
    out["bad_rate"] = out[column] / out["accounts"].where(out["accounts"] > 0)
    return out.reset_index(drop=True)

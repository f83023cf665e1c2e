"""Shared widgets of the pages: empty states, filters, number formats."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pandas as pd
import streamlit as st

EMPTY_HINT = "run `make demo` (or the pipeline) to publish it"


def no_data(what: str, hint: str = EMPTY_HINT) -> None:
    """A clear empty state instead of an exception."""
    st.info(f"No data yet: {what} has not been published; {hint}.", icon="ℹ️")


@dataclass(frozen=True)
class Filters:
    """The sidebar selection of a page."""

    products: list[str]
    start: date | None
    end: date | None
    grades: list[str] | None = None


def _as_date(value: object) -> date:
    return pd.Timestamp(value).date()  # type: ignore[arg-type]


def sidebar_filters(
    key: str,
    products: Sequence[str] | None,
    days: pd.Series | None = None,
    grades: Sequence[str] | None = None,
) -> Filters:
    """Product (if ``products``), period (if ``days``) and grade (if ``grades``) filters."""
    sidebar = st.sidebar
    sidebar.header("Filters")
    chosen: list[str] = []
    if products:
        chosen = sidebar.multiselect(
            "Product", list(products), default=list(products), key=f"{key}_product"
        )
    start = end = None
    if days is not None and len(days):
        lo, hi = _as_date(days.min()), _as_date(days.max())
        period = sidebar.date_input(
            "Period", value=(lo, hi), min_value=lo, max_value=hi, key=f"{key}_period"
        )
        if isinstance(period, tuple | list) and len(period) == 2:
            start, end = period[0], period[1]
        elif isinstance(period, tuple | list) and len(period) == 1:
            start = period[0]
    chosen_grades = None
    if grades is not None:
        chosen_grades = sidebar.multiselect(
            "Grade", list(grades), default=list(grades), key=f"{key}_grade"
        )
    return Filters(products=chosen, start=start, end=end, grades=chosen_grades)


def fmt_money(value: float) -> str:
    """CNY with a thousands separator, or em dash when undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if abs(value) >= 1e9:
        return f"¥{value / 1e9:,.2f}B"
    if abs(value) >= 1e6:
        return f"¥{value / 1e6:,.2f}M"
    if abs(value) >= 1e4:
        return f"¥{value / 1e3:,.1f}k"
    return f"¥{value:,.0f}"


def fmt_pct(value: float, digits: int = 1) -> str:
    """Percentage, or em dash when undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value * 100:.{digits}f}%"


def fmt_int(value: float) -> str:
    """Whole number with separators."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.0f}"

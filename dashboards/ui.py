"""Shared widgets of the pages: empty states, filters, number formats, product labels and
the colours every page uses for products and decisions."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.elements.lib.column_types import ColumnConfig

EMPTY_HINT = "run `make demo` (or the pipeline) to publish it"

#: Products as the bank names them, English beside (keys: ``yidai.core.catalogue.PRODUCTS``).
PRODUCT_LABELS: dict[str, str] = {
    "personal": "逸贷 personal",
    "merchant": "逸贷 merchant",
    "sme": "网贷通 SME",
    "payment": "e支付 payments",
}
#: One colour per product on every page (keys and labels both, for charts colouring either).
PRODUCT_COLOURS: dict[str, str] = {
    "personal": "#1f77b4",
    "merchant": "#ff7f0e",
    "sme": "#2ca02c",
    "payment": "#9467bd",
}
PRODUCT_COLOURS.update({PRODUCT_LABELS[k]: v for k, v in list(PRODUCT_COLOURS.items())})
#: One colour per decision on every page: green = good for the customer, amber = a second
#: look (refer, step-up, keep), red = no (decline, freeze, close).
DECISION_COLOURS: dict[str, str] = {
    "approve": "#2ca02c",
    "allow": "#2ca02c",
    "new": "#17becf",
    "increase": "#2ca02c",
    "refer": "#ffbf00",
    "step_up": "#ffbf00",
    "keep": "#a0a0a0",
    "none": "#c7c7c7",
    "decrease": "#ff7f0e",
    "decline": "#d62728",
    "freeze": "#8c564b",
    "close": "#7f7f7f",
}
DECISION_LABELS: dict[str, str] = {"step_up": "step-up"}
DECISION_COLOURS.update({DECISION_LABELS[k]: DECISION_COLOURS[k] for k in DECISION_LABELS})


def product_label(product: str) -> str:
    """``sme`` -> ``网贷通 SME``; an unknown product is shown as it is."""
    return PRODUCT_LABELS.get(str(product), str(product))


def decision_label(decision: str) -> str:
    """``step_up`` -> ``step-up``; other decisions as they are."""
    return DECISION_LABELS.get(str(decision), str(decision))


def _undefined(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


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
            "Product",
            list(products),
            default=list(products),
            format_func=product_label,
            key=f"{key}_product",
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


def fmt_cny(value: float | None, digits: int = 0) -> str:
    """Full CNY amount with thousands separators (``¥402,988,799``); em dash when undefined.

    A negative amount puts the sign before the currency (``-¥1,200``).
    """
    if _undefined(value):
        return "—"
    assert value is not None
    sign = "-" if value < 0 and round(abs(value), digits) > 0 else ""
    return f"{sign}¥{abs(value):,.{digits}f}"


def fmt_money(value: float | None) -> str:
    """Compact CNY (``¥403.0M``, ``-¥979.0k``) with thousands separators; em dash if undefined."""
    if _undefined(value):
        return "—"
    assert value is not None
    sign, value = ("-" if value < 0 else ""), abs(value)
    if value >= 1e9:
        return f"{sign}¥{value / 1e9:,.2f}B"
    if value >= 1e6:
        return f"{sign}¥{value / 1e6:,.2f}M"
    if value >= 1e4:
        return f"{sign}¥{value / 1e3:,.1f}k"
    return f"{sign}¥{value:,.0f}" if round(value) else "¥0"
    if abs(value) >= 1e9:
        return f"¥{value / 1e9:,.2f}B"
    if abs(value) >= 1e6:
        return f"¥{value / 1e6:,.2f}M"
    if abs(value) >= 1e4:
        return f"¥{value / 1e3:,.1f}k"
    return f"¥{value:,.0f}"


def fmt_pct(value: float | None, digits: int = 1) -> str:
    """A share as a percentage (0.0213 -> ``2.1%``), or em dash when undefined."""
    if _undefined(value):
        return "—"
    assert value is not None
    return f"{value * 100:,.{digits}f}%"


def fmt_pp(value: float | None, digits: int = 1) -> str:
    """A change of a share in percentage points (0.012 -> ``1.2 pp``)."""
    if _undefined(value):
        return "—"
    assert value is not None
    return f"{value * 100:,.{digits}f} pp"


def fmt_delta(
    value: float | None,
    fmt: Callable[[float], str] = fmt_money,
    *,
    arrow: bool = False,
    suffix: str = "",
) -> str | None:
    """A change with its sign first: ``+¥1.20M``, ``-¥979.0k``, ``-1.2 pp``; None if undefined.

    ``fmt`` formats the magnitude (``fmt_money``, ``fmt_cny``, ``fmt_pp``, ``fmt_int``...).
    The leading ``-`` is what makes ``st.metric`` draw a down arrow; a change that shows as
    zero at ``fmt``'s precision is ``"0"`` (no arrow).  ``arrow=True`` adds ▲ / ▼ for text
    outside a metric.
    """
    if _undefined(value):
        return None
    assert value is not None
    magnitude = fmt(abs(value))
    if magnitude == fmt(0.0):
        return "0" + suffix if not arrow else "= 0" + suffix
    sign = "-" if value < 0 else "+"
    mark = ("▼ " if value < 0 else "▲ ") if arrow else ""
    return f"{mark}{sign}{magnitude}{suffix}"


def fmt_int(value: float | None) -> str:
    """Whole number with separators."""
    if _undefined(value):
        return "—"
    assert value is not None
    return f"{value:,.0f}"


def pct_column(label: str, help: str | None = None) -> ColumnConfig:
    """A table column of shares shown as percentages (0.021 -> 2.10%)."""
    return st.column_config.NumberColumn(label, help=help, format="percent")


def cny_column(label: str, help: str | None = None) -> ColumnConfig:
    """A table column of CNY amounts with thousands separators (¥402,988,799)."""
    return st.column_config.NumberColumn(label, help=help, format="¥%,.0f")


def cny_change_column(label: str, help: str | None = None) -> ColumnConfig:
    """A table column of CNY changes, sign first (+500, -423); the label should say CNY."""
    return st.column_config.NumberColumn(label, help=help, format="%+,.0f")


def int_column(label: str, help: str | None = None) -> ColumnConfig:
    """A table column of counts with thousands separators."""
    return st.column_config.NumberColumn(label, help=help, format="localized")


def axis_pct(fig: go.Figure, axis: str = "y", digits: int = 1) -> go.Figure:
    """Show an axis of shares as percentages."""
    fig.update_layout({f"{axis}axis": {"tickformat": f".{digits}%"}})
    return fig


def axis_cny(fig: go.Figure, axis: str = "y") -> go.Figure:
    """Show an axis of CNY amounts as ¥ with SI suffixes (¥2.5M)."""
    fig.update_layout({f"{axis}axis": {"tickprefix": "¥", "tickformat": "~s"}})
    return fig


def label_products(frame: pd.DataFrame, column: str = "product") -> pd.DataFrame:
    """A copy with the product column shown as the bank names it (``sme`` -> ``网贷通 SME``)."""
    if column not in frame:
        return frame
    return frame.assign(**{column: frame[column].map(product_label)})

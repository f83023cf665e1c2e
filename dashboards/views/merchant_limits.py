"""Merchant limits: lines, last refresh's changes with reasons, utilisation, exposure by grade."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboards import data, ui
from yidai.jobs.analytics import merchant_lines as ml


def render() -> None:
    """Lay out the merchant limits page."""
    st.title("Merchant limits")
    limits = data.limits_table("limits")
    changes = data.limits_table("changes")
    by_grade = data.limits_table("summary_by_grade")
    if limits is None or changes is None or by_grade is None:
        ui.no_data(
            "the merchant limits (serving/limits)", "run `yidai limits refresh` or `make demo`"
        )
        return
    summary = data.limits_summary()
    st.caption(f"Refresh as of {summary.get('as_of', '?')}, version {data.limits_version()}")
    grades = sorted(limits["grade"].astype(str).unique())
    chosen = st.sidebar.multiselect("Grade", grades, default=grades, key="ml_grade")
    limits = limits[limits["grade"].astype(str).isin(chosen)]
    changes = changes[changes["grade"].astype(str).isin(chosen)]
    kpis = ml.line_kpis(limits)  # definitions: yidai.decisioning.exposure
    cols = st.columns(4)
    cols[0].metric("Active lines", ui.fmt_int(kpis["active_lines"]))
    cols[1].metric("Frozen", ui.fmt_int(kpis["frozen_lines"]))
    cols[2].metric("Frozen share of open lines", ui.fmt_pct(kpis["frozen_share"]))
    cols[3].metric("Utilisation (active)", ui.fmt_pct(kpis["utilisation"]))
    cols = st.columns(4)
    cols[0].metric("Committed (active lines)", ui.fmt_money(kpis["committed"]))
    cols[1].metric("Drawn (active + frozen)", ui.fmt_money(kpis["drawn"]))
    cols[2].metric("Available", ui.fmt_money(kpis["available"]))
    cols[3].metric("Exposure (drawn + available)", ui.fmt_money(kpis["exposure"]))

    left, right = st.columns(2)
    active = limits[limits["status"] == "active"]
    left.plotly_chart(
        px.histogram(
            active,
            x="credit_line",
            color="grade",
            nbins=40,
            title="Distribution of active lines (CNY)",
        ),
        key="ml_lines",
    )
    right.plotly_chart(
        px.bar(
            ml.utilisation_bands(limits), x="band", y="lines", title="Active lines by utilisation"
        ),
        key="ml_util",
    )
    st.subheader("Last refresh: changes and their reasons")
    reasons = ml.changes_by_reason(changes)
    if reasons.empty:
        st.info("The last refresh changed no line in this selection.")
    else:
        st.plotly_chart(
            px.bar(
                reasons,
                x="merchants",
                y="reason_text",
                color="decision",
                orientation="h",
                title="Merchants per decision and reason",
            ),
            key="ml_reasons",
        )
        st.dataframe(changes.head(500), hide_index=True)
    st.subheader("Exposure by grade (drawn + available; adds up to the Exposure tile)")
    st.plotly_chart(
        px.bar(
            ml.exposure_by_grade(limits).melt(id_vars="grade", value_vars=["drawn", "available"]),
            x="grade",
            y="value",
            color="variable",
            title="Exposure by grade (CNY): drawn and available",
        ),
        key="ml_grade_exposure",
    )
    st.caption(
        "Change by grade at the last refresh: "
        + ", ".join(
            f"{g} {ui.fmt_money(c)}"
            for g, c in zip(by_grade["grade"], by_grade["exposure_change"], strict=True)
            if str(g) in chosen
        )
    )
    runs = data.limit_runs()
    if len(runs) > 1:
        st.plotly_chart(
            px.line(
                runs,
                x="as_of",
                y="exposure_after",
                markers=True,
                title="Committed exposure after each refresh",
            ),
            key="ml_runs",
        )

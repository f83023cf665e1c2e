"""Portfolio page: activity, exposure, vintage curves, committed vs drawn, drawdown spikes."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboards import data, ui
from yidai.jobs.analytics import portfolio as pf

AREA = "portfolio"


def render() -> None:
    """Lay out the portfolio page."""
    st.title("Portfolio")
    apps = data.published_table(AREA, "applications_daily")
    exposure = data.published_table(AREA, "exposure_monthly")
    vintages = data.published_table(AREA, "vintages")
    drawdowns = data.published_table(AREA, "drawdowns_daily")
    if apps is None or exposure is None or vintages is None or drawdowns is None:
        ui.no_data("the portfolio tables (serving/portfolio)")
        return
    meta = data.published_meta(AREA)
    st.caption(
        f"Published tables as of {meta.get('as_of', '?')} (version {meta.get('version', '?')})"
    )
    products = sorted(apps["product"].unique())
    f = ui.sidebar_filters("portfolio", products, apps["day"])
    apps = pf.filter_rows(apps, products=f.products, start=f.start, end=f.end)
    exposure = pf.filter_rows(exposure, products=f.products, date_column="snapshot_date")
    kpis = pf.portfolio_kpis(apps, exposure)
    cols = st.columns(6)
    cols[0].metric("Applications", ui.fmt_int(kpis["applications"]))
    cols[1].metric("Approval rate", ui.fmt_pct(kpis["approval_rate"]))
    cols[2].metric("Booked lines", ui.fmt_money(kpis["booked_amount"]))
    cols[3].metric("Committed", ui.fmt_money(kpis["committed"]))
    cols[4].metric("Drawn", ui.fmt_money(kpis["drawn"]))
    cols[5].metric("30+ DPD of drawn", ui.fmt_pct(kpis["dpd30_share"], 2))

    activity = pf.daily_activity(apps)
    left, right = st.columns(2)
    left.plotly_chart(
        px.line(activity, x="day", y="applications", color="product", title="Applications per day"),
        key="pf_apps",
    )
    right.plotly_chart(
        px.line(
            activity, x="day", y="approval_rate", color="product", title="Approval rate per day"
        ),
        key="pf_rate",
    )
    st.plotly_chart(
        px.bar(
            activity,
            x="day",
            y="booked_amount",
            color="product",
            title="Booked lines (CNY) per day",
        ),
        key="pf_booked",
    )

    st.subheader("Delinquency vintages")
    dpd = st.radio(
        "Bad definition", [30, 90], format_func=lambda d: f"ever {d}+ DPD", horizontal=True
    )
    curves = pf.vintage_curves(
        pf.filter_rows(vintages, products=f.products, date_column="booking_month"), dpd
    )
    if curves.empty:
        st.info("No booked accounts in this selection yet.")
    else:
        st.plotly_chart(
            px.line(
                curves,
                x="mob",
                y="bad_rate",
                color="cohort",
                markers=True,
                labels={"mob": "months on book", "bad_rate": f"cumulative {dpd}+ DPD rate"},
                title=f"{dpd}+ DPD by booking month",
            ),
            key="pf_vintage",
        )

    st.subheader("Revolving lines: committed vs drawn")
    lines = pf.committed_vs_drawn(exposure)
    st.plotly_chart(
        px.bar(
            lines.melt(id_vars=["snapshot_date", "product"], value_vars=["drawn", "undrawn"]),
            x="snapshot_date",
            y="value",
            color="variable",
            facet_col="product",
            title="Drawn and undrawn commitment at month end (CNY)",
        ),
        key="pf_lines",
    )

    st.subheader("Drawdown spikes")
    spikes = pf.drawdown_spikes(
        pf.filter_rows(drawdowns, products=f.products, start=f.start, end=f.end)
    )
    st.metric("Spike days", int(spikes["spike"].sum()))
    fig = px.line(
        spikes, x="day", y=["amount", "baseline"], title="Daily drawn amount vs 28-day baseline"
    )
    flagged = spikes[spikes["spike"]]
    fig.add_scatter(
        x=flagged["day"],
        y=flagged["amount"],
        mode="markers",
        name="spike",
        marker={"color": "red", "size": 10},
    )
    st.plotly_chart(fig, key="pf_spikes")

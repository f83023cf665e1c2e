"""Portfolio page: activity, exposure, vintage curves, committed vs drawn, drawdown spikes.

Every figure follows the sidebar's Product and Period filters: applications and drawdowns by
day, exposure by month-end snapshot, vintages by booking month."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboards import data, ui
from yidai.jobs.analytics import portfolio as pf

AREA = "portfolio"
PRODUCT = {"product": "Product"}


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
        f"Published tables as of {meta.get('as_of', '?')} (version {meta.get('version', '?')}). "
        "Product and Period filters apply to every figure."
    )
    products = [p for p in ui.PRODUCT_LABELS if p in set(apps["product"])]
    days = pd.concat(
        [
            pd.to_datetime(apps["day"]),
            pd.to_datetime(exposure["snapshot_date"]),
            pd.to_datetime(drawdowns["day"]),
        ]
    )
    f = ui.sidebar_filters("portfolio", products, days)
    apps = pf.filter_rows(apps, products=f.products, start=f.start, end=f.end)
    exposure = pf.filter_rows(
        exposure, products=f.products, start=f.start, end=f.end, date_column="snapshot_date"
    )
    kpis = pf.portfolio_kpis(apps, exposure)
    cols = st.columns(6)
    cols[0].metric("Applications", ui.fmt_int(kpis["applications"]))
    cols[1].metric("Approval rate", ui.fmt_pct(kpis["approval_rate"]))
    cols[2].metric("Booked lines", ui.fmt_money(kpis["booked_amount"]))
    cols[3].metric("Committed", ui.fmt_money(kpis["committed"]))
    cols[4].metric("Drawn", ui.fmt_money(kpis["drawn"]))
    cols[5].metric("30+ DPD of drawn", ui.fmt_pct(kpis["dpd30_share"], 2))

    activity = ui.label_products(pf.daily_activity(apps))
    colours = {"color_discrete_map": ui.PRODUCT_COLOURS}
    left, right = st.columns(2)
    left.plotly_chart(
        px.line(
            activity, x="day", y="applications", color="product", **colours,
            labels={"day": "Day", "applications": "Applications per day", **PRODUCT},
            title="Applications per day",
        ),
        key="pf_apps",
    )  # fmt: skip
    right.plotly_chart(
        ui.axis_pct(
            px.line(
                activity, x="day", y="approval_rate", color="product", **colours,
                labels={"day": "Day", "approval_rate": "Approval rate", **PRODUCT},
                title="Approval rate per day",
            )
        ),
        key="pf_rate",
    )  # fmt: skip
    st.plotly_chart(
        ui.axis_cny(
            px.bar(
                activity, x="day", y="booked_amount", color="product", **colours,
                labels={"day": "Day", "booked_amount": "Booked lines (CNY)", **PRODUCT},
                title="Booked lines per day (CNY)",
            )
        ),
        key="pf_booked",
    )  # fmt: skip

    st.subheader("Delinquency vintages by product and origination quarter")
    left, right = st.columns(2)
    dpd = left.radio(
        "Bad definition",
        [30, 90],
        format_func=lambda d: f"ever {d}+ DPD",
        horizontal=True,
        key="pf_dpd",
    )
    cohort = right.radio(
        "Cohort",
        ["Q", "M"],
        format_func=lambda c: "origination quarter" if c == "Q" else "booking month",
        horizontal=True,
        key="pf_cohort",
    )
    booked = pf.filter_rows(
        vintages, products=f.products, start=f.start, end=f.end, date_column="booking_month"
    )
    curves = ui.label_products(pf.vintage_curves_by_cohort(booked, int(dpd), str(cohort)))
    if curves.empty:
        st.info("No booked accounts in this selection yet.")
    else:
        fig = px.line(
            curves,
            x="mob",
            y="bad_rate",
            color="cohort",
            facet_col="product",
            markers=True,
            labels={
                "mob": "Months on book",
                "bad_rate": f"Cumulative {dpd}+ DPD rate (share of accounts)",
                "cohort": "Cohort",
                **PRODUCT,
            },
            title=f"Ever {dpd}+ DPD by months on book, per product and cohort",
        )
        fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
        st.plotly_chart(ui.axis_pct(fig), key="pf_vintage")

    st.subheader("Revolving lines: committed vs drawn")
    lines = ui.label_products(pf.committed_vs_drawn(exposure))
    melted = lines.melt(
        id_vars=["snapshot_date", "product"], value_vars=["drawn", "undrawn"], var_name="part"
    )
    fig = px.bar(
        melted,
        x="snapshot_date",
        y="value",
        color="part",
        facet_col="product",
        color_discrete_map={"drawn": "#1f77b4", "undrawn": "#aec7e8"},
        labels={"snapshot_date": "Month end", "value": "CNY", "part": "", **PRODUCT},
        title="Drawn and undrawn commitment at month end (CNY)",
    )
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    st.plotly_chart(ui.axis_cny(fig), key="pf_lines")

    st.subheader("Drawdown spikes")
    spikes = pf.drawdown_spikes(
        pf.filter_rows(drawdowns, products=f.products, start=f.start, end=f.end)
    )
    st.metric("Spike days", int(spikes["spike"].sum()))
    fig = px.line(
        spikes.rename(columns={"amount": "drawn", "baseline": "28-day baseline"}),
        x="day",
        y=["drawn", "28-day baseline"],
        labels={"day": "Day", "value": "Drawn per day (CNY)", "variable": ""},
        title="Daily drawn amount vs its 28-day baseline",
    )
    flagged = spikes[spikes["spike"]]
    fig.add_scatter(
        x=flagged["day"],
        y=flagged["amount"],
        mode="markers",
        name="spike",
        marker={"color": ui.DECISION_COLOURS["decline"], "size": 10},
    )
    st.plotly_chart(ui.axis_cny(fig), key="pf_spikes")

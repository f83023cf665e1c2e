"""Merchant limits (逸贷 merchant revolving lines): lines, the last refresh's changes with
their reasons, utilisation, exposure by grade."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboards import data, ui
from yidai.jobs.analytics import merchant_lines as ml

CHANGE_COLUMNS = {
    "merchant_id": st.column_config.TextColumn("Merchant"),
    "account_id": st.column_config.TextColumn("Account"),
    "previous_status": "Status before",
    "status": "Status",
    "previous_line": ui.cny_column("Line before"),
    "credit_line": ui.cny_column("Line"),
    "change": ui.cny_change_column("Change (CNY)"),
    "outstanding": ui.cny_column("Drawn"),
    "decision": "Decision",
    "reason_text": "Reason",
    "reason_code": "Reason code",
    "grade": "Grade",
    "pd": ui.pct_column("PD"),
    "underwriting_codes": "Underwriting codes",
    "as_of": None,
    "version": None,
}
SHOWN_CHANGES = [c for c, v in CHANGE_COLUMNS.items() if v is not None]


def render() -> None:
    """Lay out the merchant limits page."""
    st.title(f"Merchant limits ({ui.product_label('merchant')} revolving lines)")
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
    hist = px.histogram(
        active,
        x="credit_line",
        color="grade",
        nbins=40,
        category_orders={"grade": grades},
        labels={"credit_line": "Credit line (CNY)", "grade": "Grade"},
        title="Distribution of active lines (CNY)",
    )
    hist.update_yaxes(title_text="Active lines")
    left.plotly_chart(ui.axis_cny(hist, "x"), key="ml_lines")
    right.plotly_chart(
        px.bar(
            ml.utilisation_bands(limits),
            x="band",
            y="lines",
            labels={"band": "Utilisation (drawn / line)", "lines": "Active lines"},
            title="Active lines by utilisation",
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
                color_discrete_map=ui.DECISION_COLOURS,
                labels={"merchants": "Merchants", "reason_text": "Reason", "decision": "Decision"},
                title="Merchants per decision and reason",
            ),
            key="ml_reasons",
        )
        shown = [c for c in SHOWN_CHANGES if c in changes]
        st.caption(f"{len(changes):,} changed line(s); the first 500 by merchant:")
        st.dataframe(
            changes[shown].head(500),
            hide_index=True,
            column_config={c: CHANGE_COLUMNS[c] for c in shown},
        )
    st.subheader("Exposure by grade (drawn + available; adds up to the Exposure tile)")
    st.plotly_chart(
        ui.axis_cny(
            px.bar(
                ml.exposure_by_grade(limits).melt(
                    id_vars="grade", value_vars=["drawn", "available"], var_name="part"
                ),
                x="grade",
                y="value",
                color="part",
                color_discrete_map={"drawn": "#1f77b4", "available": "#aec7e8"},
                labels={"grade": "Grade", "value": "Exposure (CNY)", "part": ""},
                title="Exposure by grade (CNY): drawn and available",
            )
        ),
        key="ml_grade_exposure",
    )
    st.caption(
        "Change by grade at the last refresh: "
        + ", ".join(
            f"{g} {ui.fmt_delta(c) or '—'}"
            for g, c in zip(by_grade["grade"], by_grade["exposure_change"], strict=True)
            if str(g) in chosen
        )
    )
    runs = data.limit_runs()
    if len(runs) > 1:
        st.plotly_chart(
            ui.axis_cny(
                px.line(
                    runs,
                    x="as_of",
                    y="exposure_after",
                    markers=True,
                    labels={"as_of": "Refresh date", "exposure_after": "Committed exposure (CNY)"},
                    title="Committed exposure after each refresh",
                ).update_xaxes(tickformat="%Y-%m-%d", dtick=86_400_000 if len(runs) <= 31 else None)
            ),
            key="ml_runs",
        )

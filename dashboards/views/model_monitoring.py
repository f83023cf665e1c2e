"""Model monitoring: AUC/KS on matured cohorts, score and feature PSI, calibration,
champion vs challenger."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboards import data, ui
from yidai.jobs.analytics import model_monitoring as mm
from yidai.jobs.analytics.portfolio import filter_rows

AREA = "applications"


def _reference(scored: pd.DataFrame, product: str) -> tuple[list[pd.Timestamp], str]:
    """The PSI reference months: the drift reference of the last monitoring run for this
    product's model (a window of complete feature history), else the first 3 months."""
    models = data.published_table("monitoring", "models")
    if models is not None and "reference_window" in models.columns:
        row = models[models["model"] == f"{product}_pd"]
        if len(row) and isinstance(row["reference_window"].iloc[0], str):
            window = row["reference_window"].iloc[0]
            months = mm.months_of_window(scored, window)
            if months:
                return months, f"the monitoring reference {window}"
    return mm.reference_months(scored), "the first 3 months"


def render() -> None:
    """Lay out the model monitoring page."""
    st.title("Model monitoring")
    products = data.scored_products()
    if not products:
        ui.no_data(
            "the scored applications (serving/applications)",
            "train the models, then run `make demo`",
        )
        return
    product = st.sidebar.selectbox("Product", products, key="mm_product")
    scored = data.published_table(AREA, product)
    assert scored is not None
    grades = sorted(scored["grade"].astype(str).unique())
    f = ui.sidebar_filters("mm", None, scored["booking_month"], grades)
    scored = filter_rows(scored, start=f.start, end=f.end, date_column="booking_month")
    scored = scored[scored["grade"].astype(str).isin(f.grades or grades)]
    if scored.empty:
        st.info("No application in this selection.")
        return
    cohorts = mm.cohort_performance(
        scored, score="pd", cohort="booking_month", min_rows=mm.MIN_COHORT
    )
    reference, reference_label = _reference(scored, product)
    psi = mm.score_psi_by_month(scored, reference)
    done = cohorts.dropna(subset=["auc"])
    cols = st.columns(4)
    cols[0].metric("Champion", str(scored["model_version"].iloc[0]))
    cols[1].metric(
        "AUC (latest matured cohort)", "—" if done.empty else f"{done['auc'].iloc[-1]:.3f}"
    )
    cols[2].metric(
        "KS (latest matured cohort)", "—" if done.empty else f"{done['ks'].iloc[-1]:.3f}"
    )
    cols[3].metric("Score PSI (latest month)", f"{psi['psi'].iloc[-1]:.3f}")

    st.subheader("Discrimination on matured cohorts")
    if done.empty:
        st.info("No cohort has matured yet (labels need the performance window).")
    else:
        st.plotly_chart(
            px.line(
                done.rename(columns={"cohort": "booking_month"}),
                x="booking_month",
                y=["auc", "ks"],
                markers=True,
                title="AUC and KS by booking month (matured loans)",
            ),
            key="mm_auc",
        )
    left, right = st.columns(2)
    fig = px.bar(psi, x="booking_month", y="psi", title=f"Score PSI by month vs {reference_label}")
    fig.add_hline(y=0.1, line_dash="dot", annotation_text="0.1 watch")
    fig.add_hline(y=0.25, line_dash="dash", line_color="red", annotation_text="0.25 act")
    left.plotly_chart(fig, key="mm_psi")
    declared = data.published_meta(AREA).get("features") or {}
    names = declared.get(product, []) if isinstance(declared, dict) else []
    features = [c for c in names if c in scored.columns]
    if features:
        fpsi = mm.feature_psi(scored, features, reference)
        right.plotly_chart(
            px.bar(
                fpsi.head(15),
                x="psi",
                y="feature",
                orientation="h",
                title="Feature PSI: latest 2 months vs reference",
            ),
            key="mm_fpsi",
        )

    st.subheader("Calibration: expected vs observed")
    calib = mm.calibration(scored)
    if calib.empty:
        st.info("No matured loans to calibrate against yet.")
    else:
        st.plotly_chart(
            px.line(
                calib,
                x="bucket",
                y=["expected_rate", "observed_rate"],
                markers=True,
                title="Default rate per PD decile (matured loans)",
            ),
            key="mm_calib",
        )
    st.subheader("Champion vs challenger")
    arms = mm.champion_vs_challenger(scored)
    if len(arms) < 2:
        st.info("No challenger model is registered for this product.")
    st.dataframe(arms, hide_index=True)

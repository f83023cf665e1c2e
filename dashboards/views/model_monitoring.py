"""Model monitoring as a model-risk team reports it: the drift alert of ``monitoring_daily``
(the same published table, thresholds and colours), feature PSI trends, characteristic
analysis, calibration over time by grade and score band, DPD roll rates, discrimination on
matured cohorts and champion vs challenger."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboards import data, ui
from models.drift import STATUS_COLOURS
from yidai.jobs.analytics import credit_risk as cr
from yidai.jobs.analytics import model_monitoring as mm
from yidai.jobs.analytics.portfolio import filter_rows

AREA = "applications"
MONITORING = "monitoring"
STATUS_LABELS = {
    "stable": "stable",
    "shift": "watch",
    "drift": "ALERT",
    "unknown": "unknown",
}
CALIBRATION_COLOURS = {"green": "#2e7d32", "amber": "#f9a825", "red": "#c62828"}


#: The drift table's columns on the page.
DRIFT_SHOWN = (
    "feature", "psi", "status", "reference", "reference_window", "mean_reference",
    "mean_current",
)  # fmt: skip


def _thresholds(meta: dict[str, object]) -> tuple[float, float]:
    alert = float(meta.get("threshold") or mm.PSI_ALERT)  # type: ignore[arg-type]
    watch = float(meta.get("watch_threshold") or min(mm.PSI_WATCH, alert))  # type: ignore[arg-type]
    return watch, alert


def _psi_bands(fig: go.Figure, watch: float, alert: float) -> go.Figure:
    """The alert's severity bands behind a PSI chart, in the status colours."""
    fig.add_hline(y=watch, line_dash="dot", line_color=STATUS_COLOURS["shift"])
    fig.add_hline(y=alert, line_dash="dash", line_color=STATUS_COLOURS["drift"])
    fig.add_annotation(
        x=1, xref="paper", y=alert, text=f"alert ≥ {alert:g}", showarrow=False, yshift=8
    )
    fig.add_annotation(
        x=1, xref="paper", y=watch, text=f"watch ≥ {watch:g}", showarrow=False, yshift=8
    )
    return fig


def _drift_section(model: str) -> None:
    """The day's drift alert rows and the PSI trends (the DAG's published tables)."""
    drift = data.published_table(MONITORING, "drift")
    meta = data.published_meta(MONITORING)
    st.subheader("Drift alert (monitoring_daily)")
    if drift is None or drift.empty:
        ui.no_data("the monitoring tables (serving/monitoring)", "run `yidai monitor run`")
        return
    watch, alert = _thresholds(meta)
    rows = mm.model_drift(drift, model)
    if rows.empty:
        st.info(f"The monitoring run of {meta.get('as_of')} did not monitor {model}.")
        return
    counts = rows["status"].value_counts()
    cols = st.columns(4)
    cols[0].metric("Monitoring as of", str(meta.get("as_of")))
    cols[1].metric(f"Features in alert (PSI ≥ {alert:g})", str(int(counts.get("drift", 0))))
    cols[2].metric(f"Features to watch (PSI ≥ {watch:g})", str(int(counts.get("shift", 0))))
    cols[3].metric("Structural features (rolling reference)", str(int(rows["is_structural"].sum())))
    shown = rows.assign(status=rows["status"].map(STATUS_LABELS))[list(DRIFT_SHOWN)]
    st.dataframe(
        shown.style.apply(
            lambda r: [
                f"color: {STATUS_COLOURS[rows.loc[r.name, 'status']]}" if c == "status" else ""
                for c in r.index
            ],
            axis=1,
        ).format({"psi": "{:.3f}", "mean_reference": "{:,.3g}", "mean_current": "{:,.3g}"}),
        hide_index=True,
        column_config={
            "feature": "Feature",
            "psi": st.column_config.NumberColumn("PSI", help="vs the reference of the row"),
            "status": "Status",
            "reference": "Reference",
            "reference_window": st.column_config.TextColumn(
                "Reference days", help="each feature from its window's complete history"
            ),
            "mean_reference": "Mean (reference)",
            "mean_current": "Mean (current)",
        },
        key="mm_drift_table",
    )
    structural = rows[rows["is_structural"]]
    if len(structural):
        st.caption(
            "Structural drift (declared in models.drift): "
            + "; ".join(
                f"{f}: {r}"
                for f, r in zip(structural["feature"], structural["structural"], strict=True)
            )
        )

    trend = data.published_table(MONITORING, "drift_trend")
    if trend is not None and len(trend):
        series = mm.trend_for(trend, model, top=8)
        fig = px.line(
            series,
            x="month",
            y="psi",
            color="feature",
            markers=True,
            title="Feature and score PSI by month vs the alert's reference",
            labels={"month": "Decision month", "psi": "PSI", "feature": "Feature"},
        )
        flagged = series[series["status"] != "stable"]
        fig.add_trace(
            go.Scatter(
                x=flagged["month"],
                y=flagged["psi"],
                mode="markers",
                marker={
                    "size": 12,
                    "symbol": "circle-open",
                    "color": [STATUS_COLOURS[s] for s in flagged["status"]],
                    "line": {"width": 3},
                },
                name="watch / alert",
            )
        )
        st.plotly_chart(_psi_bands(fig, watch, alert), key="mm_psi_trend")

    chars = data.published_table(MONITORING, "characteristics")
    if chars is not None and len(chars):
        _characteristic_section(chars[chars["model"] == model])


def _characteristic_section(chars: pd.DataFrame) -> None:
    st.subheader("Characteristic analysis")
    if chars.empty:
        st.info("No feature of this model drifted.")
        return
    features = list(dict.fromkeys(chars.sort_values("psi", ascending=False)["feature"]))
    feature = st.selectbox("Feature", features, key="mm_char_feature")
    table = chars[chars["feature"] == feature].sort_values("bin")
    status = str(table["status"].iloc[0])
    st.markdown(
        f"**{feature}**: PSI {table['psi'].iloc[0]:.3f} "
        f"(:{'red' if status == 'drift' else 'orange' if status == 'shift' else 'green'}"
        f"[{STATUS_LABELS.get(status, status)}]) against {table['reference'].iloc[0]}; "
        f"the contributions sum to {table['contribution'].sum():.3f}."
    )
    left, right = st.columns(2)
    shares = table.melt(
        id_vars=["label"],
        value_vars=["reference_share", "current_share"],
        var_name="sample",
        value_name="share",
    ).replace({"reference_share": "reference", "current_share": "current"})
    fig = px.bar(
        shares,
        x="label",
        y="share",
        color="sample",
        barmode="group",
        title="Distribution by bin",
        labels={"label": f"{feature} (bin)", "share": "Share of decisions", "sample": ""},
    )
    left.plotly_chart(ui.axis_pct(fig), key="mm_char_dist")
    fig = px.bar(
        table,
        x="label",
        y="contribution",
        title="Each bin's contribution to the PSI",
        labels={"label": f"{feature} (bin)", "contribution": "PSI contribution"},
    )
    right.plotly_chart(fig, key="mm_char_contrib")
    st.dataframe(
        table[
            [
                "label",
                "n_reference",
                "n_current",
                "reference_share",
                "current_share",
                "contribution",
            ]
        ],
        hide_index=True,
        column_config={
            "label": "Bin",
            "n_reference": ui.int_column("Decisions (reference)"),
            "n_current": ui.int_column("Decisions (current)"),
            "reference_share": ui.pct_column("Share (reference)"),
            "current_share": ui.pct_column("Share (current)"),
            "contribution": st.column_config.NumberColumn("PSI contribution", format="%.4f"),
        },
        key="mm_char_table",
    )


def _calibration_section(scored: pd.DataFrame) -> None:
    st.subheader("Calibration over time: observed default rate vs predicted PD")
    by = st.radio("By", ["grade", "score band"], horizontal=True, key="mm_calib_by")
    frame = (
        scored.assign(score_band=cr.score_band(scored["score"])) if "score" in scored else scored
    )
    column = "grade" if by == "grade" else "score_band"
    calib = cr.calibration_over_time(frame, column)
    if calib.empty:
        st.info("No matured loans to calibrate against yet.")
        return
    order = sorted(calib[column].unique()) if column == "grade" else cr.band_order(calib[column])
    fig = px.line(
        calib,
        x="period",
        y="observed_rate",
        color=column,
        category_orders={column: order},
        markers=True,
        title=f"Observed default rate (solid) and mean predicted PD (dotted) by {by}",
        labels={"period": "Booking quarter", "observed_rate": "Default rate", column: by},
    )
    for trace in px.line(
        calib, x="period", y="expected_rate", color=column, category_orders={column: order}
    ).data:
        trace.update(line={"dash": "dot"}, showlegend=False)
        fig.add_trace(trace)
    st.plotly_chart(ui.axis_pct(fig), key="mm_calib_time")
    st.dataframe(
        calib,
        hide_index=True,
        column_config={
            "period": st.column_config.DateColumn("Booking quarter", format="YYYY-MM"),
            column: by.capitalize(),
            "n": ui.int_column("Matured loans"),
            "defaults": ui.int_column("Defaults"),
            "observed_rate": ui.pct_column("Observed default rate"),
            "expected_rate": ui.pct_column("Mean predicted PD"),
            "ratio": st.column_config.NumberColumn("Observed / predicted", format="%.2f"),
            "z": st.column_config.NumberColumn("Binomial z", format="%.2f"),
            "status": "Status (|z| 1.96 / 2.58)",
        },
        key="mm_calib_table",
    )


def _roll_rate_section(product: str) -> None:
    st.subheader("Roll rates between days-past-due buckets")
    rolls = data.published_table(MONITORING, "roll_rates")
    if rolls is None or rolls.empty:
        ui.no_data("the roll rates (serving/monitoring)", "run `yidai monitor run`")
        return
    rolls = rolls[rolls["product"] == product]
    if rolls.empty:
        st.info(f"No performance tape for {ui.product_label(product)} yet.")
        return
    forward = cr.roll_forward(rolls)
    fig = px.line(
        forward,
        x="month",
        y="rate",
        color="transition",
        markers=True,
        title="Share of accounts rolling one bucket worse, month by month",
        labels={"month": "From month end", "rate": "Roll rate", "transition": "Transition"},
    )
    st.plotly_chart(ui.axis_pct(fig), key="mm_roll_forward")
    months = sorted(pd.to_datetime(rolls["month"]).unique())
    month = st.selectbox(
        "Month", months, index=len(months) - 1, format_func=lambda m: f"{pd.Timestamp(m):%Y-%m}",
        key="mm_roll_month",
    )  # fmt: skip
    matrix = cr.roll_matrix(rolls, pd.Timestamp(month))
    fig = px.imshow(
        matrix,
        text_auto=".1%",
        color_continuous_scale="Reds",
        labels={
            "x": "Bucket next month end",
            "y": f"Bucket at {pd.Timestamp(month):%Y-%m} end",
            "color": "Share",
        },
        title=f"Roll-rate matrix from {pd.Timestamp(month):%Y-%m} (rows sum to 100%)",
    )
    st.plotly_chart(fig, key="mm_roll_matrix")


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
    product = st.sidebar.selectbox(
        "Product", products, format_func=ui.product_label, key="mm_product"
    )
    scored = data.published_table(AREA, product)
    assert scored is not None
    grades = sorted(scored["grade"].astype(str).unique())
    f = ui.sidebar_filters("mm", None, scored["booking_month"], grades)
    scored = filter_rows(scored, start=f.start, end=f.end, date_column="booking_month")
    scored = scored[scored["grade"].astype(str).isin(f.grades or grades)]
    if scored.empty:
        st.info("No application in this selection.")
        return
    st.caption(f"{ui.product_label(product)} · champion {scored['model_version'].iloc[0]}")
    cohorts = mm.cohort_performance(
        scored, score="pd", cohort="booking_month", min_rows=mm.MIN_COHORT
    )
    done = cohorts.dropna(subset=["auc"])
    cols = st.columns(3)
    cols[0].metric("Champion", str(scored["model_version"].iloc[0]))
    cols[1].metric(
        "AUC (latest matured cohort)", "—" if done.empty else f"{done['auc'].iloc[-1]:.3f}"
    )
    cols[2].metric(
        "KS (latest matured cohort)", "—" if done.empty else f"{done['ks'].iloc[-1]:.3f}"
    )
    _drift_section(f"{product}_pd")
    _calibration_section(scored)
    _roll_rate_section(product)

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
                labels={
                    "booking_month": "Booking month",
                    "value": "AUC / KS",
                    "variable": "Metric",
                },
            ),
            key="mm_auc",
        )
    st.subheader("Calibration: expected vs observed per PD decile")
    calib = mm.calibration(scored)
    if calib.empty:
        st.info("No matured loans to calibrate against yet.")
    else:
        fig = px.line(
            calib,
            x="bucket",
            y=["expected_rate", "observed_rate"],
            markers=True,
            title="Default rate per PD decile (matured loans)",
            labels={"bucket": "PD decile", "value": "Default rate", "variable": ""},
        )
        st.plotly_chart(ui.axis_pct(fig), key="mm_calib")
    st.subheader("Champion vs challenger")
    arms = mm.champion_vs_challenger(scored)
    if len(arms) < 2:
        st.info("No challenger model is registered for this product.")
    st.dataframe(
        arms,
        hide_index=True,
        column_config={
            "accounts": ui.int_column("Matured loans"),
            "auc": st.column_config.NumberColumn("AUC", format="%.3f"),
            "ks": st.column_config.NumberColumn("KS", format="%.3f"),
            "brier": st.column_config.NumberColumn("Brier", format="%.4f"),
        },
        key="mm_arms",
    )

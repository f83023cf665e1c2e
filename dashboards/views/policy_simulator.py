"""Policy simulator: a candidate policy against the live one on historical applications."""

from __future__ import annotations

import math

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboards import data, ui
from yidai.core.errors import YidaiError
from yidai.core.settings import get_settings
from yidai.decisioning import load_credit_policy
from yidai.jobs.analytics import policy_sim as ps

AREA = "applications"
#: metric -> (label, value format, change format); rates change in percentage points.
LABELS = {
    "approval_rate": ("Approval rate", ui.fmt_pct, ui.fmt_pp),
    "true_bad_rate": ("Bad rate (truth)", lambda v: ui.fmt_pct(v, 2), lambda v: ui.fmt_pp(v, 2)),
    "observed_bad_rate": (
        "Bad rate (matured)", lambda v: ui.fmt_pct(v, 2), lambda v: ui.fmt_pp(v, 2),
    ),
    "expected_loss": ("Expected loss", ui.fmt_money, ui.fmt_money),
    "volume": ("Volume (approved lines)", ui.fmt_money, ui.fmt_money),
}  # fmt: skip
#: How each row of the comparison table is shown.
ROW_LABELS = {
    "applications": "Applications",
    "approved": "Approved",
    "approval_rate": "Approval rate",
    "refer_rate": "Refer rate",
    "volume": "Volume (approved lines, CNY)",
    "expected_loss": "Expected loss (CNY)",
    "observed_bad_rate": "Bad rate (matured, booked)",
    "true_bad_rate": "Bad rate (simulator truth)",
}
INPUT_KEYS = ("ps_approve", "ps_refer", "ps_maxpd", "ps_factor")


def _reset_inputs() -> None:
    """Switching product starts from that product's live cut-offs."""
    for key in INPUT_KEYS:
        st.session_state.pop(key, None)


def _shown_table(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison table as text: rates in %, money in CNY, changes signed."""
    rows = []
    for metric, live, cand, change in table[["metric", "live", "candidate", "change"]].itertuples(
        index=False
    ):
        if metric.endswith("_rate"):
            value, delta = (lambda v: ui.fmt_pct(v, 2)), (lambda v: ui.fmt_pp(v, 2))
        elif metric in ("volume", "expected_loss"):
            value = delta = ui.fmt_cny
        else:
            value = delta = ui.fmt_int
        rows.append(
            {
                "Metric": ROW_LABELS.get(metric, metric),
                "Live": value(live),
                "Candidate": value(cand),
                "Change": ui.fmt_delta(change, delta, arrow=True) or "—",
            }
        )
    return pd.DataFrame(rows)


def render() -> None:
    """Lay out the policy simulator."""
    st.title("Policy simulator")
    products = data.scored_products()
    if not products:
        ui.no_data(
            "the scored applications (serving/applications)",
            "train the models, then run `make demo`",
        )
        return
    product = st.sidebar.selectbox(
        "Product", products, format_func=ui.product_label, key="ps_product", on_change=_reset_inputs
    )
    scored = data.published_table(AREA, product)
    assert scored is not None
    live = load_credit_policy(product)
    name, value = ps.limit_parameter(live)
    st.caption(
        f"{ui.product_label(product)}: live policy {live.policy_version}, approve from score "
        f"{live.cutoffs.approve_min_score:.0f}, refer from {live.cutoffs.refer_min_score:.0f}, "
        f"limit {name} {value:g}; {len(scored):,} historical applications. Horizon of every "
        f"bad rate and PD: 90+ days past due within {get_settings().performance_months} "
        "months of the application (truth and matured alike; YIDAI_PERFORMANCE_MONTHS)."
    )
    cols = st.columns(4)
    approve = cols[0].number_input(
        "Approve from score",
        value=float(live.cutoffs.approve_min_score),
        step=5.0,
        key="ps_approve",
    )
    refer = cols[1].number_input(
        "Refer from score", value=float(live.cutoffs.refer_min_score), step=5.0, key="ps_refer"
    )
    max_pd = cols[2].number_input(
        "Max PD",
        value=float(live.cutoffs.max_pd or 1.0),
        min_value=0.001,
        max_value=1.0,
        step=0.01,
        key="ps_maxpd",
    )
    factor = cols[3].slider(f"Limit {name} x", 0.5, 2.0, 1.0, 0.05, key="ps_factor")
    try:
        candidate = ps.candidate_policy(
            live,
            approve_min_score=approve,
            refer_min_score=refer,
            max_pd=max_pd,
            limit_factor=factor,
        )
    except YidaiError as exc:
        st.warning(str(exc), icon="⚠️")
        return
    table, live_dec, cand_dec = ps.compare_policies(scored, live, candidate)
    values = table.set_index("metric")
    metric_cols = st.columns(len(LABELS))
    for col, (key, (label, fmt, change_fmt)) in zip(metric_cols, LABELS.items(), strict=True):
        candidate_value = float(values.at[key, "candidate"])  # type: ignore[arg-type]
        change = float(values.at[key, "change"])  # type: ignore[arg-type]
        col.metric(
            label,
            fmt(candidate_value),
            delta=None if math.isnan(change) else ui.fmt_delta(change, change_fmt),
            delta_color="off",
            delta_description="vs live",
        )
    st.dataframe(_shown_table(table), hide_index=True)
    if "true_defaulted" in scored:
        st.subheader("True outcome of applicants, by live and candidate decision (simulator truth)")
        truth = ps.declined_truth(scored, live_dec, cand_dec)
        st.dataframe(
            truth,
            hide_index=True,
            column_config={
                "cell": st.column_config.TextColumn("Live / candidate decision"),
                "applicants": ui.int_column("Applicants"),
                "true_defaults": ui.int_column("True defaults"),
                "true_bad_rate": ui.pct_column("True bad rate"),
            },
        )
        fig = px.bar(
            truth,
            x="cell",
            y="true_bad_rate",
            text="applicants",
            labels={"cell": "Live / candidate decision", "true_bad_rate": "True bad rate"},
            title="True bad rate per decision cell (bar label: applicants)",
        )
        st.plotly_chart(ui.axis_pct(fig), key="ps_truth")
    else:
        st.caption(
            "No simulator truth for these applications (real data): "
            "the outcome of declined applicants is unknown."
        )
    _model_comparison(scored)


def _model_comparison(scored: pd.DataFrame) -> None:
    """Champion vs challenger vs WoE scorecard on the same applicants."""
    st.subheader("Champion, challenger and scorecard on the same applicants")
    share = st.slider("Each model approves this share of applicants, its safest first",
                      0.05, 1.0, 0.6, 0.05, key="ps_share", format="%.2f")  # fmt: skip
    table = ps.compare_models(scored, share)
    if len(table) < 2:
        st.caption("Only the champion is registered: train the challengers (`yidai train`).")
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "model": "Model",
            "version": "Version",
            "expected_bad_rate": ui.pct_column("Expected bad rate (mean PD)"),
            "true_bad_rate": ui.pct_column("True bad rate (simulator)"),
            "true_auc": st.column_config.NumberColumn("AUC on truth", format="%.3f"),
            "label_auc": st.column_config.NumberColumn("AUC on matured labels", format="%.3f"),
        },
    )

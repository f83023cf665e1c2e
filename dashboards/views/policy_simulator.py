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
LABELS = {
    "approval_rate": ("Approval rate", ui.fmt_pct),
    "true_bad_rate": ("Bad rate (truth)", ui.fmt_pct),
    "observed_bad_rate": ("Bad rate (matured)", ui.fmt_pct),
    "expected_loss": ("Expected loss", ui.fmt_money),
    "volume": ("Volume", ui.fmt_money),
}


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
    product = st.sidebar.selectbox("Product", products, key="ps_product")
    scored = data.published_table(AREA, product)
    assert scored is not None
    live = load_credit_policy(product)
    name, value = ps.limit_parameter(live)
    st.caption(
        f"Live policy {live.policy_version}: approve >= {live.cutoffs.approve_min_score:.0f}, "
        f"refer >= {live.cutoffs.refer_min_score:.0f}, limit {name} {value:g}. "
        f"{len(scored):,} historical applications. Horizon of every bad rate and PD: 90+ days "
        f"past due within {get_settings().performance_months} months of the application "
        "(truth and matured alike; YIDAI_PERFORMANCE_MONTHS)."
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
        st.warning(str(exc))
        return
    table, live_dec, cand_dec = ps.compare_policies(scored, live, candidate)
    values = table.set_index("metric")
    metric_cols = st.columns(len(LABELS))
    for col, (key, (label, fmt)) in zip(metric_cols, LABELS.items(), strict=True):
        candidate_value = float(values.at[key, "candidate"])  # type: ignore[arg-type]
        change = float(values.at[key, "change"])  # type: ignore[arg-type]
        delta = None if math.isnan(change) else f"{fmt(change)} vs live"
        col.metric(label, fmt(candidate_value), delta=delta, delta_color="off")
    st.dataframe(table, hide_index=True)
    if "true_defaulted" in scored:
        st.subheader("True outcome of applicants, by live and candidate decision (simulator truth)")
        truth = ps.declined_truth(scored, live_dec, cand_dec)
        st.dataframe(truth, hide_index=True)
        st.plotly_chart(
            px.bar(
                truth,
                x="cell",
                y="true_bad_rate",
                text="applicants",
                title="True bad rate per decision cell",
            ),
            key="ps_truth",
        )
    else:
        st.caption(
            "No simulator truth for these applications (real data): "
            "the outcome of declined applicants is unknown."
        )
    _model_comparison(scored)


def _model_comparison(scored: pd.DataFrame) -> None:
    """Champion vs challenger vs WoE scorecard on the same applicants."""
    st.subheader("Champion, challenger and scorecard on the same applicants")
    share = st.slider("Each model approves its safest", 0.05, 1.0, 0.6, 0.05, key="ps_share",
                      format="%.2f")  # fmt: skip
    table = ps.compare_models(scored, share)
    if len(table) < 2:
        st.caption("Only the champion is registered: train the challengers (`yidai train`).")
    st.dataframe(
        table.style.format(
            {
                "expected_bad_rate": "{:.2%}",
                "true_bad_rate": "{:.2%}",
                "true_auc": "{:.4f}",
                "label_auc": "{:.4f}",
            },
            na_rep="-",
        ),
        hide_index=True,
    )

"""Fraud page: outcomes by amount tier, caught vs missed as labels arrive, risky terminals and
merchants, cash-out suspects."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboards import data, ui
from yidai.jobs.analytics import fraud as fr

AREA = "portfolio"


def _live_decisions_by_tier(labels: list[str]) -> None:
    decisions = data.payment_decisions()
    st.subheader("Live payment-risk decisions by amount tier")
    if decisions is None or decisions.empty:
        st.info(
            "No payment-risk decisions in the audit store yet (the scoring service records them)."
        )
        return
    outcomes = fr.decision_outcomes_by_tier(decisions, data.payment_tiers())
    melted = outcomes.melt(id_vars=["tier", "decisions"], var_name="action", value_name="rate")
    st.plotly_chart(
        px.bar(
            melted,
            x="tier",
            y="rate",
            color="action",
            barmode="stack",
            category_orders={"tier": labels},
            title="Allow / step-up / decline rate per tier",
        ),
        key="fr_live",
    )


def render() -> None:
    """Lay out the fraud page."""
    st.title("Fraud")
    events = data.published_table(AREA, "fraud_events")
    volume = data.published_table(AREA, "txn_tiers")
    terminals = data.published_table(AREA, "terminal_risk")
    cashout = data.published_table(AREA, "merchant_cashout")
    if events is None or volume is None or terminals is None or cashout is None:
        ui.no_data("the fraud tables (serving/portfolio)")
        return
    meta = data.published_meta(AREA)
    labels = [str(t) for t in meta.get("tiers", [])] or sorted(volume["tier"].unique())  # type: ignore[attr-defined]
    as_of_default = pd.Timestamp(str(meta.get("as_of", events["reported_at"].max()))).date()
    st.sidebar.header("Filters")
    channels = st.sidebar.multiselect("Channel", ["pos", "payment"], default=["pos", "payment"])
    as_of = st.sidebar.date_input("Labels known as of", value=as_of_default, key="fr_asof")
    events = events[events["ref_type"].isin(channels)]
    volume = volume[volume["ref_type"].isin(channels)]
    known = fr.known_frauds(events, as_of)  # type: ignore[arg-type]

    by_tier = fr.fraud_by_tier(volume, known, labels)
    cols = st.columns(4)
    cols[0].metric("Known frauds", ui.fmt_int(float(by_tier["frauds"].sum())))
    caught_total = float(by_tier["caught"].sum())
    frauds_total = float(by_tier["frauds"].sum())
    cols[1].metric(
        "Caught", ui.fmt_pct(caught_total / frauds_total if frauds_total else float("nan"))
    )
    cols[2].metric("Missed loss", ui.fmt_money(float(by_tier["missed_amount"].sum())))
    cols[3].metric("Fraud rate", ui.fmt_pct(frauds_total / float(by_tier["txns"].sum() or 1), 3))

    st.subheader("Outcomes by amount tier")
    st.plotly_chart(
        px.bar(
            by_tier,
            x="tier",
            y=["blocked_rate", "fraud_rate"],
            barmode="group",
            title="Blocked share and known fraud rate per amount tier",
        ),
        key="fr_tier",
    )
    st.dataframe(by_tier, hide_index=True)
    _live_decisions_by_tier(labels)

    st.subheader("Caught vs missed, as the labels arrive")
    weekly = fr.caught_vs_missed(events, as_of)  # type: ignore[arg-type]
    if weekly.empty:
        st.info("No fraud reported by this date.")
    else:
        st.plotly_chart(
            px.bar(
                weekly, x="week", y=["caught", "missed"], title="Known frauds per transaction week"
            ),
            key="fr_weekly",
        )
    st.plotly_chart(
        px.line(
            fr.label_arrival(events),
            x="days_after_txn",
            y="share_reported",
            title="Share of frauds reported within N days of the transaction",
        ),
        key="fr_arrival",
    )

    left, right = st.columns(2)
    left.subheader("Top risky terminals")
    left.dataframe(fr.top_risky_terminals(terminals), hide_index=True)
    right.subheader("Top risky merchants")
    right.dataframe(fr.top_risky_merchants(terminals), hide_index=True)

    st.subheader("Cash-out suspects")
    suspects = fr.cash_out_suspects(cashout)
    st.caption("Round amounts, few cards swiped many times: mean percentile of the three signals.")
    st.dataframe(suspects, hide_index=True)

"""Fraud operations: the Yidai fraud model at the live policy against the historical block
rules per amount tier, the catch vs friction trade-off, caught vs missed as labels arrive,
label latency, risky terminals and merchants, cash-out suspects."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboards import data, ui
from yidai.decisioning import load_payment_policy
from yidai.jobs.analytics import fraud as fr
from yidai.jobs.analytics.scored import PAYMENT_EVENTS, SCORED_AREA

AREA = "portfolio"
TIER_COLUMNS = {
    "tier": st.column_config.TextColumn("Amount tier"),
    "events": ui.int_column("Events"),
    "frauds": ui.int_column("Frauds"),
    "fraud_amount": ui.cny_column("Fraud amount"),
    "catch_rate": ui.pct_column("Model catch (count)"),
    "catch_rate_amount": ui.pct_column("Model catch (amount)"),
    "fraud_amount_stopped": ui.cny_column("Fraud amount stopped (model)"),
    "decline_rate": ui.pct_column("Decline rate", "all payments declined"),
    "false_positive_rate": ui.pct_column("False-positive rate", "good payments declined"),
    "step_up_rate": ui.pct_column("Step-up rate", "all payments asked to step up"),
    "friction": ui.pct_column("Customer friction", "good payments declined or stepped up"),
    "rules_catch_rate": ui.pct_column("Rules catch (count)"),
    "rules_catch_rate_amount": ui.pct_column("Rules catch (amount)"),
    "rules_fraud_amount_stopped": ui.cny_column("Fraud amount stopped (rules)"),
    "rules_false_positive_rate": ui.pct_column("Rules false-positive rate"),
}


def _model_view(labels: list[str], channels: list[str]) -> None:
    st.subheader("Yidai fraud model at the live policy vs the historical block rules")
    events = data.published_table(SCORED_AREA, PAYMENT_EVENTS)
    if events is None or events.empty:
        ui.no_data("the scored payment events (serving/applications)", "train the fraud model")
        return
    events = events[events["event_type"].isin(channels)]
    policy = load_payment_policy()
    meta = data.published_meta(SCORED_AREA)
    first, last = events["ts"].min(), events["ts"].max()
    st.caption(
        f"{events['model_version'].iloc[0]} with policy {policy.policy_version} "
        f"(each tier's step-up / decline thresholds) replayed on the payments of "
        f"{pd.Timestamp(first):%Y-%m-%d} to {pd.Timestamp(last):%Y-%m-%d} with the fraud reports "
        f"known at {meta.get('as_of', '?')}: every reported fraud and a weighted sample of "
        "legitimate payments. Stopped = declined or stepped up."
    )
    totals = fr.model_totals(events, policy)
    cols = st.columns(5)
    cols[0].metric(
        "Model catch (count)",
        ui.fmt_pct(totals["catch_rate"]),
        delta=ui.fmt_delta(totals["catch_rate"] - totals["rules_catch_rate"], ui.fmt_pp),
        delta_description="vs historical rules",
    )
    cols[1].metric("Model catch (amount)", ui.fmt_pct(totals["catch_rate_amount"]))
    cols[2].metric("Fraud amount stopped", ui.fmt_money(totals["fraud_amount_stopped"]))
    cols[3].metric("False-positive rate", ui.fmt_pct(totals["false_positive_rate"], 2))
    cols[4].metric("Step-up rate", ui.fmt_pct(totals["step_up_rate"], 2))
    by_tier = fr.model_vs_rules_by_tier(events, policy, data.payment_tiers())
    compare = by_tier.melt(
        id_vars="tier",
        value_vars=["catch_rate_amount", "rules_catch_rate_amount"],
        var_name="who",
        value_name="share",
    ).replace({"who": {"catch_rate_amount": "Yidai model", "rules_catch_rate_amount": "rules"}})
    fig = px.bar(
        compare,
        x="tier",
        y="share",
        color="who",
        barmode="group",
        category_orders={"tier": list(by_tier["tier"])},
        labels={"tier": "Amount tier", "share": "Share of fraud amount stopped", "who": ""},
        title="Share of fraud amount stopped per amount tier: Yidai model vs historical rules",
    )
    st.plotly_chart(ui.axis_pct(fig), key="fr_model_tier")
    st.dataframe(by_tier, hide_index=True, column_config=TIER_COLUMNS)
    curve = fr.tradeoff_curve(events, policy)
    live = curve[curve["live"]]
    fig = px.line(
        curve,
        x="friction",
        y="catch_rate_amount",
        markers=True,
        hover_data={"scale": ":.2f"},
        labels={
            "friction": "Customer friction: good payments declined or stepped up",
            "catch_rate_amount": "Share of fraud amount stopped",
        },
        title="Catch vs customer friction as every tier's thresholds move together",
    )
    fig.add_trace(
        go.Scatter(
            x=live["friction"],
            y=live["catch_rate_amount"],
            mode="markers+text",
            text=["live policy"],
            textposition="bottom right",
            marker={"size": 14, "color": ui.DECISION_COLOURS["decline"], "symbol": "star"},
            name="live policy",
        )
    )
    fig.update_xaxes(type="log")
    st.plotly_chart(ui.axis_pct(ui.axis_pct(fig), "x", 2), key="fr_tradeoff")


def _live_decisions_by_tier(labels: list[str]) -> None:
    decisions = data.payment_decisions()
    st.subheader("Live payment-risk decisions by amount tier (scoring service)")
    if decisions is None or decisions.empty:
        st.info(
            "No payment-risk decisions in the audit store yet (the scoring service records them)."
        )
        return
    outcomes = fr.decision_outcomes_by_tier(decisions, data.payment_tiers())
    melted = outcomes.melt(id_vars=["tier", "decisions"], var_name="action", value_name="rate")
    melted["action"] = melted["action"].str.removesuffix("_rate").map(ui.decision_label)
    fig = px.bar(
        melted,
        x="tier",
        y="rate",
        color="action",
        barmode="stack",
        color_discrete_map=ui.DECISION_COLOURS,
        category_orders={"tier": labels},
        labels={"tier": "Amount tier", "rate": "Share of decisions", "action": "Decision"},
        title="Allow / step-up / decline share per amount tier",
    )
    st.plotly_chart(ui.axis_pct(fig), key="fr_live")


def render() -> None:
    """Lay out the fraud page."""
    st.title("Fraud operations (e支付 payments and POS)")
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
    channels = st.sidebar.multiselect(
        "Channel", ["pos", "payment"], default=["pos", "payment"], key="fr_channel"
    )
    as_of = st.sidebar.date_input("Labels known as of", value=as_of_default, key="fr_asof")
    _model_view(labels, channels)

    events = events[events["ref_type"].isin(channels)]
    volume = volume[volume["ref_type"].isin(channels)]
    known = fr.known_frauds(events, as_of)  # type: ignore[arg-type]
    by_tier = fr.fraud_by_tier(volume, known, labels)
    st.subheader("Historical block rules: outcomes by amount tier (whole history)")
    totals = fr.tier_totals(by_tier)
    cols = st.columns(4)
    cols[0].metric("Known frauds", ui.fmt_int(totals["frauds"]))
    cols[1].metric("Caught", ui.fmt_pct(totals["caught_rate"]))
    cols[2].metric("Missed loss", ui.fmt_money(totals["missed_amount"]))
    cols[3].metric("Fraud rate", ui.fmt_pct(totals["fraud_rate"], 3))
    shares = by_tier.melt(
        id_vars="tier", value_vars=["blocked_rate", "fraud_rate"], var_name="what"
    ).replace({"what": {"blocked_rate": "blocked by the rules", "fraud_rate": "known fraud"}})
    fig = px.bar(
        shares,
        x="tier",
        y="value",
        color="what",
        barmode="group",
        category_orders={"tier": labels},
        labels={"tier": "Amount tier", "value": "Share of transactions", "what": ""},
        title="Blocked share and known fraud rate per amount tier",
    )
    st.plotly_chart(ui.axis_pct(fig, digits=2), key="fr_tier")
    st.dataframe(
        by_tier,
        hide_index=True,
        column_config={
            "tier": st.column_config.TextColumn("Amount tier"),
            "txns": ui.int_column("Transactions"),
            "amount": ui.cny_column("Amount"),
            "blocked": ui.int_column("Blocked"),
            "frauds": ui.int_column("Known frauds"),
            "caught": ui.int_column("Caught by rules"),
            "missed_amount": ui.cny_column("Missed loss"),
            "blocked_rate": ui.pct_column("Blocked share"),
            "fraud_rate": ui.pct_column("Fraud rate"),
            "caught_rate": ui.pct_column("Caught share"),
        },
    )
    _live_decisions_by_tier(labels)

    st.subheader("Caught vs missed, as the labels arrive")
    weekly = fr.caught_vs_missed(events, as_of)  # type: ignore[arg-type]
    if weekly.empty:
        st.info("No fraud reported by this date.")
    else:
        st.plotly_chart(
            px.bar(
                weekly,
                x="week",
                y=["caught", "missed"],
                labels={"week": "Transaction week", "value": "Known frauds", "variable": ""},
                title="Known frauds per transaction week: caught by the rules vs missed",
            ),
            key="fr_weekly",
        )
    fig = px.line(
        fr.label_arrival(events),
        x="days_after_txn",
        y="share_reported",
        labels={
            "days_after_txn": "Days after the transaction",
            "share_reported": "Share of frauds reported",
        },
        title="Label latency: share of frauds reported within N days of the transaction",
    )
    st.plotly_chart(ui.axis_pct(fig), key="fr_arrival")

    left, right = st.columns(2)
    risk_columns = {
        "txns": ui.int_column("Transactions"),
        "amount": ui.cny_column("Amount"),
        "frauds": ui.int_column("Frauds"),
        "fraud_amount": ui.cny_column("Fraud amount"),
        "cards": ui.int_column("Cards"),
        "cards_later_defrauded": ui.int_column("Cards later defrauded"),
        "compromise_rate": ui.pct_column("Compromise rate"),
        "fraud_rate": ui.pct_column("Fraud rate"),
    }
    left.subheader("Top risky terminals")
    left.dataframe(fr.top_risky_terminals(terminals), hide_index=True, column_config=risk_columns)
    right.subheader("Top risky merchants")
    right.dataframe(fr.top_risky_merchants(terminals), hide_index=True, column_config=risk_columns)

    st.subheader("Cash-out suspects")
    suspects = fr.cash_out_suspects(cashout)
    st.caption("Round amounts, few cards swiped many times: mean percentile of the three signals.")
    st.dataframe(
        suspects,
        hide_index=True,
        column_config={
            "round_share": ui.pct_column("Round amounts"),
            "top3_card_share": ui.pct_column("Top-3 cards' share"),
            "suspicion": ui.pct_column("Suspicion (percentile)"),
        },
    )

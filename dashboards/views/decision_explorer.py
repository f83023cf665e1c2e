"""Decision explorer: a decision's inputs, scores, reasons, versions and the challenger's view."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import data, ui
from yidai.jobs.analytics.decisions import decision_detail


def _show(row: pd.Series) -> None:
    detail = decision_detail(row)
    summary, scores = detail["summary"], detail["scores"]
    cols = st.columns(4)
    cols[0].metric("Outcome", str(summary["outcome"]))
    cols[1].metric(
        "Probability", "—" if scores["probability"] is None else f"{scores['probability']:.4f}"
    )
    cols[2].metric("Score", "—" if scores["score"] is None else f"{scores['score']:.0f}")
    cols[3].metric("Grade", str(scores["grade"] or "—"))
    st.markdown(
        f"**Policy** `{summary['policy_version']}` · **model** `{summary['model_version']}` · "
        f"**arm** {summary['arm']} · **snapshot** `{summary['snapshot_version']}` · "
        f"{summary['created_at']} · module {summary['module']}"
    )
    if detail["limit"]:
        st.write({k: round(float(v), 4) for k, v in detail["limit"].items()})
    st.subheader("Reason codes")
    if detail["reasons"]:
        st.dataframe(pd.DataFrame(detail["reasons"]), hide_index=True)
    else:
        st.caption("No reason codes (approved / allowed without adverse factors).")
    left, right = st.columns(2)
    left.subheader("Inputs")
    left.json(detail["inputs"])
    right.subheader("Features used")
    right.dataframe(
        pd.DataFrame(list(detail["features"].items()), columns=["feature", "value"]),
        hide_index=True,
    )
    st.subheader("What the challenger would have done")
    if detail["challenger"]:
        st.json(detail["challenger"])
    else:
        st.caption("No challenger was scored for this decision.")


def render() -> None:
    """Lay out the decision explorer."""
    st.title("Decision explorer")
    latest = data.audit_decisions(limit=500)
    if latest is None or latest.empty:
        ui.no_data(
            "the decision audit store",
            "start the scoring service (`yidai serve`) and send decisions",
        )
        return
    by_id = st.text_input("Decision id", key="dx_id")
    by_entity = st.text_input("Customer / merchant / SME id", key="dx_entity")
    found = data.audit_decisions(decision_id=by_id or None, entity_id=by_entity or None, limit=500)
    found = found if (by_id or by_entity) else latest
    st.caption(f"{len(found)} decision(s){' found' if by_id or by_entity else ' (latest)'}")
    if found is None or found.empty:
        st.warning("No decision matches this id.")
        return
    st.dataframe(found.drop(columns=["response", "record"]), hide_index=True)
    choice = st.selectbox("Decision", found["decision_id"].tolist(), key="dx_choice")
    _show(found.loc[found["decision_id"] == choice].iloc[0])

"""Decision explorer: find a decision by any id; its versions, scores, reasons, inputs (value,
population percentile, contribution) and the challenger's view."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboards import data, ui
from yidai.core import catalogue
from yidai.jobs.analytics.decisions import decision_detail
from yidai.jobs.analytics.explorer import (
    feature_contributions,
    inputs_table,
    split_model_version,
)

LIST_COLUMNS: dict[str, Any] = {
    "decision_id": st.column_config.TextColumn("Decision id"),
    "created_at": "Created",
    "module": "Calling module",
    "product": "Product",
    "entity_id": "Customer / merchant / SME",
    "outcome": "Outcome",
    "arm": "Arm",
    "model_version": "Model",
    "policy_version": "Policy",
}
INPUT_COLUMNS = {
    "feature": st.column_config.TextColumn("Feature"),
    "value": st.column_config.NumberColumn("Value", format="%,.4g"),
    "percentile": ui.pct_column("Population percentile", "share of the live snapshot below it"),
    "contribution": st.column_config.NumberColumn(
        "Contribution (log-odds)", help="positive = riskier", format="%+.3f"
    ),
}


def _feature_set(model_version: str) -> str | None:
    name = split_model_version(model_version)[0]
    return next((m.feature_set for m in catalogue.MODELS if m.name == name), None)


def _inputs(summary: dict[str, object], features: dict[str, float | None]) -> None:
    st.subheader("Model inputs")
    if not features:
        st.caption("No model inputs were recorded for this decision.")
        return
    model_version = str(summary["model_version"] or "")
    feature_set = _feature_set(model_version)
    with st.spinner("Loading the feature snapshot and the model..."):
        population = data.feature_population(feature_set) if feature_set else {}
        model = data.registered_model(model_version) if model_version else None
        contributions = feature_contributions(model, features) if model is not None else None
    table = inputs_table(features, population, contributions)  # type: ignore[arg-type]
    notes = []
    if not population:
        notes.append(f"no live snapshot of {feature_set} for percentiles")
    if model is None:
        notes.append(f"{model_version} is no longer champion or challenger: no contributions")
    if notes:
        st.caption("; ".join(notes) + ".")
    st.dataframe(table, hide_index=True, column_config=INPUT_COLUMNS)


def _show(row: pd.Series) -> None:
    detail = decision_detail(row)
    summary, scores = detail["summary"], detail["scores"]
    cols = st.columns(4)
    cols[0].metric("Outcome", ui.decision_label(str(summary["outcome"])))
    probability = scores["probability"]
    label = "Fraud probability" if summary["product"] == "payment" else "PD"
    cols[1].metric(label, "—" if probability is None else ui.fmt_pct(float(probability), 2))
    cols[2].metric("Score", "—" if scores["score"] is None else f"{scores['score']:.0f}")
    cols[3].metric("Grade", str(scores["grade"] or "—"))
    st.dataframe(
        pd.DataFrame(
            {
                "": ["Decision id", "Product", "Customer / merchant / SME", "Created",
                     "Calling module", "Arm", "Model version", "Policy version",
                     "Feature snapshot"],
                "Value": [str(summary["decision_id"]), ui.product_label(str(summary["product"])), *(
                    str(summary[k]) if summary[k] is not None else "— (not recorded)"
                    for k in ("entity_id", "created_at", "module", "arm", "model_version",
                              "policy_version", "snapshot_version"))],
            }
        ),
        hide_index=True,
    )  # fmt: skip
    if detail["limit"]:
        limit = detail["limit"]
        for col, (key, value) in zip(st.columns(len(limit)), limit.items(), strict=True):
            shown = ui.fmt_pct(float(value), 2) if key == "annual_rate" else ui.fmt_cny(value)
            col.metric(key.replace("_", " ").capitalize(), shown)
    st.subheader("Reason codes")
    if detail["reasons"]:
        st.dataframe(pd.DataFrame(detail["reasons"]), hide_index=True)
    else:
        st.caption("No reason codes (approved / allowed without adverse factors).")
    _inputs(summary, detail["features"])
    st.subheader("Request")
    request = detail["inputs"]
    st.dataframe(
        pd.DataFrame({"Field": list(request), "Value": [str(v) for v in request.values()]}),
        hide_index=True,
    )
    st.subheader("What the challenger would have done")
    challenger = detail["challenger"]
    if challenger:
        st.dataframe(
            pd.DataFrame(
                {"Field": list(challenger), "Value": [str(v) for v in challenger.values()]}
            ),
            hide_index=True,
        )
        st.json(challenger, expanded=False)
    else:
        st.caption("No challenger was scored for this decision.")


def _merchant_line(text: str) -> None:
    """The merchant's live revolving line (nightly refresh), if ``text`` is a merchant id."""
    limits = data.limits_table("limits")
    if limits is None or not text:
        return
    line = limits[(limits["merchant_id"] == text) | (limits["account_id"] == text)]
    if line.empty:
        return
    row = line.iloc[0]
    st.subheader(f"{ui.product_label('merchant')} line of {row['merchant_id']} (nightly refresh)")
    cols = st.columns(5)
    cols[0].metric("Line", ui.fmt_cny(float(row["credit_line"])))
    cols[1].metric("Drawn", ui.fmt_cny(float(row["outstanding"])))
    cols[2].metric("Status", str(row["status"]))
    cols[3].metric("Last decision", str(row["decision"]))
    cols[4].metric("PD", ui.fmt_pct(float(row["pd"]), 2) if np.isfinite(row["pd"]) else "—")
    st.caption(f"Account {row['account_id']}, reason {row['reason_code']}, as of {row['as_of']}")


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
    text = st.text_input(
        "Search by any id: decision, customer, merchant, SME or account",
        key="dx_id",
        placeholder="e.g. M00000012, C000042, A0000197427 or a decision id",
    ).strip()
    _merchant_line(text)
    found, how = data.find_decisions_by_any_id(text, limit=500)
    st.caption(f"{len(found):,} decision(s) ({'matched by ' + how if text else 'latest'})")
    if found.empty:
        st.warning(f"No decision matches {text!r}.")
        return
    shown = ui.label_products(found.drop(columns=["response", "record"]))
    st.dataframe(shown, hide_index=True, column_config=LIST_COLUMNS)
    choice = st.selectbox("Decision", found["decision_id"].tolist(), key="dx_choice")
    _show(found.loc[found["decision_id"] == choice].iloc[0])

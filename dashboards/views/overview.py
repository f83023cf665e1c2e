"""Overview: what each page answers, with links (every page also opens directly by its URL)."""

from __future__ import annotations

import streamlit as st

from dashboards import data, ui
from dashboards.pages import PAGES

PAGE_HELP: dict[str, str] = {
    "portfolio": "applications, approvals, exposure, vintages by product and quarter, "
    "committed vs drawn, drawdown spikes",
    "model-monitoring": "calibration, discrimination, feature drift (PSI) and roll rates",
    "fraud": "the fraud model at the live policy vs the historical rules, per amount tier; "
    "catch vs friction; label latency",
    "merchant-limits": "逸贷 merchant revolving lines: changes and their reasons, exposure",
    "decision-explorer": "one decision: inputs, percentiles, contributions, versions",
    "policy-simulator": "a candidate credit policy against the live one",
}


def render() -> None:
    """Lay out the overview."""
    st.title("Overview: Yidai risk dashboards")
    meta = data.published_meta("portfolio")
    st.caption(
        "Products: "
        + " · ".join(ui.PRODUCT_LABELS.values())
        + f". Published data as of {meta.get('as_of', '—')}."
    )
    st.markdown(
        "\n".join(
            f"- [**{title}**](/{url}) (`/{url}`): {PAGE_HELP.get(url, '')}"
            for _file, title, _icon, url in PAGES[1:]
        )
    )

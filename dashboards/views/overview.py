"""Overview: what each page answers, with links (every page also opens directly by its URL)."""

from __future__ import annotations

import streamlit as st

from dashboards import data, ui

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
    # deferred: dashboards.app runs the navigation when imported
    from dashboards.app import PAGES, PAGES_DIR

    st.title("Overview: Yidai risk dashboards")
    meta = data.published_meta("portfolio")
    st.caption(
        "Products: "
        + " · ".join(ui.PRODUCT_LABELS.values())
        + f". Published data as of {meta.get('as_of', '—')}."
    )
    for file, title, icon, url in PAGES[1:]:
        st.page_link(str(PAGES_DIR / file), label=f"{title}: {PAGE_HELP.get(url, '')}", icon=icon)
        st.caption(f"Direct link: `/{url}`")

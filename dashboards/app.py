"""Yidai risk dashboards: the Streamlit multipage entry point (``yidai dashboard``)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parent / "app_pages"
#: (file, title, icon, url path) of every page, in menu order.
#: The first page is the default, served at ``/`` (Streamlit ignores its url path), so it is
#: the overview and every analysis page keeps its own URL (``/portfolio`` opens directly).
PAGES: tuple[tuple[str, str, str, str], ...] = (
    ("overview.py", "Overview", ":material/home:", "overview"),
    ("portfolio.py", "Portfolio", ":material/account_balance:", "portfolio"),
    ("model_monitoring.py", "Model monitoring", ":material/monitoring:", "model-monitoring"),
    ("fraud.py", "Fraud", ":material/gpp_maybe:", "fraud"),
    ("merchant_limits.py", "Merchant limits", ":material/storefront:", "merchant-limits"),
    ("decision_explorer.py", "Decision explorer", ":material/search:", "decision-explorer"),
    ("policy_simulator.py", "Policy simulator", ":material/tune:", "policy-simulator"),
)


def main() -> None:
    """Configure the app and run the selected page."""
    st.set_page_config(page_title="Yidai risk dashboards", page_icon="📊", layout="wide")
    pages = [
        st.Page(PAGES_DIR / file, title=title, icon=icon, url_path=url, default=i == 0)
        for i, (file, title, icon, url) in enumerate(PAGES)
    ]
    st.navigation(pages).run()


main()

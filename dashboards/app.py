"""Yidai risk dashboards: the Streamlit multipage entry point (``yidai dashboard``)."""

from __future__ import annotations

import streamlit as st

from dashboards.pages import PAGES, PAGES_DIR  # re-exported: the page table

__all__ = ["PAGES", "PAGES_DIR", "main"]


def main() -> None:
    """Configure the app and run the selected page."""
    st.set_page_config(page_title="Yidai risk dashboards", page_icon="📊", layout="wide")
    pages = [
        st.Page(PAGES_DIR / file, title=title, icon=icon, url_path=url, default=i == 0)
        for i, (file, title, icon, url) in enumerate(PAGES)
    ]
    st.navigation(pages).run()


main()

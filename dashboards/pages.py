"""The dashboards' pages: file, title, icon and URL path, in menu order (importable without
running the app: the overview page and the browser tests read it)."""

from __future__ import annotations

from pathlib import Path

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

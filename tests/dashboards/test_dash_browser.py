"""Real-browser test: `yidai dashboard` in a subprocess, every page in headless Chromium.

Opens every page by its own URL, changes one of its filters, fails on any Streamlit error
box or "Page not found", and saves a full-page screenshot at 1600 px per page under
``var/screenshots`` (override with ``YIDAI_SCREENSHOTS``).  The committed screenshots in
``docs/screenshots`` come from the same code on a demo home: ``make screenshots``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dashboards.pages import PAGES
from tests.support.browser import headless_chromium
from tests.support.dashboard_shots import WIDTH, capture_every_page, running_dashboard

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def dashboard_url(tmp_path, published_home):
    with running_dashboard(published_home, tmp_path / "dashboard.log") as url:
        yield url


@pytest.fixture
def browser(tmp_path):
    driver = headless_chromium(tmp_path / "chromium-profile", f"{WIDTH},1200")
    yield driver
    driver.quit()


def test_every_page_opens_by_url_and_renders_after_a_filter_change(dashboard_url, browser):
    from PIL import Image

    shots = Path(os.environ.get("YIDAI_SCREENSHOTS", REPO / "var" / "screenshots"))
    problems = capture_every_page(browser, dashboard_url, shots)
    assert not problems, problems
    for _file, _title, _icon, url_path in PAGES:
        with Image.open(shots / f"{url_path}.png") as image:
            assert image.width == WIDTH  # headless Chromium: 1 CSS px = 1 device px

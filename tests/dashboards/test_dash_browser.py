"""Real-browser test: `yidai dashboard` in a subprocess, every page in headless Chromium.

Fails on any Streamlit error box; saves one screenshot per page under ``var/screenshots``
(override with ``YIDAI_SCREENSHOTS``) so a person can look at them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dashboards.app import PAGES
from tests.support.browser import headless_chromium

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ERROR_SELECTORS = (
    '[data-testid="stException"]',
    ".stException",
    '[data-testid="stAlertContentError"]',
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"yidai dashboard exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"dashboard not healthy at {url} after {timeout}s")


@pytest.fixture
def dashboard_url(tmp_path, published_home):
    port = _free_port()
    env = {**os.environ, "YIDAI_HOME": str(published_home)}
    yidai = Path(sys.executable).with_name("yidai")
    log = (tmp_path / "dashboard.log").open("w")
    proc = subprocess.Popen(
        [str(yidai), "dashboard", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def browser(tmp_path):
    driver = headless_chromium(tmp_path / "chromium-profile", "1500,2600")
    yield driver
    driver.quit()


def _wait_rendered(driver, title: str, timeout: float = 60) -> None:
    """Until the page's title is shown and Streamlit stopped running the script."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    history: list[int] = []

    def done(d) -> bool:
        # the number of rendered elements must be stable for 2 s (the script may still add some)
        history.append(len(d.find_elements(By.CSS_SELECTOR, '[data-testid="stElementContainer"]')))
        if len(history) < 5 or len(set(history[-5:])) > 1:
            return False
        titles = [h.text for h in d.find_elements(By.CSS_SELECTOR, "h1")]
        running = d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        loading = d.find_elements(By.CSS_SELECTOR, '[data-testid="stSkeleton"]')
        charts = d.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')
        drawn = d.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .main-svg')
        return (
            any(title in t for t in titles)
            and not running
            and not loading
            and len(drawn) >= len(charts)
        )

    WebDriverWait(driver, timeout, poll_frequency=0.5).until(done)


def test_every_page_renders_without_an_error_box(dashboard_url, browser):
    from selenium.webdriver.common.by import By

    shots = Path(os.environ.get("YIDAI_SCREENSHOTS", REPO / "var" / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    for i, (_file, title, _icon, url_path) in enumerate(PAGES):
        browser.get(f"{dashboard_url}/{url_path if i else ''}")  # the first page is at /
        _wait_rendered(browser, title)
        time.sleep(0.5)
        browser.save_screenshot(str(shots / f"{url_path}.png"))
        if "Page not found" in browser.page_source:
            problems.append(f"{title}: /{url_path} is not a page")
        for selector in ERROR_SELECTORS:
            for element in browser.find_elements(By.CSS_SELECTOR, selector):
                problems.append(f"{title}: {element.text[:300]}")
    assert not problems, problems

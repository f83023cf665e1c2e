"""Drive the dashboards in headless Chromium: start `yidai dashboard` on a home, open every
page, change one of its filters, wait until it has re-rendered and save a full-page
screenshot.  Used by the browser test and by ``scripts/screenshots.py`` (``make
screenshots``), so the committed screenshots are what the test sees."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dashboards.pages import PAGES

ERROR_SELECTORS = (
    '[data-testid="stException"]',
    ".stException",
    '[data-testid="stAlertContentError"]',
)
#: Screenshot width in CSS pixels (the issue asks for 1600 px).
WIDTH = 1600
MAX_HEIGHT = 9000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
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


@contextmanager
def running_dashboard(home: Path, log_file: Path) -> Iterator[str]:
    """`yidai dashboard` on ``home`` on a free port; yields its URL, stops it after."""
    port = free_port()
    env = {**os.environ, "YIDAI_HOME": str(home)}
    yidai = Path(sys.executable).with_name("yidai")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as log:
        proc = subprocess.Popen(
            [str(yidai), "dashboard", "--port", str(port)],
            env=env,
            cwd=log_file.parent,
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


def wait_rendered(driver: Any, title: str, timeout: float = 90) -> None:
    """Until the page's title is shown and Streamlit stopped running the script."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    history: list[int] = []

    def done(d: Any) -> bool:
        # the number of rendered elements must be stable for 2 s (the script may still add some)
        history.append(len(d.find_elements(By.CSS_SELECTOR, '[data-testid="stElementContainer"]')))
        if len(history) < 5 or len(set(history[-5:])) > 1:
            return False
        titles = [h.text for h in d.find_elements(By.CSS_SELECTOR, "h1")]
        running = d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        loading = d.find_elements(  # stale: left from before a rerun that is still going
            By.CSS_SELECTOR,
            '[data-testid="stSkeleton"], [data-testid="stSpinner"], [data-stale="true"]',
        )
        charts = d.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')
        drawn = d.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .main-svg')
        return (
            any(title in t for t in titles)
            and not running
            and not loading
            and len(drawn) >= len(charts)
        )

    WebDriverWait(driver, timeout, poll_frequency=0.5).until(
        done, f"page {title!r} did not finish rendering within {timeout:.0f} s"
    )


def change_a_filter(driver: Any) -> str | None:
    """Change the page's first sidebar filter: drop the last choice of a multiselect, or pick
    the second option of a selectbox.  Returns what was changed (None if the page has none)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    sidebar = '[data-testid="stSidebar"]'
    multi = driver.find_elements(By.CSS_SELECTOR, f'{sidebar} [data-testid="stMultiSelect"]')
    if multi:
        label = multi[0].text.split("\n")[0]
        box = multi[0].find_element(By.CSS_SELECTOR, "input")
        box.click()
        box.send_keys(Keys.BACKSPACE)
        box.send_keys(Keys.ESCAPE)
        return f"multiselect {label!r}: last choice removed"
    select = driver.find_elements(By.CSS_SELECTOR, f'{sidebar} [data-testid="stSelectbox"]')
    if select:
        label = select[0].text.split("\n")[0]
        select[0].find_element(By.CSS_SELECTOR, "input").click()
        time.sleep(0.5)
        options = driver.find_elements(By.CSS_SELECTOR, '[role="option"]')
        if len(options) > 1:
            options[1].click()
            return f"selectbox {label!r}: second option"
        select[0].find_element(By.CSS_SELECTOR, "input").send_keys(Keys.ESCAPE)
    return None


def _page_height(driver: Any) -> int:
    script = """
      const el = document.querySelector('[data-testid="stMain"]')
        || document.querySelector('section.main') || document.body;
      const inner = document.querySelector('[data-testid="stMainBlockContainer"]');
      return Math.max(el.scrollHeight, inner ? inner.scrollHeight + 120 : 0,
                      document.body.scrollHeight);
    """
    return int(driver.execute_script(script))


def full_page_screenshot(driver: Any, path: Path, width: int = WIDTH) -> None:
    """A screenshot of the whole page at ``width`` CSS pixels, as a palette PNG (small)."""
    height = min(max(_page_height(driver), 900), MAX_HEIGHT)
    driver.set_window_size(width, height)
    time.sleep(1.0)  # plotly re-lays out to the new size
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    _shrink_png(path)


def _shrink_png(path: Path) -> None:
    """Re-encode as a 256-colour PNG (dashboards have few colours): a few hundred KB."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def capture_every_page(driver: Any, url: str, out: Path, width: int = WIDTH) -> list[str]:
    """Open every page by its own URL, change a filter, screenshot it under ``out``.

    Returns the problems seen (error boxes, "Page not found"); an empty list is a pass.
    """
    from selenium.webdriver.common.by import By

    problems: list[str] = []
    for i, (_file, title, _icon, url_path) in enumerate(PAGES):
        driver.set_window_size(width, 1200)
        driver.get(f"{url}/{url_path if i else ''}")  # the default page is at /
        wait_rendered(driver, title)
        if "Page not found" in driver.page_source:
            problems.append(f"{title}: /{url_path} is not a page")
        changed = change_a_filter(driver)
        if changed:
            time.sleep(0.5)
            wait_rendered(driver, title)
        full_page_screenshot(driver, out / f"{url_path}.png", width)
        for selector in ERROR_SELECTORS:
            for element in driver.find_elements(By.CSS_SELECTOR, selector):
                problems.append(f"{title} ({changed}): {element.text[:300]}")
    return problems

"""Real-browser test: ``/docs`` (Swagger UI) and ``/redoc`` of the service under uvicorn render
in headless Chromium with every outside host unreachable, as on the bank's closed network."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.browser import headless_chromium

pytestmark = pytest.mark.browser


@pytest.fixture
def offline_browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium that can reach the loopback interface only (no CDN, no DNS)."""
    driver = headless_chromium(
        tmp_path / "chromium-profile",
        "1400,2000",
        ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
    )
    yield driver
    driver.quit()


def _external_hosts(html: str) -> list[str]:
    return re.findall(r"https?://[^\s\"'<>)]+", html)


def _outside(driver: Any, server: str) -> list[tuple[str, int]]:
    """Resources the page asked for from anywhere but ``server``, with their HTTP status."""
    entries: list[list[Any]] = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => [e.name, e.responseStatus])"
    )
    return [(name, status) for name, status in entries if not name.startswith(server + "/")]


# ReDoc's bundle always asks for its footer logo from cdn.redoc.ly; the page's
# Content-Security-Policy (img-src 'self') blocks it before any connection is made.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def test_swagger_ui_and_redoc_render_without_any_outside_host(
    server: str, offline_browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    for page in ("/docs", "/redoc"):
        html = httpx.get(server + page).text
        assert _external_hosts(html) == [], page  # nothing from a CDN or font service
        assert "/static-docs/" in html
        csp = httpx.get(server + page).headers["content-security-policy"]
        assert "default-src 'self'" in csp and "img-src 'self' data:" in csp

    driver = offline_browser
    driver.get(server + "/docs")
    wait = WebDriverWait(driver, 60, poll_frequency=0.25)
    paths = wait.until(
        lambda d: (
            [e.text for e in d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")] or False
        )
    )
    assert "/v1/payments/risk" in [p.replace("\u200b", "") for p in paths]
    assert "/v1/repayments" in [p.replace("\u200b", "") for p in paths]
    title = driver.find_element(By.CSS_SELECTOR, ".information-container .title").text
    assert title.startswith("Yidai scoring service")
    assert _outside(driver, server) == []

    driver.get(server + "/redoc")
    menu = wait.until(
        lambda d: (
            [
                e.get_attribute("textContent")
                for e in d.find_elements(By.CSS_SELECTOR, "[role=menuitem]")
            ]
            or False
        )
    )
    assert "postPayment Risk" in menu, menu  # the operation's menu entry (method, summary)
    # the operation itself, with its path, in the rendered document
    body = driver.find_element(By.TAG_NAME, "body").get_attribute("textContent")
    assert "/v1/payments/risk" in body and "IDEMPOTENCY_KEY_REUSED" in body
    heading = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "h1"))
    assert heading[0].text.startswith("Yidai scoring service")
    assert _outside(driver, server) in ([], [(REDOC_LOGO, 0)])

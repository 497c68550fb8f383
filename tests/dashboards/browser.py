"""Driving the dashboards in headless Chromium: Debian's `chromium` through Playwright's sync API.

Playwright cannot download its own browser build here, so it launches the system chromium by path.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-dev-shm-usage"]
# Streamlit shows this while a script run is in progress.
RUNNING = '[data-testid="stStatusWidget"]'
EXCEPTION = '[data-testid="stException"]'


def chromium_path() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return next((c for c in CHROMIUM_CANDIDATES if Path(c).exists()), None)


@contextmanager
def browser_page(width: int = 1440, height: int = 1000) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    assert path, "chromium is not installed"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
            yield context.new_page()
        finally:
            browser.close()


def settle(page: object, timeout_ms: int = 30_000) -> None:
    """Wait until Streamlit has finished the current script run and the page stopped changing."""
    page.wait_for_load_state("networkidle", timeout=timeout_ms)  # type: ignore[attr-defined]
    page.wait_for_timeout(300)  # type: ignore[attr-defined]  # a rerun starts a moment after a click
    page.locator(RUNNING).wait_for(state="hidden", timeout=timeout_ms)  # type: ignore[attr-defined]
    page.wait_for_timeout(300)  # type: ignore[attr-defined]  # charts draw after the run completes

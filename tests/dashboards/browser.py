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
    """Wait until Streamlit has finished the current script run (stApp's data-test-script-state)."""
    page.wait_for_timeout(250)  # type: ignore[attr-defined]  # a rerun starts a moment after a click
    page.wait_for_function(  # type: ignore[attr-defined]
        "() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'",
        timeout=timeout_ms)
    page.wait_for_timeout(500)  # type: ignore[attr-defined]  # charts draw after the run completes


PAGE_HEIGHT_JS = """() => Math.max(600, ...[...document.querySelectorAll(
    '[data-testid="stMain"], [data-testid="stMainBlockContainer"]')].map(e => e.scrollHeight))"""


def screenshot(page: object, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main section, so grow the viewport to fit it first."""
    size = page.viewport_size  # type: ignore[attr-defined]
    height = int(page.evaluate(PAGE_HEIGHT_JS))  # type: ignore[attr-defined]
    page.set_viewport_size({"width": size["width"], "height": min(height + 40, 6000)})  # type: ignore[attr-defined]
    page.wait_for_timeout(600)  # type: ignore[attr-defined]  # charts re-lay out at the new size
    page.screenshot(path=str(path))  # type: ignore[attr-defined]
    page.set_viewport_size(size)  # type: ignore[attr-defined]

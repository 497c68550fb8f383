"""End to end in headless Chromium: the real API server on seeded data, `streamlit run` on the app,
every page loaded by a browser, no exception box, one action performed, screenshots saved.

Screenshots go to a temporary directory, or to SYNCWATCH_SCREENSHOTS_DIR (`make screenshots` points
it at docs/screenshots for the README).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncwatch import dashboards_process
from syncwatch.settings import Settings
from tests.conftest import free_port
from tests.dashboards.browser import EXCEPTION, browser_page, chromium_path, screenshot, settle
from tests.dashboards.conftest import SeededApi
from tests.dashboards.test_triage import api_get, open_findings

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def dashboards_url(seeded_api: SeededApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if chromium_path() is None:
        pytest.skip("Debian's chromium is not installed and could not be (make test runs apt-get install chromium)")
    settings = Settings(api_url=seeded_api.base_url, dashboard_host="127.0.0.1", dashboard_port=free_port())
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with pytest.MonkeyPatch.context() as patch:  # the child inherits no dashboards settings of ours
        for name in ("SYNCWATCH_CONFIG", "SYNCWATCH_DASHBOARD_TOKEN", "SYNCWATCH_DASHBOARD_OIDC_USERS"):
            patch.delenv(name, raising=False)
        process: subprocess.Popen[bytes] = dashboards_process.start(settings, log_path=log)
    yield dashboards_process.url(settings)
    dashboards_process.stop(process)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("SYNCWATCH_SCREENSHOTS_DIR")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def sign_in(page: object, url: str, token: str) -> None:
    page.goto(url)  # type: ignore[attr-defined]
    settle(page)
    page.get_by_label("User token", exact=True).fill(token)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    settle(page)


def open_page(page: object, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()  # type: ignore[attr-defined]
    settle(page)
    page.get_by_role("heading", name=title).first.wait_for()  # type: ignore[attr-defined]


def assert_no_exception(page: object, where: str) -> None:
    boxes = page.locator(EXCEPTION)  # type: ignore[attr-defined]
    assert boxes.count() == 0, f"{where}: {boxes.first.inner_text()[:2000]}"


def visit(page: object, title: str, shots: Path, name: str) -> None:
    open_page(page, title)
    assert_no_exception(page, title)
    screenshot(page, shots / f"{name}.png")
    assert (shots / f"{name}.png").stat().st_size > 20_000


def actionable(api: SeededApi) -> tuple[str, dict[str, Any]]:
    """A business key whose highest-impact open-or-acknowledged finding is open (the detail panel shows
    it first once the queue is filtered by that key)."""
    for finding in open_findings(api):
        key = next(iter(finding["keys"].values()))
        first = api_get(api, "findings", key=key, status=["open", "acknowledged"], limit=1)["items"][0]
        if first["status"] == "open":
            return key, first
    raise AssertionError("no open finding to act on")


def test_every_page_renders_and_an_action_round_trips(seeded_api: SeededApi, dashboards_url: str,
                                                      shots: Path) -> None:
    with browser_page() as page:
        sign_in(page, dashboards_url, seeded_api.tokens["ops"])
        visit(page, "Executive", shots, "executive")
        visit(page, "Operations triage", shots, "triage")
        visit(page, "Rules and integrations", shots, "health")

        open_page(page, "Operations triage")
        key, finding = actionable(seeded_api)
        page.get_by_label("Business key").fill(key)  # type: ignore[attr-defined]
        page.keyboard.press("Enter")  # type: ignore[attr-defined]
        settle(page)
        page.get_by_role("button", name="Acknowledge", exact=True).click()  # type: ignore[attr-defined]
        settle(page)
        page.get_by_text("the finding is now acknowledged").wait_for()  # type: ignore[attr-defined]
        assert_no_exception(page, "after acknowledging")
        screenshot(page, shots / "triage-action.png")
        # the panel acted on the key's first finding; findings of equal impact may tie in that order,
        # so look for the one this user just acknowledged among the key's findings
        acked = api_get(seeded_api, "findings", key=key, status="acknowledged")["items"]
        details = [api_get(seeded_api, f"findings/{f['fingerprint']}") for f in acked]
        mine = [d for d in details if d["audit"] and d["audit"][-1]["actor"] == "ops tester"
                and d["audit"][-1]["action"] == "acknowledged"]
        assert mine and mine[0]["finding"]["status"] == "acknowledged", (finding["fingerprint"], acked)

        page.get_by_role("button", name="Sign out", exact=True).click()  # type: ignore[attr-defined]
        settle(page)
        sign_in(page, dashboards_url, seeded_api.tokens["auditor"])
        open_page(page, "Audit")
        page.get_by_label("Business key or trace id").fill(key)  # type: ignore[attr-defined]
        page.get_by_role("button", name="Show timeline", exact=True).click()  # type: ignore[attr-defined]
        settle(page)
        page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()  # type: ignore[attr-defined]
        page.get_by_text("Audit chain intact").wait_for()  # type: ignore[attr-defined]
        assert_no_exception(page, "Audit")
        screenshot(page, shots / "audit.png")

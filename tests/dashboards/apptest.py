"""Running the dashboards under Streamlit's AppTest, signed in as one of the seeded users."""

from __future__ import annotations

from collections import Counter
from typing import Any

from streamlit.testing.v1 import AppTest

from tests.dashboards.conftest import APP, SeededApi

TIMEOUT = 60
PAGES = {"executive": "views/executive.py", "triage": "views/triage.py", "audit": "views/audit.py",
         "health": "views/health.py"}


def signed_in(api: SeededApi, role: str, page: str | None = None) -> AppTest:
    """The app after sign-in with the role's token, on `page` (the default page when None)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state["sw_token"] = api.tokens[role]
    at.run()
    if page is not None:
        at.switch_page(str(APP.parent / PAGES[page])).run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    """No exception box and no error message on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def element_types(at: AppTest) -> Counter[str]:
    found: Counter[str] = Counter()

    def walk(node: Any) -> None:
        for child in getattr(node, "children", {}).values():
            found[getattr(child, "type", type(child).__name__)] += 1
            walk(child)

    walk(at.main)
    return found


def texts(elements: Any) -> list[str]:
    return [str(e.value) for e in elements]

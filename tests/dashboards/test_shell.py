"""The app shell: sign-in, role-based navigation, sign-out, and clear messages when the API refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboards.session import OidcMappingError, load_oidc_users
from tests.dashboards.conftest import APP, SeededApi

TIMEOUT = 30


def app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT)


def test_without_a_token_the_sign_in_form_shows(dashboard_env: SeededApi) -> None:
    at = app().run()
    assert not at.exception
    assert at.title[0].value == "Syncwatch"
    assert at.text_input[0].label == "User token"


def test_signing_in_with_a_token_shows_the_pages_of_the_role(dashboard_env: SeededApi) -> None:
    at = app().run()
    at.text_input[0].input(dashboard_env.tokens["ops"])
    at.button[0].click().run()
    assert not at.exception
    assert "ops tester" in at.sidebar.markdown[0].value
    assert at.title[0].value == "Executive"


def test_a_bad_token_is_refused_with_the_api_message(dashboard_env: SeededApi) -> None:
    at = app().run()
    at.text_input[0].input("swu_0123456789ab_" + "0" * 48)
    at.button[0].click().run()
    assert not at.exception
    assert any("not valid" in w.value for w in at.warning)
    assert at.text_input[0].label == "User token"


def test_the_configured_token_signs_everyone_in_until_they_sign_out(
        dashboard_env: SeededApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCWATCH_DASHBOARD_TOKEN", dashboard_env.tokens["auditor"])
    at = app().run()
    assert not at.exception and "auditor" in at.sidebar.markdown[0].value
    sign_out = next(b for b in at.sidebar.button if b.label == "Sign out")
    sign_out.click().run()
    assert at.text_input[0].label == "User token"


def test_an_unreachable_api_is_a_message(dashboard_env: SeededApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCWATCH_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SYNCWATCH_DASHBOARD_TOKEN", dashboard_env.tokens["ops"])
    at = app().run()
    assert not at.exception
    assert "cannot reach the API" in at.error[0].value


def test_oidc_user_map(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    path.write_text('[users]\n"Ana@Firm.example" = "swu_x"\n')
    assert load_oidc_users(path) == {"ana@firm.example": "swu_x"}
    path.write_text('users = 3\n')
    with pytest.raises(OidcMappingError, match=r"\[users\] table"):
        load_oidc_users(path)
    with pytest.raises(OidcMappingError, match="cannot read"):
        load_oidc_users(tmp_path / "missing.toml")


def test_a_refused_request_shows_the_api_message_not_a_traceback(dashboard_env: SeededApi) -> None:
    script = f"""
from dashboards import ui
from dashboards.client import ApiClient
from dashboards.session import Session
import streamlit as st

client = ApiClient({dashboard_env.base_url!r}, {dashboard_env.tokens["ops"]!r})
st.session_state[ui.SESSION_KEY] = Session(client, client.me(), "form")
with ui.api_errors("the audit log"):
    ui.get("audit")
st.write("the rest of the page still renders")
"""
    at = AppTest.from_string(script, default_timeout=TIMEOUT).run()
    assert not at.exception
    [warning] = at.warning
    assert "Your role (ops) may not see the audit log" in warning.value and "audit:read" in warning.value
    assert at.markdown[-1].value == "the rest of the page still renders"


@pytest.mark.parametrize("module", ["dashboards.client", "dashboards.formatting", "dashboards.views.audit",
                                    "dashboards.views.health"])
def test_doctests(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0


def test_auto_refresh_and_refresh_now(dashboard_env: SeededApi) -> None:
    from dashboards import ui

    at = app()
    at.session_state["sw_token"] = dashboard_env.tokens["executive"]
    at.run()
    at.sidebar.selectbox(key="sw_auto_refresh").set_value("1 min").run()
    assert not at.exception
    assert "refreshing every 60 s" in [c.value for c in at.sidebar.caption]
    before = at.session_state.get(ui.EPOCH_KEY, 0)
    next(b for b in at.sidebar.button if b.label == "Refresh now").click().run()
    assert at.session_state[ui.EPOCH_KEY] != before and not at.exception

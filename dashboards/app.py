"""The dashboards' entry point: `streamlit run dashboards/app.py` (or `syncwatch dashboards`).

Signs the person in, then offers the pages their role may see (from the permissions `GET
/api/v1/me` lists). The API enforces the same permissions on every request; a page that is refused
anyway shows the API's message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from dashboards import session as auth
from dashboards import ui
from dashboards.client import ApiError
from syncwatch.settings import Settings

HERE = Path(__file__).resolve().parent
log = logging.getLogger("syncwatch.dashboards")


@dataclass(frozen=True)
class PageSpec:
    file: str
    title: str
    icon: str
    permission: str
    url_path: str


PAGES = (
    PageSpec("views/executive.py", "Executive", ":material/monitoring:", "kpis:read", "executive"),
    PageSpec("views/triage.py", "Operations triage", ":material/checklist:", "findings:read", "triage"),
    PageSpec("views/audit.py", "Audit", ":material/policy:", "timeline:read", "audit"),
    PageSpec("views/health.py", "Rules and integrations", ":material/hub:", "health:read", "health"),
)


def _settings() -> Settings | None:
    try:
        return Settings()
    except Exception as exc:  # pydantic names the variable and the problem
        st.error(f"The dashboards' configuration is invalid: {exc}")
        return None


def sign_in_page() -> None:
    settings = Settings()
    st.title("Syncwatch")
    st.caption(f"Business-process observability and reconciliation, on the API at {settings.base_url}")
    notice = st.session_state.get(auth.NOTICE_KEY)
    if notice:
        st.warning(notice)
    if auth.oidc_configured():
        if st.user.is_logged_in:
            st.button("Sign out of your identity provider", on_click=st.logout)
        else:
            st.button("Sign in with your company account", type="primary", on_click=st.login)
        st.divider()
    with st.form("sign_in"):
        token = st.text_input("User token", type="password", placeholder="swu_...",
                              help="An admin creates users and hands out their tokens (shown once). "
                                   "`syncwatch demo` writes one per role to <data dir>/demo-users.json.")
        if st.form_submit_button("Sign in", type="primary") and token.strip():
            auth.sign_in(token)
            st.rerun()


def _sidebar(session: auth.Session) -> None:
    with st.sidebar:
        st.markdown(f"**{session.me.name}**  \n{session.me.role}")
        ui.refresh_controls()
        if st.button("Sign out", icon=":material/logout:", width="stretch"):
            auth.sign_out(session)
            st.session_state.pop(ui.SESSION_KEY, None)
            st.rerun()


def main() -> None:
    st.set_page_config(page_title="Syncwatch", page_icon=":material/sync_problem:", layout="wide")
    settings = _settings()
    if settings is None:
        return
    try:
        session = auth.current(settings, http=ui.http_pool())
    except ApiError as exc:
        st.error(f"Cannot sign in: {exc.message}")
        return
    if session is None:
        st.navigation([st.Page(sign_in_page, title="Sign in", icon=":material/login:")]).run()
        return
    st.session_state[ui.SESSION_KEY] = session
    pages = [st.Page(str(HERE / p.file), title=p.title, icon=p.icon, url_path=p.url_path)
             for p in PAGES if session.me.may(p.permission)]
    page = st.navigation(pages)
    _sidebar(session)
    try:
        page.run()
    except ApiError as exc:  # a page that did not handle a refusal itself
        ui.show_error(exc, page.title)
    except Exception as exc:
        log.exception("dashboard page %s failed", page.title)
        st.error(f"This page failed ({type(exc).__name__}: {exc}). The details are in the dashboards' log.")


main()

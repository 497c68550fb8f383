"""Who is using the dashboards, and with which user token they reach the API.

In order: a token pasted into the sign-in form (kept in this browser session only); an OIDC
identity from Streamlit's `st.login` (when `[auth]` is configured in `.streamlit/secrets.toml`),
mapped to a user token by the file named in SYNCWATCH_DASHBOARD_OIDC_USERS; the token in
SYNCWATCH_DASHBOARD_TOKEN, shared by everyone who opens the app. The API checks every request,
so a token here grants nothing the API would not.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import streamlit as st

from dashboards.client import ApiClient, ApiError, Me
from syncwatch.settings import Settings

TOKEN_KEY = "sw_token"
SIGNED_OUT_KEY = "sw_signed_out"
NOTICE_KEY = "sw_sign_in_notice"
WHO_TTL = 15


@dataclass(frozen=True)
class Session:
    client: ApiClient
    me: Me
    source: str  # "form", "oidc" or "settings": how the token was found


class OidcMappingError(Exception):
    """The OIDC user map is missing or unreadable; the message names the file and the fix."""


def load_oidc_users(path: Path) -> dict[str, str]:
    """Read the OIDC user map: a TOML file whose `[users]` table maps e-mail -> user token.

    E-mail addresses compare case-insensitively (identity providers differ in how they case them)."""
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise OidcMappingError(f"cannot read the OIDC user map {path}: {exc}") from exc
    users = doc.get("users")
    if not isinstance(users, dict) or not all(isinstance(v, str) for v in users.values()):
        raise OidcMappingError(f"{path}: expected a [users] table of \"e-mail\" = \"swu_...\" entries")
    return {email.strip().lower(): token for email, token in users.items()}


def oidc_token(settings: Settings, email: str) -> str | None:
    if settings.dashboard_oidc_users is None:
        raise OidcMappingError("OIDC sign-in is configured but SYNCWATCH_DASHBOARD_OIDC_USERS names no user map")
    return load_oidc_users(settings.dashboard_oidc_users).get(email.strip().lower())


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets.toml at all: Streamlit raises its own not-found error
        return False


def oidc_email() -> str | None:
    if not oidc_configured() or not st.user.is_logged_in:
        return None
    return str(st.user.get("email") or "") or None


def _token(settings: Settings) -> tuple[str, str] | None:
    if st.session_state.get(TOKEN_KEY):
        return st.session_state[TOKEN_KEY], "form"
    email = oidc_email()
    if email:
        try:
            token = oidc_token(settings, email)
        except OidcMappingError as exc:
            st.session_state[NOTICE_KEY] = str(exc)
            return None
        if token is None:
            st.session_state[NOTICE_KEY] = (f"You are signed in as {email}, but no Syncwatch user is mapped to that "
                                            "address; ask an admin to add it to the OIDC user map.")
            return None
        return token, "oidc"
    if settings.dashboard_token and not st.session_state.get(SIGNED_OUT_KEY):
        return settings.dashboard_token, "settings"
    return None


def current(settings: Settings, http: httpx.Client | None = None) -> Session | None:
    """The signed-in session, or None (then the app shows the sign-in page)."""
    found = _token(settings)
    if found is None:
        return None
    token, source = found
    client = ApiClient(settings.base_url, token, http=http)
    try:
        me = _who(settings.base_url, token)
    except ApiError as exc:
        if exc.unauthorized or exc.forbidden:
            st.session_state.pop(TOKEN_KEY, None)
            st.session_state[NOTICE_KEY] = f"The API did not accept this token: {exc.message}"
            return None
        raise
    return Session(client, me, source)


@st.cache_data(ttl=WHO_TTL, show_spinner=False, max_entries=1024)
def _who(base_url: str, token: str) -> Me:
    """GET /me, cached briefly: every rerun needs it, a revoked token is refused within WHO_TTL
    (the API refuses it at once for every other request)."""
    client = ApiClient(base_url, token)
    try:
        return client.me()
    finally:
        client.close()


def sign_in(token: str) -> None:
    st.session_state[TOKEN_KEY] = token.strip()
    st.session_state.pop(SIGNED_OUT_KEY, None)
    st.session_state.pop(NOTICE_KEY, None)


def sign_out(session: Session) -> None:
    st.session_state.pop(TOKEN_KEY, None)
    st.session_state[SIGNED_OUT_KEY] = True
    if session.source == "oidc":
        st.logout()

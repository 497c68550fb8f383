"""What every page shares: the signed-in API client, cached reads, refresh, and error messages.

Reads are cached per (API, token, path, parameters, refresh epoch) with a TTL that fits how fast the
data moves. Sessions of one user share entries until one of them refreshes: "Refresh now",
auto-refresh and every action give that session a new epoch, so it sees fresh data at once without
emptying anyone else's cache.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import streamlit as st

from dashboards.client import ApiClient, ApiError, Me, Params
from dashboards.session import Session

SESSION_KEY = "sw_session"
EPOCH_KEY = "sw_epoch"
FULL_RUN_KEY = "sw_full_run_at"

# TTLs: the triage queue and integration health move by the minute; rule runs and the audit log
# change on each run or action; KPIs are aggregates over days and weeks.
LIVE_TTL = 15
STANDARD_TTL = 60
KPI_TTL = 300
REFRESH_CHOICES = {"30 s": 30, "1 min": 60, "5 min": 300}


@st.cache_resource(show_spinner=False)
def http_pool() -> httpx.Client:
    """One connection pool for the whole dashboards process (clients differ only by token)."""
    return httpx.Client(timeout=15.0, limits=httpx.Limits(max_connections=32))


def session() -> Session:
    return st.session_state[SESSION_KEY]


def client() -> ApiClient:
    return session().client


def me() -> Me:
    return session().me


def epoch() -> int:
    return int(st.session_state.get(EPOCH_KEY, 0))


def bump_epoch() -> None:
    """Make this session's next reads bypass the cache (after an action or a refresh). The new epoch
    is unique, never the next integer: another session's entries under that number may be stale."""
    st.session_state[EPOCH_KEY] = time.time_ns()


def _fetch(base_url: str, token: str, path: str, params: tuple[tuple[str, Any], ...]) -> Any:
    return ApiClient(base_url, token, http=http_pool()).get(path, dict(params))


@st.cache_data(ttl=LIVE_TTL, show_spinner=False, max_entries=512)
def _live(base_url: str, token: str, path: str, params: tuple[tuple[str, Any], ...], epoch: int) -> Any:
    return _fetch(base_url, token, path, params)


@st.cache_data(ttl=STANDARD_TTL, show_spinner=False, max_entries=512)
def _standard(base_url: str, token: str, path: str, params: tuple[tuple[str, Any], ...], epoch: int) -> Any:
    return _fetch(base_url, token, path, params)


@st.cache_data(ttl=KPI_TTL, show_spinner=False, max_entries=512)
def _kpi(base_url: str, token: str, path: str, params: tuple[tuple[str, Any], ...], epoch: int) -> Any:
    return _fetch(base_url, token, path, params)


_TIERS = {"live": _live, "standard": _standard, "kpi": _kpi}


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def get(path: str, params: Params | None = None, *, tier: str = "standard") -> Any:
    """A cached GET of /api/v1/<path>; raises ApiError (never cached) when the API refuses."""
    c = client()
    frozen = tuple(sorted((k, _freeze(v)) for k, v in (params or {}).items() if v not in (None, "", [], ())))
    return _TIERS[tier](c.base_url, c.token, path, frozen, epoch())


@contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Show an API refusal as a message in place of the section that needed the data."""
    try:
        yield
    except ApiError as exc:
        show_error(exc, what)


def show_error(exc: ApiError, what: str) -> None:
    if exc.forbidden:
        st.warning(f"Your role ({me().role}) may not see {what}. {exc.message}", icon=":material/lock:")
    elif exc.unauthorized:
        st.error(f"The API no longer accepts your token ({exc.message}); sign in again.", icon=":material/key_off:")
    elif exc.status == 404:
        st.info(f"Nothing found for {what}: {exc.message}", icon=":material/search_off:")
    elif exc.unreachable:
        st.error(f"Could not load {what}: {exc.message}", icon=":material/cloud_off:")
    else:
        st.error(f"Could not load {what}: {exc.message} (HTTP {exc.status})", icon=":material/error:")


def refresh_controls() -> None:
    """Sidebar: a refresh button and an optional auto-refresh (a timed fragment that reruns the app)."""
    st.session_state[FULL_RUN_KEY] = time.monotonic()
    if st.button("Refresh now", icon=":material/refresh:", width="stretch"):
        bump_epoch()
    choice = st.selectbox("Auto-refresh", ["off", *REFRESH_CHOICES], key="sw_auto_refresh")
    if choice != "off":
        _ticker(REFRESH_CHOICES[choice])


def _ticker(seconds: int) -> None:
    @st.fragment(run_every=seconds)
    def tick() -> None:
        # The fragment also runs within every full run; only a timed run (the app has not rerun
        # for a whole interval) refreshes.
        if time.monotonic() - st.session_state.get(FULL_RUN_KEY, 0.0) >= seconds - 1:
            bump_epoch()
            st.rerun(scope="app")
        st.caption(f"refreshing every {seconds} s")

    tick()

"""One Settings object per process, read from SYNCWATCH_* variables and an optional file."""

from __future__ import annotations

import os
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

MIB = 1024 * 1024
REPO_RULES = Path(__file__).resolve().parents[1] / "rules"
_CLUSTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
_TRAILING_ORDINAL = re.compile(r"-(\d+)$")


def _ordinal_of_hostname() -> int:
    """A Kubernetes StatefulSet names its pods <set>-0, <set>-1, ...: that ordinal is the replica's index."""
    match = _TRAILING_ORDINAL.search(os.environ.get("HOSTNAME", ""))
    return int(match.group(1)) if match else 0


class Settings(BaseSettings):
    """Every setting has a default; the README's configuration table lists them all."""

    model_config = SettingsConfigDict(env_prefix="SYNCWATCH_", extra="forbid")

    data_dir: Path = Field(Path(".syncwatch"), description="Where the embedded store and the spool live.")
    clickhouse_url: str = Field(
        "",
        description="chdb:///abs/path for the embedded store, http(s)://user:pass@host:8123 for a server. "
        "Empty means chdb://<data_dir>/store.",
    )
    clickhouse_database: str = Field("syncwatch", description="Database that holds every Syncwatch table.")
    clickhouse_cluster: str = Field(
        "", description="ClickHouse cluster (remote_servers name) to create the schema on: Replicated tables "
        "<table>_local on every shard and Distributed tables under the plain names. Empty means a single node."
    )
    host: str = Field("127.0.0.1", description="Address the API/collector listens on.")
    port: int = Field(4318, ge=1, le=65535, description="Port of the API/collector (4318 is the OTLP/HTTP default).")
    api_url: str = Field(
        "", description="URL the CLI and dashboards use to reach a running server; empty means http://host:port."
    )
    admin_token: str = Field(
        "", description="Admin token (any secret string) accepted with every scope; an embedded server "
        "writes one to <data_dir>/admin.token when this is empty."
    )
    rules_dir: Path = Field(REPO_RULES, description="Rule packs, event JSON Schemas and key mappings "
                            "(default: the rules/ directory of this Syncwatch checkout).")
    spool_dir: Path | None = Field(None, description="Write-ahead spool directory; default <data_dir>/spool.")
    spool_max_bytes: int = Field(512 * MIB, gt=0, description="Spool size at which ingest answers 503.")
    spool_high_water: float = Field(0.8, description="Share of spool_max_bytes above which /readyz fails.")
    spool_fsync: bool = Field(True, description="fsync the spool before acknowledging (group commit).")
    spool_segment_bytes: int = Field(64 * MIB, description="Spool segment file size before rotation.")
    batch_max_rows: int = Field(100_000, ge=1, description="Most rows the writer inserts in one ClickHouse insert.")
    batch_max_delay_ms: int = Field(200, description="Longest a spooled row waits before the writer inserts.")
    max_body_bytes: int = Field(20 * MIB, gt=0, description="Largest request body after decompression (OTLP: 20 MiB).")
    max_json_depth: int = Field(64, description="Deepest JSON nesting accepted in a payload.")
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest a request's body may take to arrive after its head; a slower "
        "one is answered 408, so slow senders cannot hold the ingest slots."
    )
    retry_after_seconds: int = Field(5, description="Retry-After sent with 429/503.")
    max_inflight_requests: int = Field(
        1024, ge=1, description="Concurrent ingest requests above which ingest answers 429."
    )
    max_loop_lag_ms: int = Field(
        2000, ge=0, description="Event-loop delay (the process is out of CPU) above which ingest answers 429; "
        "0 turns the check off."
    )
    key_refresh_seconds: float = Field(5.0, gt=0, description="How often API keys are re-read from the store.")
    cors_allow_origins: str = Field(
        "", description="Comma-separated origins (https://host[:port]) that browsers may call the API from; "
        "empty allows no cross-origin access."
    )
    hsts_max_age: int = Field(
        0, description="Strict-Transport-Security max-age in seconds, sent on https requests only (a TLS "
        "proxy on the same host says so with X-Forwarded-Proto, which uvicorn trusts from 127.0.0.1); 0 sends none."
    )
    reconcile_in_process: bool | None = Field(
        None, description="Run the reconciler's schedule inside the API process; empty means yes in embedded mode "
        "(one process owns a chDB store) and no with a ClickHouse server (run `syncwatch reconcile`)."
    )
    rule_timeout_seconds: int = Field(
        300, ge=1, description="Longest one rule's query may run before ClickHouse cancels it (max_execution_time); "
        "the rule records a timeout and the other rules still run."
    )
    reconcile_every: str = Field(
        "", description="Override every rule's schedule with this interval (e.g. 30s); the demo uses it."
    )
    kpi_max_staleness_seconds: float = Field(
        300.0, ge=0, description="How old the per-instance workflow state behind the KPIs may be before a KPI "
        "request refreshes it first; the reconciler refreshes it every half of this (0: every request that "
        "finds new events refreshes).")
    reconciler_replicas: int = Field(
        1, description="How many `syncwatch reconcile` processes share the rule pack; each schedules the rules "
        "whose stable hash modulo this number is its index."
    )
    reconciler_index: int | None = Field(
        None, description="This reconciler's share, 0 to reconciler_replicas - 1; empty means the trailing -N of "
        "HOSTNAME (a StatefulSet pod's ordinal) when reconciler_replicas > 1, else 0."
    )
    self_traces_endpoint: str = Field(
        "", description="OTLP/HTTP traces endpoint for the service's own spans; empty disables export."
    )
    log_level: str = Field("info", description="Log level of the services.")
    dashboard_host: str = Field("127.0.0.1", description="Address the Streamlit dashboards listen on.")
    dashboard_port: int = Field(8501, ge=1, le=65535, description="Port of the Streamlit dashboards.")
    dashboard_token: str = Field(
        "", description="User token (swu_...) the dashboards use for everyone who opens them; empty shows "
        "a sign-in form where each person pastes their own token."
    )
    dashboard_oidc_users: Path | None = Field(
        None, description="TOML file mapping OIDC e-mail addresses to user tokens, for sign-in with "
        "Streamlit's st.login when [auth] is configured in .streamlit/secrets.toml."
    )

    @field_validator("clickhouse_url")
    @classmethod
    def _store_url(cls, value: str) -> str:
        # anything else was taken for a server over http (ftp://x became http://x:8123)
        if value and not value.startswith(("chdb://", "http://", "https://")):
            raise ValueError(f"clickhouse_url {value!r}: use chdb:///path, http://host:8123 or https://host:8443")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.strip().upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"log_level {value!r}: use debug, info, warning, error or critical")
        return value.strip().lower()

    @field_validator("clickhouse_cluster")
    @classmethod
    def _cluster_name(cls, value: str) -> str:
        # The name is pasted into ON CLUSTER '...' and Distributed('...'): it must not be able to end the quote.
        if value and not _CLUSTER_NAME.match(value):
            raise ValueError(f"clickhouse_cluster {value!r}: use letters, digits, '_', '-' and '.', "
                             "starting with a letter or '_' (the name in remote_servers)")
        return value

    @model_validator(mode="after")
    def _reconciler_share_is_valid(self) -> Settings:
        if self.reconciler_replicas < 1:
            raise ValueError(f"reconciler_replicas is {self.reconciler_replicas}: it must be at least 1")
        if self.clickhouse_cluster and self.embedded:
            raise ValueError(f"clickhouse_cluster {self.clickhouse_cluster!r} needs a ClickHouse server: set "
                             "SYNCWATCH_CLICKHOUSE_URL to http(s)://host:8123 (the embedded store is one node)")
        if self.reconciler_index is not None:  # an index taken from HOSTNAME is checked when a reconciler uses it
            check_share(self.reconciler_index, self.reconciler_replicas)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFileSource(settings_cls))

    @property
    def dsn(self) -> str:
        if self.clickhouse_url:
            return self.clickhouse_url
        return f"chdb://{(self.data_dir / 'store').resolve()}"

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb://")

    @property
    def kpi_state_every(self) -> timedelta | None:
        """How often the reconciler refreshes the KPIs' workflow state (None: only on request)."""
        seconds = self.kpi_max_staleness_seconds / 2
        return timedelta(seconds=max(seconds, 1.0)) if seconds > 0 else None

    @property
    def reconciles_in_process(self) -> bool:
        return self.embedded if self.reconcile_in_process is None else self.reconcile_in_process

    @property
    def reconciler_share(self) -> tuple[int, int]:
        """(index, replicas) of this reconciler; raises ValueError when the index is out of range.

        Not validated at load when the index comes from HOSTNAME: every process (collectors too, whose
        pods may carry ordinals) reads these settings, and only a reconciler must agree with them."""
        if self.reconciler_index is not None:
            return self.reconciler_index, self.reconciler_replicas
        index = _ordinal_of_hostname() if self.reconciler_replicas > 1 else 0
        check_share(index, self.reconciler_replicas, source=f"HOSTNAME {os.environ.get('HOSTNAME', '')!r}")
        return index, self.reconciler_replicas

    @property
    def spool_path(self) -> Path:
        return self.spool_dir or self.data_dir / "spool"

    @property
    def base_url(self) -> str:
        return self.api_url or f"http://{self.host}:{self.port}"


def check_share(index: int, replicas: int, source: str = "SYNCWATCH_RECONCILER_INDEX") -> None:
    if not 0 <= index < replicas:
        raise ValueError(f"reconciler_index {index} (from {source}) is outside 0..{replicas - 1}: "
                         f"reconciler_replicas is {replicas}; set SYNCWATCH_RECONCILER_INDEX below "
                         "SYNCWATCH_RECONCILER_REPLICAS, or raise SYNCWATCH_RECONCILER_REPLICAS")


class _TomlFileSource(PydanticBaseSettingsSource):
    """Optional TOML file named by SYNCWATCH_CONFIG; environment variables win over it."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("SYNCWATCH_CONFIG")
        if not path:
            return {}
        with open(path, "rb") as fh:
            return tomllib.load(fh)

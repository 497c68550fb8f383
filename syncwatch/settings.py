"""One Settings object per process, read from SYNCWATCH_* variables and an optional file."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

MIB = 1024 * 1024
REPO_RULES = Path(__file__).resolve().parents[1] / "rules"


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
    host: str = Field("127.0.0.1", description="Address the API/collector listens on.")
    port: int = Field(4318, description="Port of the API/collector (4318 is the OTLP/HTTP default).")
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
    spool_max_bytes: int = Field(512 * MIB, description="Spool size at which ingest answers 503.")
    spool_high_water: float = Field(0.8, description="Share of spool_max_bytes above which /readyz fails.")
    spool_fsync: bool = Field(True, description="fsync the spool before acknowledging (group commit).")
    spool_segment_bytes: int = Field(64 * MIB, description="Spool segment file size before rotation.")
    batch_max_rows: int = Field(100_000, description="Most rows the writer inserts in one ClickHouse insert.")
    batch_max_delay_ms: int = Field(200, description="Longest a spooled row waits before the writer inserts.")
    max_body_bytes: int = Field(20 * MIB, description="Largest request body after decompression (OTLP: 20 MiB).")
    max_json_depth: int = Field(64, description="Deepest JSON nesting accepted in a payload.")
    retry_after_seconds: int = Field(5, description="Retry-After sent with 429/503.")
    max_inflight_requests: int = Field(1024, description="Concurrent ingest requests above which ingest answers 429.")
    max_loop_lag_ms: int = Field(
        2000, ge=0, description="Event-loop delay (the process is out of CPU) above which ingest answers 429; "
        "0 turns the check off."
    )
    key_refresh_seconds: float = Field(5.0, description="How often API keys are re-read from the store.")
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
    self_traces_endpoint: str = Field(
        "", description="OTLP/HTTP traces endpoint for the service's own spans; empty disables export."
    )
    log_level: str = Field("info", description="Log level of the services.")
    dashboard_host: str = Field("127.0.0.1", description="Address the Streamlit dashboards listen on.")
    dashboard_port: int = Field(8501, description="Port of the Streamlit dashboards.")
    dashboard_token: str = Field(
        "", description="User token (swu_...) the dashboards use for everyone who opens them; empty shows "
        "a sign-in form where each person pastes their own token."
    )
    dashboard_oidc_users: Path | None = Field(
        None, description="TOML file mapping OIDC e-mail addresses to user tokens, for sign-in with "
        "Streamlit's st.login when [auth] is configured in .streamlit/secrets.toml."
    )

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
    def reconciles_in_process(self) -> bool:
        return self.embedded if self.reconcile_in_process is None else self.reconcile_in_process

    @property
    def spool_path(self) -> Path:
        return self.spool_dir or self.data_dir / "spool"

    @property
    def base_url(self) -> str:
        return self.api_url or f"http://{self.host}:{self.port}"


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

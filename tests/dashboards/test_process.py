"""`syncwatch dashboards`: the command line it runs and its help."""

from __future__ import annotations

from click.testing import CliRunner

from syncwatch import dashboards_process
from syncwatch.cli import main
from syncwatch.settings import Settings
from tests.conftest import REPO


def test_dashboards_command_has_help() -> None:
    result = CliRunner().invoke(main, ["dashboards", "--help"])
    assert result.exit_code == 0 and "Streamlit dashboards" in result.output


def test_streamlit_runs_the_app_headless_on_the_configured_address() -> None:
    settings = Settings(dashboard_host="0.0.0.0", dashboard_port=9999, api_url="http://api:4318")
    command = dashboards_process.command(settings)
    assert command[1:4] == ["-m", "streamlit", "run"]
    assert command[4] == str(REPO / "dashboards" / "app.py")
    assert command[command.index("--server.address") + 1] == "0.0.0.0"
    assert command[command.index("--server.port") + 1] == "9999"
    assert command[command.index("--server.headless") + 1] == "true"
    assert dashboards_process.environment(settings)["SYNCWATCH_API_URL"] == "http://api:4318"

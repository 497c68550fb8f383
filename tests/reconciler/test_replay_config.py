"""rules/replay.yaml: the shipped file loads, variables expand, problems name file, line, column and field."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from reconciler.replay_config import ReplayConfig, ReplayConfigError, load_replay, load_replay_text
from tests.conftest import REPO


def test_the_shipped_file_loads_with_every_target_off_until_its_variable_is_set() -> None:
    off = load_replay(REPO / "rules", env={})
    assert set(off.targets) == {"erp", "psa", "billing", "hris"} and not any(t.enabled for t in off.targets.values())
    on = load_replay(REPO / "rules", env={"SYNCWATCH_REPLAY_ERP_URL": "https://erp.example/in",
                                          "SYNCWATCH_REPLAY_ERP_TOKEN": "t0ken"})
    erp = on.targets["erp"]
    assert erp.enabled and erp.url == "https://erp.example/in" and erp.headers == {"Authorization": "Bearer t0ken"}
    assert (on.four_eyes_above, on.max_events, erp.timeout) == (Decimal(10000), 50, timedelta(seconds=10))


def test_a_header_naming_an_unset_variable_is_not_sent() -> None:
    config = load_replay(REPO / "rules", env={"SYNCWATCH_REPLAY_ERP_URL": "https://erp.example/in"})
    assert config.targets["erp"].enabled and config.targets["erp"].headers == {}
    text = 'targets: {erp: {url: "http://x", headers: {X-A: "${A}-${B}", X-Static: "on"}}}'
    assert load_replay_text(text, env={"A": "1"}).targets["erp"].headers == {"X-Static": "on"}
    assert load_replay_text(text, env={"A": "1", "B": "2"}).targets["erp"].headers == {"X-A": "1-2", "X-Static": "on"}


def test_a_target_field_at_the_top_is_not_suggested_as_itself() -> None:
    with pytest.raises(ReplayConfigError) as caught:
        load_replay_text("url: 'http://erp'\n", "replay.yaml", env={})
    assert caught.value.problems == [
        "replay.yaml:1:1: url: unknown field 'url' (valid here: four_eyes_above, max_events, targets)"]


def test_no_file_means_no_targets(tmp_path: Path) -> None:
    assert load_replay(tmp_path) == ReplayConfig()


def test_problems_are_reported_together_with_positions() -> None:
    text = ("four_eyes_above: -1\n"
            "targets:\n"
            "  erp: {url: 'ftp://erp', timout: 3s}\n"
            "  psa: {url: 'http://psa', timeout: 5m, event_types: ['Bad Type']}\n")
    with pytest.raises(ReplayConfigError) as caught:
        load_replay_text(text, "replay.yaml", env={})
    problems = caught.value.problems
    assert "replay.yaml:1:18: four_eyes_above: Input should be greater than or equal to 0" in problems
    assert "replay.yaml:3:14: targets.erp.url: 'ftp://erp' is not an http(s) URL" in problems
    assert "replay.yaml:3:27: targets.erp.timout: unknown field 'timout' (did you mean 'timeout'?)" in problems
    assert any(p.startswith("replay.yaml:4:37: targets.psa.timeout: must be more than 0") for p in problems)
    assert any(p.startswith("replay.yaml:4:55: targets.psa.event_types[0]: String should match") for p in problems)


def test_not_a_mapping_and_not_yaml() -> None:
    with pytest.raises(ReplayConfigError, match="must be a mapping"):
        load_replay_text("- a\n- b\n", "r.yaml")
    with pytest.raises(ReplayConfigError, match="not valid YAML"):
        load_replay_text("targets: {erp: [\n", "r.yaml")

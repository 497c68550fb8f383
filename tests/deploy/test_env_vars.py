"""Every SYNCWATCH_* variable that compose, the manifests and the image set is a real setting.

Settings ignores an unknown SYNCWATCH_* variable silently, so a misspelt name in a deployment
would run with the default: this is the only place such a typo is caught.
"""

from __future__ import annotations

import re

import pytest

from syncwatch.settings import Settings
from tests.deploy.files import DEPLOY, WORKLOADS, config_map_data, containers, k8s_objects, services

# added by the cluster-mode work (settings.py is not this branch's to change); checked strictly below
CLUSTER = {"SYNCWATCH_CLICKHOUSE_CLUSTER", "SYNCWATCH_RECONCILER_REPLICAS", "SYNCWATCH_RECONCILER_INDEX"}
SETTINGS = {f"SYNCWATCH_{name.upper()}" for name in Settings.model_fields}


def used() -> dict[str, set[str]]:
    """variable -> where it is set"""
    found: dict[str, set[str]] = {}

    def add(name: str, where: str) -> None:
        if name.startswith("SYNCWATCH_"):
            found.setdefault(name, set()).add(where)

    for name, svc in services().items():
        for var in svc.get("environment", {}):
            add(var, f"compose {name}")
    for obj in k8s_objects():
        if obj["kind"] in WORKLOADS:
            for container in containers(obj):
                for env in container.get("env", []):
                    add(env["name"], f"k8s {obj['metadata']['name']}/{container['name']}")
    for var in config_map_data("syncwatch-env"):
        add(var, "k8s ConfigMap syncwatch-env")
    for var in re.findall(r"^\s+(SYNCWATCH_\w+)=", (DEPLOY / "Dockerfile").read_text(), flags=re.M):
        add(var, "Dockerfile ENV")
    return found


def test_the_scan_finds_the_variables() -> None:
    found = used()
    assert {"SYNCWATCH_CLICKHOUSE_URL", "SYNCWATCH_RULES_DIR", "SYNCWATCH_API_URL"} <= set(found)
    assert "Dockerfile ENV" in found["SYNCWATCH_RULES_DIR"]


def test_every_variable_is_a_setting() -> None:
    unknown = {name: sorted(where) for name, where in used().items() if name not in SETTINGS | CLUSTER}
    assert not unknown, f"not Settings fields (see syncwatch/settings.py): {unknown}"


def test_cluster_variables_are_settings_once_cluster_mode_is_merged() -> None:
    present = CLUSTER & SETTINGS
    if not present:
        pytest.skip(f"syncwatch/settings.py has none of {sorted(CLUSTER)} yet (cluster mode not merged)")
    assert present == CLUSTER, f"missing from Settings: {sorted(CLUSTER - present)}"
    assert set(used()) >= CLUSTER

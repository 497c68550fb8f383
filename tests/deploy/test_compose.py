"""deploy/compose.yaml: valid Compose, every file it mounts exists, the cluster it describes is whole.

`docker compose config` runs where the compose plugin is installed; everywhere else the file is
parsed by compose-spec (the Rust compose_spec parser, which rejects unknown keys and malformed
values) and the cross-references below are checked by hand.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from compose_spec import PyCompose

from tests.deploy.files import DEPLOY, compose, env_example, interpolated, remote_servers, services, xml

CLICKHOUSE_CONFIG = "/etc/clickhouse-server/config.d/cluster.xml"
CLICKHOUSE_USERS = "/etc/clickhouse-server/users.d/syncwatch-users.xml"


def _bind_sources(service: dict) -> list[str]:
    mounts = [v if isinstance(v, str) else v.get("source", "") for v in service.get("volumes", [])]
    return [m.split(":", 1)[0] for m in mounts if m.startswith((".", "/"))]


def _mounts(service: dict) -> dict[str, str]:
    """container path -> host source of the bind mounts"""
    pairs = [v.split(":")[:2] for v in service.get("volumes", []) if isinstance(v, str) and v.startswith(".")]
    return {target: source for source, target in pairs}


def test_compose_parses_as_the_compose_specification() -> None:
    parsed = PyCompose.from_json(json.dumps(compose()))
    assert set(parsed.service_names()) == set(services())
    assert parsed.to_spec().services  # and the pydantic model of the whole specification accepts it


def test_the_validator_rejects_what_compose_would() -> None:
    """The check above can fail: a misspelt key or a malformed port is refused."""
    with pytest.raises(ValueError, match="imagee"):
        PyCompose.from_json(json.dumps({"services": {"a": {"imagee": "x"}}}))
    with pytest.raises(ValueError, match="port"):
        PyCompose.from_json(json.dumps({"services": {"a": {"image": "x", "ports": ["eighty:80"]}}}))


def test_every_mounted_file_and_the_build_exist() -> None:
    missing = [f"{name}: {src}" for name, svc in services().items() for src in _bind_sources(svc)
               if not (DEPLOY / src).exists()]
    assert not missing, f"mounted files that do not exist: {missing}"
    for name, svc in services().items():
        if "build" in svc:
            context = (DEPLOY / svc["build"]["context"]).resolve()
            assert (context / svc["build"]["dockerfile"]).is_file(), name


def test_depends_on_names_services_and_the_schema_comes_first() -> None:
    all_services = services()
    for name, svc in all_services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in all_services, f"{name} depends on unknown service {dep}"
    for name in ("collector-1", "collector-2", "reconciler"):
        assert all_services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_every_interpolated_variable_is_in_the_example_env_file() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    assert interpolated(text) <= set(env_example()), interpolated(text) - set(env_example())
    assert ".env" in (DEPLOY / ".gitignore").read_text().split(), "deploy/.env holds real secrets: keep it ignored"


def test_remote_servers_are_the_compose_clickhouse_services_with_their_macros() -> None:
    root = xml((DEPLOY / "clickhouse/config.d/cluster.xml").read_text())
    shards = remote_servers(root)
    assert [len(s) for s in shards] == [2, 2], "2 shards x 2 replicas"
    all_services = services()
    for number, hosts in enumerate(shards, start=1):
        for host in hosts:
            svc = all_services[host]
            env = svc["environment"]
            assert (env["CH_SHARD"], env["CH_REPLICA"], env["CH_INTERSERVER_HOST"]) == (str(number), host, host)
            assert _mounts(svc)[CLICKHOUSE_CONFIG] == "./clickhouse/config.d/cluster.xml"
            assert _mounts(svc)[CLICKHOUSE_USERS] == "./clickhouse/users.d/syncwatch-users.xml"
    clickhouse_services = {n for n, s in all_services.items() if "clickhouse-server" in s.get("image", "")}
    assert clickhouse_services == {h for hosts in shards for h in hosts}
    macros = root.find("macros")
    assert macros is not None
    assert (macros.find("shard").get("from_env"), macros.find("replica").get("from_env")) == ("CH_SHARD", "CH_REPLICA")


def test_keepers_are_a_quorum_of_three_that_the_servers_know() -> None:
    keeper = xml((DEPLOY / "clickhouse/keeper/keeper.xml").read_text())
    raft = {int(s.findtext("id")): s.findtext("hostname") for s in keeper.iter("server")}
    assert sorted(raft) == [1, 2, 3]
    for server_id, host in raft.items():
        assert services()[host]["environment"]["KEEPER_SERVER_ID"] == str(server_id)
    cluster = xml((DEPLOY / "clickhouse/config.d/cluster.xml").read_text())
    assert sorted(n.findtext("host") for n in cluster.iter("node")) == sorted(raft.values())


def test_the_load_balancer_spreads_over_existing_services() -> None:
    conf = (DEPLOY / "compose/nginx.conf").read_text()
    upstreams = dict(re.findall(r"upstream (\w+) \{(.*?)\}", conf, flags=re.S))
    members = {name: re.findall(r"server ([\w-]+):(\d+)", body) for name, body in upstreams.items()}
    assert {h for h, _ in members["collectors"]} == {"collector-1", "collector-2"}
    assert {h for h, _ in members["clickhouse"]} == {"ch-s1-r1", "ch-s1-r2", "ch-s2-r1", "ch-s2-r2"}
    assert {p for _, p in members["collectors"]} == {"4318"} and {p for _, p in members["clickhouse"]} == {"8123"}


def test_each_collector_has_its_own_spool_volume() -> None:
    spools = [services()[n]["volumes"] for n in ("collector-1", "collector-2")]
    targets = [{v.split(":")[0] for v in vols if v.endswith(":/var/lib/syncwatch")} for vols in spools]
    assert all(len(t) == 1 for t in targets) and targets[0] != targets[1], targets
    assert all(next(iter(t)) in compose()["volumes"] for t in targets)


def test_services_use_their_own_clickhouse_user() -> None:
    expected = {"migrate": "syncwatch_migrator", "collector-1": "syncwatch_collector",
                "collector-2": "syncwatch_collector", "reconciler": "syncwatch_reconciler"}
    for name, user in expected.items():
        url = services()[name]["environment"]["SYNCWATCH_CLICKHOUSE_URL"]
        assert url.startswith(f"http://{user}:${{CH_PASSWORD_"), (name, url)
    assert not any(k.startswith("SYNCWATCH_CLICKHOUSE") for k in services()["dashboards"]["environment"])


def _docker_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _docker_compose(), reason="the docker compose plugin is not installed here "
                    "(Debian has only the 2021 docker-compose 1.29); compose-spec validated the file above")
def test_docker_compose_config_accepts_it(tmp_path: Path) -> None:
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    shutil.copy(copy / ".env.example", copy / ".env")
    result = subprocess.run(["docker", "compose", "-f", str(copy / "compose.yaml"), "config", "--quiet"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr

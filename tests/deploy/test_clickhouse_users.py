"""The ClickHouse configs parse, every grant is valid SQL, and each service holds no more than it needs.

ClickHouse's own parser (formatQuery, in chDB) reads each grant; a statement it cannot parse would
stop the server from loading users.d at all.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from syncwatch.errors import StoreError
from syncwatch.store import Store
from tests.deploy.files import DEPLOY, services, xml

USERS = xml((DEPLOY / "clickhouse/users.d/syncwatch-users.xml").read_text())
DDL = re.compile(r"\b(ALTER|DROP|TRUNCATE|OPTIMIZE|CREATE VIEW|CREATE DICTIONARY)\b")
# every service opens the store with these two statements (syncwatch/store.py, syncwatch/schema.py)
BOOTSTRAP = {"CREATE DATABASE ON syncwatch.*", "CREATE TABLE ON syncwatch.schema_migrations",
             "CREATE TABLE ON syncwatch.schema_migrations_local", "CLUSTER ON *.*"}


def _grants(user: str) -> list[str]:
    node = USERS.find(f"users/{user}")
    assert node is not None, f"no user {user}"
    return [(q.text or "").strip().removeprefix("GRANT ") for q in node.iter("query")]


def _format(store: Store, statement: str) -> str:
    return store.query("SELECT formatQuery({q:String})", {"q": statement})[0][0]


@pytest.mark.parametrize("path", sorted((DEPLOY / "clickhouse").rglob("*.xml")), ids=lambda p: p.name)
def test_clickhouse_xml_parses(path: Path) -> None:
    assert xml(path.read_text()).tag == "clickhouse"


def test_every_grant_parses_in_clickhouse(store: Store) -> None:
    statements = [q.text.strip() for q in USERS.iter("query")]
    assert len(statements) > 20
    for statement in statements:
        _format(store, f"{statement} TO someone")  # users.xml grants name no grantee
    with pytest.raises(StoreError, match="Syntax error"):  # the check can fail
        _format(store, "GRANT SELECT ON syncwatch.events, syncwatch.records TO someone")


# a KPI state refresh (the API's on request, the reconciler's on schedule) and a workflow's full run
# (or a re-check's first build) drop old generations of workflow_instances and workflow_progress with
# DROP PARTITION, which needs ALTER DELETE on those two tables
STATE_PARTITIONS = {f"ALTER DELETE ON syncwatch.{t}_local" for t in ("workflow_instances", "workflow_progress")}
# a record mirror's build ends with a manual compaction of the node-local mirror table (decision 13)
MIRROR_COMPACTION = {"OPTIMIZE ON syncwatch.record_mirror"}


def test_only_the_migrator_may_change_the_schema() -> None:
    assert DDL.search(" ".join(_grants("syncwatch_migrator")))
    for user in ("syncwatch_collector", "syncwatch_reconciler", "syncwatch_dashboards"):
        allowed = STATE_PARTITIONS | (MIRROR_COMPACTION if user == "syncwatch_reconciler" else set())
        assert not [g for g in _grants(user) if DDL.search(g) and g not in allowed], user
        creates = {g for g in _grants(user) if g.startswith(("CREATE", "CLUSTER"))}
        assert creates <= BOOTSTRAP, (user, creates - BOOTSTRAP)


def test_the_reconciler_writes_only_findings_runs_versions_alert_state_leases_states_and_mirrors() -> None:
    grants = _grants("syncwatch_reconciler")
    inserts = {g.removeprefix("INSERT ON syncwatch.") for g in grants if g.startswith("INSERT")}
    tables = {"findings", "rule_runs", "rule_versions", "alert_state", "rule_leases", "workflow_instances",
              "workflow_state_refreshes", "workflow_progress", "workflow_progress_updates"}
    assert inserts == tables | {f"{t}_local" for t in tables} | {"record_mirror"}  # node-local: no _local


def test_the_dashboards_user_is_read_only_and_cannot_read_secrets() -> None:
    profile = USERS.find("users/syncwatch_dashboards/profile").text
    assert USERS.find(f"profiles/{profile}/readonly").text == "2"  # no writes; query settings allowed
    grants = _grants("syncwatch_dashboards")
    assert all(g.startswith("SELECT ON syncwatch.") for g in grants)
    assert not [g for g in grants if re.search(r"\.(api_keys|users)(_local)?$", g)]


def test_passwords_come_from_the_environment_that_the_servers_get() -> None:
    server_env = services()["ch-s1-r1"]["environment"]
    for user in USERS.find("users"):
        if user.tag == "default":
            assert {ip.text for ip in user.iter("ip")} == {"::1", "127.0.0.1"}, "default stays local"
            continue
        password = user.find("password")
        assert password is not None and not (password.text or "").strip(), f"{user.tag}: no literal password"
        assert password.get("from_env") in server_env, user.tag

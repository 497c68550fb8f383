"""deploy/k8s: every manifest parses, carries what a cluster needs, and its references resolve."""

from __future__ import annotations

import pytest

from tests.deploy.files import (
    DEPLOY,
    K8S,
    WORKLOADS,
    config_map_data,
    containers,
    k8s,
    k8s_objects,
    pod_spec,
    remote_servers,
    xml,
    yaml_docs,
)

SECRETS = {s["metadata"]["name"]: set(s["stringData"]) for s in yaml_docs(K8S / "secrets.example.yaml")}
SERVING = ("Deployment", "StatefulSet")


def _workloads(kinds: tuple[str, ...] = WORKLOADS) -> list[dict]:
    return [o for o in k8s_objects() if o["kind"] in kinds]


def _ids(objs: list[dict]) -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}" for o in objs]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_every_object_names_its_api_kind_and_name() -> None:
    assert len(k8s_objects()) >= 20
    for obj in k8s_objects() + yaml_docs(K8S / "secrets.example.yaml"):
        assert obj.get("apiVersion") and obj.get("kind") and obj.get("metadata", {}).get("name"), obj


def test_kustomization_lists_every_manifest_but_the_secret_templates() -> None:
    (kustomization,) = k8s("Kustomization")
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secrets.example.yaml"}
    assert set(kustomization["resources"]) == manifests


@pytest.mark.parametrize("workload", _workloads(), ids=_ids(_workloads()))
def test_every_container_has_requests_and_limits(workload: dict) -> None:
    for container in containers(workload):
        resources = container.get("resources", {})
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(part, {})), f"{container['name']}: {part}"


@pytest.mark.parametrize("workload", _workloads(SERVING), ids=_ids(_workloads(SERVING)))
def test_every_serving_container_has_readiness_and_liveness_probes(workload: dict) -> None:
    for container in containers(workload, init=False):
        assert "readinessProbe" in container and "livenessProbe" in container, container["name"]


@pytest.mark.parametrize("workload", _workloads(SERVING), ids=_ids(_workloads(SERVING)))
def test_every_deployment_and_statefulset_has_a_disruption_budget(workload: dict) -> None:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert _matches(workload["spec"]["selector"]["matchLabels"], labels)
    budgets = [p for p in k8s("PodDisruptionBudget") if _matches(p["spec"]["selector"]["matchLabels"], labels)]
    assert len(budgets) == 1, f"{len(budgets)} PodDisruptionBudgets select {workload['metadata']['name']}"
    spec = budgets[0]["spec"]
    assert "minAvailable" in spec or "maxUnavailable" in spec


@pytest.mark.parametrize("workload", _workloads(), ids=_ids(_workloads()))
def test_pods_run_as_non_root_without_privilege_escalation(workload: dict) -> None:
    assert pod_spec(workload)["securityContext"]["runAsNonRoot"] is True
    for container in containers(workload):
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, container["name"]


def test_services_and_statefulsets_find_their_pods() -> None:
    pod_labels = [w["spec"]["template"]["metadata"]["labels"] for w in _workloads(SERVING)]
    for service in k8s("Service"):
        assert any(_matches(service["spec"]["selector"], labels) for labels in pod_labels), service["metadata"]
    service_names = {s["metadata"]["name"] for s in k8s("Service")}
    for sts in k8s("StatefulSet"):
        assert sts["spec"]["serviceName"] in service_names, sts["metadata"]["name"]


def test_secret_and_config_references_resolve() -> None:
    config_maps = {c["metadata"]["name"]: c["data"] for c in k8s("ConfigMap")}
    for workload in _workloads():
        for container in containers(workload):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in SECRETS.get(ref["name"], set()), (container["name"], ref)
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
            for mount in container.get("volumeMounts", []):
                volume = next(v for v in pod_spec(workload)["volumes"] + [{"name": t["metadata"]["name"]}
                              for t in workload["spec"].get("volumeClaimTemplates", [])]
                              if v["name"] == mount["name"])
                if "configMap" in volume and "subPath" in mount:
                    assert mount["subPath"] in config_maps[volume["configMap"]["name"]], mount


def test_collectors_keep_a_spool_volume_per_replica() -> None:
    (collector,) = k8s("StatefulSet", "collector")
    claims = {t["metadata"]["name"] for t in collector["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in containers(collector, init=False)[0]["volumeMounts"]}
    assert mounts["/var/lib/syncwatch"] in claims and collector["spec"]["replicas"] >= 2


def test_reconciler_replica_count_matches_the_statefulset() -> None:
    (reconciler,) = k8s("StatefulSet", "reconciler")
    env = {e["name"]: e for e in containers(reconciler, init=False)[0]["env"]}
    assert env["SYNCWATCH_RECONCILER_REPLICAS"]["value"] == str(reconciler["spec"]["replicas"])
    index = env["SYNCWATCH_RECONCILER_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert index == "metadata.labels['apps.kubernetes.io/pod-index']"


def test_remote_servers_name_the_clickhouse_pods_of_each_shard() -> None:
    shards = remote_servers(xml(config_map_data("clickhouse-config")["cluster.xml"]))
    assert [len(s) for s in shards] == [2, 2]
    for number, hosts in enumerate(shards, start=1):
        (sts,) = k8s("StatefulSet", f"clickhouse-s{number}")
        name, service = sts["metadata"]["name"], sts["spec"]["serviceName"]
        assert hosts == [f"{name}-{i}.{service}" for i in range(sts["spec"]["replicas"])]
        env = {e["name"]: e.get("value") for e in containers(sts)[0]["env"]}
        assert env["CH_SHARD"] == str(number)


def test_keeper_raft_peers_are_the_keeper_pods() -> None:
    keeper_xml = xml(config_map_data("keeper-config")["keeper.xml"])
    (sts,) = k8s("StatefulSet", "keeper")
    pods = [f"keeper-{i}.{sts['spec']['serviceName']}" for i in range(sts["spec"]["replicas"])]
    assert [s.findtext("hostname") for s in keeper_xml.iter("server")] == pods
    cluster = xml(config_map_data("clickhouse-config")["cluster.xml"])
    assert [n.findtext("host") for n in cluster.iter("node")] == pods


def test_clickhouse_users_are_the_same_as_in_compose() -> None:
    """One definition of who may do what: the ConfigMap must not drift from deploy/clickhouse."""
    compose_users = (DEPLOY / "clickhouse/users.d/syncwatch-users.xml").read_text()
    assert config_map_data("clickhouse-config")["syncwatch-users.xml"] == compose_users, (
        "copy deploy/clickhouse/users.d/syncwatch-users.xml into deploy/k8s/clickhouse.yaml (indented 4)")

"""Loading what deploy/ holds, for the tests that check it (no Docker or cluster needed)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
WORKLOADS = ("Deployment", "StatefulSet", "Job")
SYNCWATCH_IMAGE = "syncwatch"


def yaml_docs(path: Path) -> list[Any]:
    """Every document of a YAML file, with anchors and merge keys resolved (as compose and kubectl do)."""
    return [d for d in YAML(typ="safe").load_all(path.read_text()) if d is not None]


@cache
def compose() -> dict[str, Any]:
    # through JSON: plain dicts and lists, the merge keys already applied
    return json.loads(json.dumps(yaml_docs(DEPLOY / "compose.yaml")[0]))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


@cache
def k8s_objects() -> list[dict[str, Any]]:
    """(file name is kept in `_file`) every object of every manifest under deploy/k8s."""
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml_docs(path):
            found.append(json.loads(json.dumps(doc)) | {"_file": path.name})
    return found


def k8s(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in k8s_objects() if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def containers(workload: dict[str, Any], init: bool = True) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return spec.get("containers", []) + (spec.get("initContainers", []) if init else [])


def config_map_data(name: str) -> dict[str, str]:
    (found,) = k8s("ConfigMap", name)
    return found["data"]


def xml(text: str) -> ET.Element:
    return ET.fromstring(text.encode())


def remote_servers(root: ET.Element, cluster: str = "syncwatch") -> list[list[str]]:
    """Hosts of each shard of `cluster`, in order."""
    node = root.find(f"remote_servers/{cluster}")
    assert node is not None, f"no remote_servers/{cluster}"
    return [[r.findtext("host") or "" for r in shard.findall("replica")] for shard in node.findall("shard")]


INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?\-][^}]*)?\}")


def interpolated(text: str) -> set[str]:
    """Variables a compose file takes from its .env (`${NAME}`, `${NAME:-x}`, `${NAME:?msg}`)."""
    return set(INTERPOLATION.findall(text))


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs

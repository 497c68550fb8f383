"""The OTLP gateway forwards every signal to the collectors over otlphttp with a bearer API key."""

from __future__ import annotations

import pytest

from tests.deploy.files import DEPLOY, config_map_data, containers, k8s, services, yaml_docs

COMPOSE_CONFIG = yaml_docs(DEPLOY / "compose/otel-gateway.yaml")[0]


def _k8s_config() -> dict:
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(config_map_data("otel-gateway-config")["config.yaml"])


def _forwarding(config: dict) -> dict:
    exporters = config["exporters"]
    (name,) = [n for n in exporters if n.split("/")[0] == "otlphttp"]
    for signal in ("traces", "logs", "metrics"):
        pipeline = config["service"]["pipelines"][signal]
        assert pipeline["exporters"] == [name] and pipeline["receivers"] == ["otlp"], signal
        assert pipeline["processors"][0] == "memory_limiter", "memory_limiter must come first"
    return exporters[name]


@pytest.mark.parametrize("config", [COMPOSE_CONFIG, _k8s_config()], ids=["compose", "k8s"])
def test_every_signal_goes_to_the_collectors_with_a_bearer_key(config: dict) -> None:
    exporter = _forwarding(config)
    assert exporter["endpoint"] == "${env:SW_COLLECTORS_URL}"
    assert exporter["headers"]["Authorization"] == "Bearer ${env:SW_API_KEY}"
    assert exporter["retry_on_failure"]["enabled"] is True and exporter["sending_queue"]["enabled"] is True
    assert set(config["service"]["extensions"]) <= set(config["extensions"])


def test_the_gateway_environment_points_at_the_collectors() -> None:
    env = services()["otel-gateway"]["environment"]
    assert env["SW_COLLECTORS_URL"] == "http://lb:4318" and env["SW_API_KEY"] == "${OTEL_GATEWAY_API_KEY:-}"
    (deployment,) = k8s("Deployment", "otel-gateway")
    k8s_env = {e["name"]: e for e in containers(deployment)[0]["env"]}
    assert k8s_env["SW_COLLECTORS_URL"]["value"] == "http://collector:4318"
    assert k8s_env["SW_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "otel-gateway-api-key"


def test_kubernetes_keeps_the_send_queue_on_a_volume() -> None:
    config = _k8s_config()
    storage = _forwarding(config)["sending_queue"]["storage"]
    directory = config["extensions"][storage]["directory"]
    (deployment,) = k8s("Deployment", "otel-gateway")
    assert directory in {m["mountPath"] for m in containers(deployment)[0]["volumeMounts"]}

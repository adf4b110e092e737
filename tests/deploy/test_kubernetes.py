"""deploy/kubernetes/: every manifest valid against the Kubernetes schemas (offline, kubernetes-validate,
strict: unknown fields refused), one Deployment per process kind, probes on /healthz and /readyz,
secrets as files, and every command, variable and port naming what the project has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.checks import (
    REPO,
    as_list,
    assert_easymemory_command,
    assert_healthcheck,
    assert_known_variable,
    option_value,
)

KUBERNETES_VERSION = "1.37.0"
MANIFESTS = sorted((REPO / "deploy/kubernetes").glob("*.yaml"))


def documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                found.append((path, doc))
    return found


def by_kind_and_name() -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in documents()}


def container(doc: dict[str, Any]) -> dict[str, Any]:
    containers = doc["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_each_manifest_is_valid_kubernetes(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if doc:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_what_kubernetes_would() -> None:
    web = by_kind_and_name()[("Deployment", "easymemory-web")]
    broken = yaml.safe_load(yaml.safe_dump(web))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_there_is_a_workload_per_process_kind_and_a_service_for_each_server() -> None:
    resources = by_kind_and_name()
    for name in ["easymemory-web", "easymemory-worker-embeddings", "easymemory-worker-llm"]:
        assert ("Deployment", name) in resources, name
    assert ("StatefulSet", "easymemory-db") in resources and ("StatefulSet", "easymemory-redis") in resources
    assert ("Job", "easymemory-migrate") in resources
    for name in ["easymemory-web", "easymemory-db", "easymemory-redis"]:
        service = resources[("Service", name)]
        workload = next(doc for (kind, n), doc in resources.items() if n == name and kind != "Service")
        assert service["spec"]["selector"] == workload["spec"]["selector"]["matchLabels"]
        ports = {p["name"] for p in container(workload)["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_the_web_pods_are_probed_on_healthz_and_readyz_on_the_port_they_serve() -> None:
    web = container(by_kind_and_name()[("Deployment", "easymemory-web")])
    command = as_list(web["command"])
    assert_easymemory_command(command)
    port = int(option_value(command, "--port"))
    assert web["ports"] == [{"name": "http", "containerPort": port}]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        path = web[probe]["httpGet"]["path"]
        assert_healthcheck(["CMD", "python", "-c", f"http://127.0.0.1:{port}{path}"], port=port)
        assert web[probe]["httpGet"]["port"] == "http"


def test_workers_consume_every_queue_and_are_probed_by_name() -> None:
    from django.conf import settings

    resources = by_kind_and_name()
    consumed: list[str] = []
    for kind in ["embeddings", "llm"]:
        worker = container(resources[("Deployment", f"easymemory-worker-{kind}")])
        command = as_list(worker["command"])
        assert_easymemory_command(command)
        consumed += option_value(command, "--queues").split(",")
        probe = worker["livenessProbe"]["exec"]["command"]
        assert_healthcheck(probe[-1], worker_name=option_value(command, "--name"))
    assert sorted(consumed) == sorted(settings.EASYMEMORY_QUEUES)
    assert_easymemory_command(as_list(container(resources[("Job", "easymemory-migrate")])["command"]))


def test_configuration_names_known_variables_and_secrets_are_mounted_files() -> None:
    resources = by_kind_and_name()
    config = resources[("ConfigMap", "easymemory")]["data"]
    secret_keys = set(resources[("Secret", "easymemory")]["stringData"])
    assert all(value == "" for value in resources[("Secret", "easymemory")]["stringData"].values())  # nothing baked in
    for variable, value in config.items():
        assert_known_variable(variable)
        if variable.endswith("_FILE"):
            assert value.startswith("/run/secrets/easymemory/") and value.rsplit("/", 1)[1] in secret_keys
    assert {"EASYMEMORY_MODE", "EASYMEMORY_ALLOWED_HOSTS", "DATABASE_URL_FILE", "EASYMEMORY_REDIS_URL_FILE"} <= set(
        config
    )
    assert "EASYMEMORY_SECRET_KEY_FILE" in config and config["EASYMEMORY_MODE"] == "team"
    for (kind, name), doc in resources.items():
        if kind not in {"Deployment", "StatefulSet", "Job"}:
            continue
        spec = doc["spec"]["template"]["spec"]
        pod = container(doc)
        mounts = {m["mountPath"]: m["name"] for m in pod.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        assert volumes[mounts["/run/secrets/easymemory"]]["secret"]["secretName"] == "easymemory", name
        for item in volumes[mounts["/run/secrets/easymemory"]]["secret"].get("items", []):
            assert item["key"] in secret_keys
        if pod["image"].startswith("easymemory:"):
            assert pod["envFrom"] == [{"configMapRef": {"name": "easymemory"}}]
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["allowPrivilegeEscalation"] is False
        for env in pod.get("env", []):
            if any(word in env["name"] for word in ("PASSWORD", "SECRET", "TOKEN")):
                assert env["name"].endswith("_FILE"), env  # a secret's value never sits in a manifest

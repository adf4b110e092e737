"""The configuration page is generated from the settings' declarations, and every variable the
code reads is declared, so the page cannot drift from the code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from config import configdoc
from config.env import REGISTRY, ConfigError, Setting, SettingGroup, setting_declare

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ["config", "accounts", "audit", "memory", "graph", "ingest", "dashboard", "bench"]
ENV_PARSERS = {"env_str", "env_bool", "env_int", "env_float", "env_float_bounded", "env_list", "env_choice", "_raw"}
# Read from the environment but not settings of this product (library switches, Django's own).
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "XDG_RUNTIME_DIR"}


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_environ(node: ast.AST) -> bool:
    # os.environ or a bare `environ` imported from os
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def variables_read(tree: ast.AST) -> set[str]:
    """Names read through the env parsers, os.environ.get/[...] or os.getenv (writes are not reads)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in ENV_PARSERS or called == "getenv":
                name = _literal(node.args[0])
            elif called == "get" and isinstance(func, ast.Attribute) and _is_environ(func.value):
                name = _literal(node.args[0])
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
            name = _literal(node.slice)
        if name and name not in NOT_SETTINGS:
            names.add(name)
    return names


def test_the_configuration_page_is_generated_from_the_declarations() -> None:
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == configdoc.configuration_page(), "docs/configuration.md is stale: run `python -m config.configdoc`"


def check(page: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "config.configdoc", "--check", "--page", str(page)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_the_generator_reports_a_stale_page_without_writing_it(tmp_path: Path) -> None:
    assert check(REPO / "docs" / "configuration.md").returncode == 0
    stale = tmp_path / "configuration.md"
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8").replace("`100000`", "`99`")
    stale.write_text(text, encoding="utf-8")
    result = check(stale)
    assert result.returncode == 1 and "is stale" in result.stderr
    assert stale.read_text(encoding="utf-8") == text


def test_every_variable_the_code_reads_is_declared() -> None:
    undeclared: dict[str, list[str]] = {}
    for folder in SOURCE_DIRS:
        for path in sorted((REPO / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for name in variables_read(ast.parse(path.read_text(encoding="utf-8"))):
                if name not in REGISTRY:
                    undeclared.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert not undeclared, f"read but not declared (declare them with a SettingGroup in settings): {undeclared}"


def test_the_scan_finds_reads_of_every_form() -> None:
    tree = ast.parse(
        "import os\nfrom os import environ\n"
        "a = env_int('EASYMEMORY_A', 1)\nb = os.environ.get('EASYMEMORY_B')\nc = os.environ['EASYMEMORY_C']\n"
        "d = os.getenv('EASYMEMORY_D')\ne = environ.get('EASYMEMORY_E')\nos.environ['EASYMEMORY_WRITTEN'] = '1'\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'x')\n"
    )
    assert variables_read(tree) == {f"EASYMEMORY_{letter}" for letter in "ABCDE"}


def test_every_declaration_has_help_and_sane_bounds() -> None:
    for setting in REGISTRY.values():
        assert setting.help.strip(), setting.name
        if setting.minimum is not None and setting.maximum is not None:
            assert setting.minimum <= setting.maximum, setting.name
        assert setting.name.startswith("EASYMEMORY_") or setting.name in {
            "DATABASE_URL",
            "DATABASE_REPLICA_URL",
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "PROMETHEUS_MULTIPROC_DIR",  # prometheus-client's own variable
        }, setting.name


def test_a_group_declares_parses_and_enforces_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    group = SettingGroup("Test-only group")
    monkeypatch.setenv("EASYMEMORY_TEST_ONLY_RATIO", "0.5")
    try:
        assert group.number("EASYMEMORY_TEST_ONLY_RATIO", 0.1, minimum=0.0, maximum=1.0, help="h") == 0.5
        declared = REGISTRY["EASYMEMORY_TEST_ONLY_RATIO"]
        assert (declared.kind, declared.default, declared.minimum, declared.maximum) == ("number", "0.1", 0.0, 1.0)
        monkeypatch.setenv("EASYMEMORY_TEST_ONLY_RATIO", "1.5")
        with pytest.raises(ConfigError, match="EASYMEMORY_TEST_ONLY_RATIO=1.5 is above the maximum 1"):
            group.number("EASYMEMORY_TEST_ONLY_RATIO", 0.1, minimum=0.0, maximum=1.0, help="h")
    finally:
        REGISTRY.pop("EASYMEMORY_TEST_ONLY_RATIO", None)
        configdoc.GROUPS.pop("Test-only group", None)


def test_one_name_cannot_be_declared_twice_differently() -> None:
    known = REGISTRY["EASYMEMORY_MAX_BATCH"]
    setting_declare(known)  # the same declaration again (a re-imported module) is fine
    with pytest.raises(ConfigError, match="declared twice"):
        setting_declare(Setting(**{**known.__dict__, "default": "7"}))
    assert REGISTRY["EASYMEMORY_MAX_BATCH"] == known

"""The import rules of docs/architecture.md hold: the import-linter contracts in pyproject.toml
(apps depend downwards only, no cycles between an app's modules), and no app uses another app's
private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APPS = ["config", "core", "accounts", "audit", "memory", "graph", "ingest", "dashboard", "agent", "mcp_server"]


def test_the_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(  # noqa: S603 - our own tool, fixed arguments
        [str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def private_names_used_across_apps(path: Path, source: str) -> list[str]:
    """`from <other app>... import _name`, and `module._name` on a module imported from another app."""
    own = path.relative_to(REPO).parts[0]
    found: list[str] = []
    other_modules: set[str] = set()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            app = node.module.split(".")[0]
            if app in APPS and app != own:
                for alias in node.names:
                    if alias.name.startswith("_"):
                        found.append(f"{node.lineno}: from {node.module} import {alias.name}")
                    else:
                        other_modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in other_modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_app_uses_another_apps_private_names() -> None:
    offenders = []
    for app in APPS:
        for path in (REPO / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for hit in private_names_used_across_apps(path, path.read_text()):
                offenders.append(f"{path.relative_to(REPO)}:{hit}")
    assert not offenders, "private names used across apps:\n" + "\n".join(offenders)


def test_the_private_name_check_sees_both_forms() -> None:
    path = REPO / "graph" / "example.py"
    source = "from memory.services import _enqueue, memory_create\nfrom memory import services\nservices._x()\n"
    assert private_names_used_across_apps(path, source) == [
        "1: from memory.services import _enqueue",
        "3: services._x",
    ]
    own = "from graph.services import _withdraw\nfrom graph import services\nservices._x()\n"
    assert private_names_used_across_apps(path, own) == []

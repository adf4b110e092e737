"""Fails when code queries a tenant-owned model, or runs SQL on its table, without going through the
scoping helper (accounts/scoping.py `scoped(...)`).

A tenant-owned model is any model with a `tenant` foreign key. The check reads the syntax tree, so a
chain spread over several lines counts as one query:

- `Model.objects...` (or `_default_manager` / `_base_manager`) on a tenant-owned model is allowed
  only for creation (`create`, `bulk_create`, `get_or_create`, `update_or_create`, `none`);
  any other use must carry `# unscoped: <reason>` on one of its lines (workers acting on ids they
  were given, maintenance over all tenants).
- Raw SQL (`.execute(...)`, `.executemany(...)`, `.raw(...)`) is allowed when its SQL is a literal
  that names no tenant-owned table; otherwise it must carry `# unscoped: <reason>`, or
  `# scoped: <how>` when the SQL itself is restricted to one tenant (built from a `scoped()`
  queryset, or filtering `tenant_id`).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps

REPO = Path(__file__).resolve().parent.parent
APP_DIRS = ["accounts", "memory", "graph", "ingest", "audit", "dashboard", "config", "agent", "core", "mcp_server"]
# Creation and the empty queryset are not reads of other tenants' rows.
ALLOWED_FIRST = {"create", "bulk_create", "get_or_create", "update_or_create", "none"}
MANAGERS = {"objects", "_default_manager", "_base_manager"}
SQL_CALLS = {"execute", "executemany", "raw"}
QUERY_MARKER = re.compile(r"#\s*unscoped:\s*\S")
SQL_MARKER = re.compile(r"#\s*(unscoped|scoped):\s*\S")


@dataclass(frozen=True)
class TenantModels:
    names: frozenset[str]
    tables: frozenset[str]


def tenant_models() -> TenantModels:
    names, tables = set(), set()
    for model in apps.get_models():
        if any(field.name == "tenant" and field.is_relation for field in model._meta.fields):
            names.add(model.__name__)
            tables.add(model._meta.db_table)
    return TenantModels(frozenset(names), frozenset(tables))


def _comments(source: str) -> dict[int, str]:
    found: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            found[token.start[0]] = token.string
    return found


def _marked(comments: dict[int, str], lines: list[str], node: ast.expr, marker: re.Pattern[str]) -> bool:
    """The marker is on a line of the expression, or on a comment line right above it."""
    first, last = node.lineno, node.end_lineno or node.lineno
    if first >= 2 and lines[first - 2].lstrip().startswith("#"):
        first -= 1
    return any(marker.search(comments.get(line, "")) for line in range(first, last + 1))


def _model_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # models.Memory.objects
        return node.attr
    return None


def _sql_names_tenant_table(sql: ast.expr, tables: frozenset[str]) -> bool | None:
    """True / False for a literal SQL string; None when the SQL is not a literal (composed elsewhere)."""
    if isinstance(sql, ast.Constant) and isinstance(sql.value, str):
        text = sql.value
    elif isinstance(sql, ast.JoinedStr) and all(isinstance(part, ast.Constant) for part in sql.values):
        text = "".join(str(part.value) for part in sql.values)  # type: ignore[attr-defined]
    else:
        return None
    return any(re.search(rf"\b{re.escape(table)}\b", text) for table in tables)


def unscoped_uses(source: str, models: TenantModels) -> list[tuple[int, str]]:
    """(line, what) for every query on a tenant-owned model, and every raw SQL statement, that is
    neither scoped nor marked."""
    tree = ast.parse(source)
    comments = _comments(source)
    lines = source.splitlines()
    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in MANAGERS and _model_name(node.value) in models.names:
            # Climb the chain: Model.objects.filter(...).exclude(...).values_list(...)
            top: ast.expr = node
            while True:
                parent = parents.get(top)
                if isinstance(parent, ast.Attribute) and parent.value is top:
                    top = parent
                elif isinstance(parent, ast.Call) and parent.func is top:
                    top = parent
                else:
                    break
            method = parents.get(node)
            first = method.attr if isinstance(method, ast.Attribute) and method.value is node else None
            if first in ALLOWED_FIRST or _marked(comments, lines, top, QUERY_MARKER):
                continue
            found.append((node.lineno, f"{_model_name(node.value)}.{node.attr}.{first or ''}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
            if not node.args:
                continue
            names_table = _sql_names_tenant_table(node.args[0], models.tables)
            if names_table is False or _marked(comments, lines, node, SQL_MARKER):
                continue
            found.append((node.lineno, f".{node.func.attr}(...) raw SQL"))
    return sorted(found)


def app_files() -> list[Path]:
    files = []
    for app in APP_DIRS:
        for path in sorted((REPO / app).rglob("*.py")):
            if "migrations" in path.parts or path.relative_to(REPO).as_posix() == "accounts/scoping.py":
                continue
            files.append(path)
    return files


def test_tenant_models_are_only_queried_through_the_scoping_helper() -> None:
    models = tenant_models()
    assert "Memory" in models.names and "memory_memory" in models.tables
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {what}"
        for path in app_files()
        for line, what in unscoped_uses(path.read_text(), models)
    ]
    assert not offenders, "unscoped queries or raw SQL on tenant data:\n" + "\n".join(offenders)


SNIPPET_MODELS = TenantModels(frozenset({"Memory"}), frozenset({"memory_memory"}))


def test_the_guard_catches_a_chain_spread_over_lines() -> None:
    source = (
        "rows = (\n"
        "    Memory.objects\n"
        "    .filter(kind='note')\n"
        "    .values_list('id', flat=True)\n"
        ")\n"
        "mine = scoped(Memory, tenant).filter(kind='note')\n"
        "made = Memory.objects.create(content='x')\n"
    )
    assert unscoped_uses(source, SNIPPET_MODELS) == [(2, "Memory.objects.filter")]
    marked = source.replace("    .filter(kind='note')\n", "    .filter(kind='note')  # unscoped: a test\n")
    assert unscoped_uses(marked, SNIPPET_MODELS) == []


def test_the_guard_catches_raw_sql_on_a_tenant_table() -> None:
    source = (
        "cursor.execute('SELECT id FROM memory_memory WHERE kind = %s', ['note'])\n"
        "cursor.execute(\n"
        "    query,\n"
        "    params,\n"
        ")\n"
        "cursor.execute('SELECT pg_database_size(current_database())')\n"
        "Memory.objects.raw('SELECT * FROM memory_memory')\n"
    )
    assert unscoped_uses(source, SNIPPET_MODELS) == [
        (1, ".execute(...) raw SQL"),
        (2, ".execute(...) raw SQL"),
        (7, ".raw(...) raw SQL"),
        (7, "Memory.objects.raw"),
    ]
    marked = source.replace("    params,\n", "    params,  # scoped: built from scoped(Memory, tenant)\n")
    assert (2, ".execute(...) raw SQL") not in unscoped_uses(marked, SNIPPET_MODELS)

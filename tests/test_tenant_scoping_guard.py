"""Fails when code queries a tenant-owned model without going through the scoping helper.

A tenant-owned model is any model with a `tenant` foreign key. Direct
`Model.objects` use outside the allowed places must carry an `# unscoped:`
comment saying why (workers acting on ids they were given, maintenance jobs).
"""

from __future__ import annotations

import re
from pathlib import Path

from django.apps import apps

REPO = Path(__file__).resolve().parent.parent
APP_DIRS = ["accounts", "memory", "graph", "ingest", "audit", "dashboard", "config", "agent", "core", "mcp_server"]
# Creation and the scoping helper itself are not reads of other tenants' rows.
ALLOWED = re.compile(r"\.objects\.(create|bulk_create|get_or_create|update_or_create|none)\(")


def tenant_models() -> list[str]:
    names = []
    for model in apps.get_models():
        if any(field.name == "tenant" and field.is_relation for field in model._meta.fields):
            names.append(model.__name__)
    return names


def test_tenant_models_are_only_queried_through_the_scoping_helper() -> None:
    models = tenant_models()
    assert "Memory" in models
    pattern = re.compile(r"\b(" + "|".join(models) + r")\.objects\.")
    offenders = []
    for app in APP_DIRS:
        for path in (REPO / app).rglob("*.py"):
            if "migrations" in path.parts or path.name == "scoping.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if pattern.search(line) and not ALLOWED.search(line) and "# unscoped:" not in line:
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "unscoped queries on tenant models:\n" + "\n".join(offenders)

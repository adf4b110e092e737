"""Reads are audited in the selectors every door calls, so REST, MCP, the dashboard and the CLI
leave the same events (and MCP search honours EASYMEMORY_AUDIT_QUERIES like the others)."""

from __future__ import annotations

import hashlib
import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from accounts.models import Tenant
from audit.models import AuditEvent
from core.request_context import RequestInfo
from mcp_server.registry import autodiscover
from mcp_server.server import invoke_tool
from memory.models import Memory
from memory.services import MemoryInput, memory_create
from tests.conftest import Persona
from tests.dashboard.conftest import make_person

pytestmark = pytest.mark.django_db

QUERY = "where does alice live"
DIGEST = hashlib.sha256(QUERY.encode()).hexdigest()


@pytest.fixture
def memory(writer: Persona) -> Memory:
    created = memory_create(principal=writer.principal, data=MemoryInput(content="Alice lives in Lyon"))
    assert created.memory is not None
    return created.memory


def mcp(persona: Persona, name: str, args: dict[str, Any]) -> Any:
    return invoke_tool(autodiscover()[name], persona.principal, args, RequestInfo(request_id="t"))


def events(tenant: Tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action=action).order_by("seq"))


def search_from(door: str, reader: Persona, tenant: Tenant) -> None:
    if door == "rest":
        body = json.dumps({"query": QUERY})
        assert reader.client().post("/v1/search", body, content_type="application/json").status_code == 200
    elif door == "mcp":
        mcp(reader, "memory_search", {"query": QUERY})
    elif door == "dashboard":
        assert make_person("dash-reader", tenant, "reader").client().get("/search/", {"q": QUERY}).status_code == 200
    else:
        call_command("search", QUERY, "--tenant", tenant.slug, stdout=StringIO())


@pytest.mark.parametrize(
    "door,mode",
    [("rest", "hash"), ("mcp", "hash"), ("dashboard", "hash"), ("cli", "hash"), ("mcp", "full"), ("mcp", "off")],
)
def test_every_door_audits_a_search_as_audit_queries_says(
    door: str, mode: str, memory: Memory, reader: Persona, tenant: Tenant, settings: Any
) -> None:
    settings.EASYMEMORY_AUDIT_QUERIES = mode
    search_from(door, reader, tenant)
    (event,) = events(tenant, "memory.search")
    expected = {"off": {}, "hash": {"query_sha256": DIGEST}, "full": {"query": QUERY}}[mode]
    assert {k: v for k, v in event.detail.items() if k != "hits"} == expected
    assert event.detail["hits"] >= 0


def test_every_door_audits_a_memory_list(memory: Memory, reader: Persona, tenant: Tenant) -> None:
    assert reader.client().get("/v1/memories").status_code == 200
    mcp(reader, "memory_list", {})
    assert make_person("dash-reader", tenant, "reader").client().get("/memories/").status_code == 200
    assert len(events(tenant, "memory.list")) == 3


def test_every_door_audits_reading_a_memory_and_its_history(memory: Memory, reader: Persona, tenant: Tenant) -> None:
    assert reader.client().get(f"/v1/memories/{memory.id}").status_code == 200
    assert reader.client().get(f"/v1/memories/{memory.id}/history").status_code == 200
    mcp(reader, "memory_get", {"id": str(memory.id)})
    mcp(reader, "memory_history", {"id": str(memory.id)})
    assert make_person("dash-reader", tenant, "reader").client().get(f"/memories/{memory.id}/").status_code == 200
    reads = events(tenant, "memory.read")
    assert len(reads) == 3 and {e.target_id for e in reads} == {str(memory.id)}
    assert len(events(tenant, "memory.history")) == 3  # the dashboard's detail page shows the history too


def test_a_write_is_not_also_audited_as_a_read(memory: Memory, writer: Persona, tenant: Tenant) -> None:
    body = json.dumps({"importance": 0.7})
    assert writer.client().patch(f"/v1/memories/{memory.id}", body, content_type="application/json").status_code == 200
    assert events(tenant, "memory.update") and not events(tenant, "memory.read")

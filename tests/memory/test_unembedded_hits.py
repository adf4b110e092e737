"""A memory written a moment ago is found by its words at once, and its hit says that its
embedding is still on its way (REST and MCP), instead of the vector list silently missing it."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from core.request_context import RequestInfo
from mcp_server.registry import autodiscover
from mcp_server.server import invoke_tool
from memory.services import MemoryInput, memory_create_many
from tests.conftest import Persona, embed_pending

pytestmark = pytest.mark.django_db

FRESH = "The zeppelin hangar inspection moved to Thursday"
OLDER = "The zeppelin museum opens at nine"


def rest_search(persona: Persona, query: str) -> list[dict[str, Any]]:
    response = persona.client().post("/v1/search", {"query": query}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_a_fresh_memory_is_found_by_its_words_and_flagged_until_it_is_embedded(writer: Persona) -> None:
    memory_create_many(principal=writer.principal, items=[MemoryInput(content=OLDER)])
    embed_pending()
    created = writer.client().post("/v1/memories", {"content": FRESH}, format="json")
    assert created.status_code == 201

    hits = {hit["memory"]["content"]: hit for hit in rest_search(writer, "zeppelin hangar")}
    assert hits[FRESH]["embedded"] is False
    assert "fulltext" in hits[FRESH]["evidence"] and "vector" not in hits[FRESH]["evidence"]
    assert hits[OLDER]["embedded"] is True

    embed_pending()
    hits = {hit["memory"]["content"]: hit for hit in rest_search(writer, "zeppelin hangar")}
    assert hits[FRESH]["embedded"] is True and "vector" in hits[FRESH]["evidence"]


@pytest.mark.parametrize("persona_name", ["admin", "writer", "reader"])
def test_every_role_that_can_search_sees_the_flag(persona_name: str, cast: dict[str, Persona]) -> None:
    memory_create_many(principal=cast["writer"].principal, items=[MemoryInput(content=FRESH)])
    hits = rest_search(cast[persona_name], "zeppelin")
    assert [hit["embedded"] for hit in hits] == [False]


def test_another_tenant_neither_finds_the_memory_nor_learns_its_state(cast: dict[str, Persona]) -> None:
    memory_create_many(principal=cast["writer"].principal, items=[MemoryInput(content=FRESH)])
    assert rest_search(cast["outsider"], "zeppelin") == []


def test_the_mcp_search_tool_carries_the_flag_in_its_declared_output(writer: Persona, reader: Persona) -> None:
    memory_create_many(principal=writer.principal, items=[MemoryInput(content=FRESH)])
    tool = autodiscover()["memory_search"]
    out = invoke_tool(tool, reader.principal, {"query": "zeppelin inspection"}, RequestInfo(request_id="t"))
    assert [hit["embedded"] for hit in out["results"]] == [False]
    assert tool.output_schema is not None
    Draft202012Validator(tool.output_schema).validate(out)

    embed_pending()
    out = invoke_tool(tool, reader.principal, {"query": "zeppelin inspection"}, RequestInfo(request_id="t"))
    assert [hit["embedded"] for hit in out["results"]] == [True]
    Draft202012Validator(tool.output_schema).validate(out)

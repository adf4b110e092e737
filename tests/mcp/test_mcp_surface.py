"""The MCP surface beside plain tools: annotations, output schemas, `memory://` resources
and prompts, through the official client against the live server."""

from __future__ import annotations

import base64
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from mcp import MCPError

from graph import services as graph_services
from graph.models import Mention
from ingest.models import ImportRoot
from ingest.services import job_run
from mcp_server.registry import autodiscover
from mcp_server.surface import ENTITY_URI, MEMORY_URI, resource_target
from memory.services import MemoryInput, memory_create
from tests.conftest import Persona
from tests.mcp.conftest import mcp_client, payload, run

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_tool_carries_all_four_hints_and_an_output_schema(live: Any, reader: Persona) -> None:
    async def scenario() -> Any:
        async with mcp_client(live.url, reader.key) as client:
            return await client.list_tools()

    tools = {tool.name: tool for tool in run(scenario).tools}
    for name, tool in tools.items():
        hints = tool.annotations
        assert hints is not None, name
        assert None not in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint), name
        assert hints.open_world_hint is False, name
        assert tool.title, name
        if hints.read_only_hint:
            assert hints.idempotent_hint is True and hints.destructive_hint is False, name
    assert tools["memory_delete"].annotations.destructive_hint is True
    assert tools["memory_add"].annotations.idempotent_hint is True  # same content, same scope: nothing new
    assert tools["memory_add_file"].annotations.idempotent_hint is False  # a new job each time
    assert set(tools) == set(autodiscover())
    for name, tool in tools.items():
        assert tool.output_schema and tool.output_schema["type"] == "object", name
        Draft202012Validator.check_schema(tool.output_schema)


def test_every_registered_tool_declares_an_output_schema() -> None:
    missing = [name for name, spec in autodiscover().items() if spec.output_schema is None]
    assert missing == []


def test_structured_results_match_their_output_schemas(live: Any, writer: Persona) -> None:
    # The SDK client validates structured content against each tool's output schema.
    async def scenario() -> dict[str, Any]:
        async with mcp_client(live.url, writer.key) as client:
            added = payload(await client.call_tool("memory_add", {"content": "Ravi owns the billing service"}))
            memory_id = added["memory"]["id"]
            got = payload(await client.call_tool("memory_get", {"id": memory_id}))
            listed = payload(await client.call_tool("memory_list", {"limit": 5}))
            found = payload(await client.call_tool("memory_search", {"query": "billing"}))
            history = payload(await client.call_tool("memory_history", {"id": memory_id}))
            stats = payload(await client.call_tool("memory_stats", {}))
            updated = payload(await client.call_tool("memory_update", {"id": memory_id, "tags": ["team"]}))
            deleted = payload(await client.call_tool("memory_delete", {"id": memory_id}))
            return locals()

    out = run(scenario)
    assert out["got"]["memory"]["content"] == "Ravi owns the billing service"
    assert out["listed"]["results"] and out["found"]["results"]
    assert out["history"]["results"][0]["event"]
    assert out["stats"]["memories"] >= 1 and out["updated"]["memory"]["tags"] == ["team"]
    assert out["deleted"]["deleted"] == out["memory_id"]


def test_graph_and_ingest_results_match_their_output_schemas(live: Any, writer: Persona) -> None:
    # The schemas are checked here too, with every optional part filled: past relations, mentions, merges, a run job.
    tenant = writer.tenant
    alice = graph_services.entity_resolve(tenant=tenant, name="Dana Okafor", type_="person", use_similarity=False)
    dup = graph_services.entity_resolve(tenant=tenant, name="D. Okafor", type_="person", use_similarity=False)
    graph_services.entity_merge(principal=writer.principal, target=alice, sources=[dup])
    memory = memory_create(principal=writer.principal, data=MemoryInput(content="Dana Okafor joined the team")).memory
    Mention.objects.get_or_create(tenant=tenant, entity=alice, memory=memory, defaults={"text": "Dana Okafor"})
    root = Path(live.import_root)
    ImportRoot.objects.get_or_create(tenant=tenant, path=str(root.resolve()))
    folder = Path(tempfile.mkdtemp(dir=root))
    (folder / "plan.md").write_text("# Plan\nShip the importer in June.", encoding="utf-8")
    upload = base64.b64encode(b"# Log\nDana moved to Globex.").decode()

    async def scenario() -> dict[str, Any]:
        async with mcp_client(live.url, writer.key) as client:
            schemas = {tool.name: tool.output_schema for tool in (await client.list_tools()).tools}
            out: dict[str, Any] = {}
            for employer in ("Initech", "Globex"):  # works_at is single-valued: Initech becomes past
                out["relation_add"] = payload(
                    await client.call_tool(
                        "relation_add",
                        {"source": alice.pk, "predicate": "works_at", "target": {"name": employer, "type": "org"}},
                    )
                )
            out["entity_search"] = payload(await client.call_tool("entity_search", {"query": "Okafor"}))
            out["entity_get"] = payload(await client.call_tool("entity_get", {"id": alice.pk}))
            out["graph_neighbors"] = payload(
                await client.call_tool("graph_neighbors", {"id": alice.pk, "depth": 2, "as_of": "2030-01-01T00:00:00Z"})
            )
            out["memory_add_file"] = payload(
                await client.call_tool("memory_add_file", {"content_base64": upload, "filename": "log.md"})
            )
            out["memory_index_path"] = payload(await client.call_tool("memory_index_path", {"path": str(folder)}))
            return {"schemas": schemas, "out": out}

    result = run(scenario)
    out = result["out"]
    job_id = out["memory_index_path"]["job"]["id"]
    job_run(job_id)  # here, not in the event loop: a finished job has every field set

    async def finished() -> dict[str, Any]:
        async with mcp_client(live.url, writer.key) as client:
            return payload(await client.call_tool("ingest_job_get", {"id": job_id}))

    out["ingest_job_get"] = run(finished)
    for name, data in out.items():
        Draft202012Validator(result["schemas"][name]).validate(data)
    detail = out["entity_get"]
    assert detail["relations"]["current"] and detail["relations"]["past"][0]["invalidated_by"]
    assert detail["memories"][0]["id"] == str(memory.pk) and detail["merges"][0]["merged_name"] == "D. Okafor"
    assert out["graph_neighbors"]["as_of"] and len(out["graph_neighbors"]["nodes"]) == 2
    assert out["relation_add"]["current"] is True and out["entity_search"]["results"][0]["id"] == alice.pk
    assert out["ingest_job_get"]["job"]["status"] == "done" and out["ingest_job_get"]["job"]["finished_at"]


def test_memories_and_entities_are_resources_with_templates(live: Any, writer: Persona, outsider: Persona) -> None:
    entity = graph_services.entity_resolve(tenant=writer.tenant, name="Atlas", type_="project", use_similarity=False)

    async def scenario() -> dict[str, Any]:
        async with mcp_client(live.url, writer.key) as client:
            added = payload(await client.call_tool("memory_add", {"content": "Atlas ships in March"}))
            memory_id = added["memory"]["id"]
            listing = await client.list_resources()
            templates = await client.list_resource_templates()
            memory = await client.read_resource(f"memory://memories/{memory_id}")
            recent = await client.read_resource("memory://memories/recent")
            stats = await client.read_resource("memory://stats")
            entity_read = await client.read_resource(f"memory://entities/{entity.pk}")
            errors = []
            for uri in ("memory://memories/not-a-uuid", "file:///etc/passwd", "memory://" + "a" * 100_000):
                try:
                    await client.read_resource(uri)
                except MCPError as exc:
                    errors.append(exc.message)
            return locals()

    out = run(scenario)
    assert {r.uri for r in out["listing"].resources} >= {"memory://memories/recent", "memory://stats"}
    assert {t.uri_template for t in out["templates"].resource_templates} == {
        "memory://memories/{id}",
        "memory://entities/{id}",
    }
    memory = json.loads(out["memory"].contents[0].text)
    assert memory["memory"]["content"] == "Atlas ships in March"
    assert out["memory"].contents[0].mime_type == "application/json"
    assert json.loads(out["recent"].contents[0].text)["results"][0]["id"] == out["memory_id"]
    assert json.loads(out["stats"].contents[0].text)["memories"] >= 1
    assert json.loads(out["entity_read"].contents[0].text)["name"] == "Atlas"
    assert len(out["errors"]) == 3 and all("unknown resource" in e for e in out["errors"])

    # Another tenant's admin: the same ids are "not found", never content.
    async def foreign() -> list[str]:
        messages = []
        async with mcp_client(live.url, outsider.key) as client:
            for uri in (f"memory://memories/{out['memory_id']}", f"memory://entities/{entity.pk}"):
                try:
                    await client.read_resource(uri)
                except MCPError as exc:
                    messages.append(exc.message)
        return messages

    messages = run(foreign)
    assert len(messages) == 2 and all(m.startswith("not found") for m in messages)


def test_resources_follow_the_scopes_of_the_caller(live: Any, reader: Persona, writer: Persona) -> None:
    async def scenario() -> set[str]:
        async with mcp_client(live.url, reader.key) as client:
            return {r.uri for r in (await client.list_resources()).resources}

    assert run(scenario) == {"memory://memories/recent", "memory://entities", "memory://stats"}


def test_prompts_phrase_requests_for_the_tools(live: Any, reader: Persona) -> None:
    async def scenario() -> dict[str, Any]:
        async with mcp_client(live.url, reader.key) as client:
            listing = await client.list_prompts()
            recall = await client.get_prompt("recall", {"topic": "the Atlas project"})
            errors = []
            for name, args in (
                ("recall", {}),
                ("recall", {"topic": "x" * 1001}),
                ("nope", {}),
                ("recall", {"topic": "a", "b": "c"}),
            ):
                try:
                    await client.get_prompt(name, args)
                except MCPError as exc:
                    errors.append(exc.message)
            return locals()

    out = run(scenario)
    assert {p.name for p in out["listing"].prompts} == {"recall", "remember", "entity_profile"}
    text = out["recall"].messages[0].content.text
    assert "the Atlas project" in text and "memory_search" in text
    assert len(out["errors"]) == 4
    assert "topic" in out["errors"][0] and "1000" in out["errors"][1] and "unknown prompt" in out["errors"][2]


def test_resource_uris_are_matched_in_linear_time_at_any_length() -> None:
    hostile = "memory://memories/" + "a-" * 500_000
    started = time.perf_counter()
    with pytest.raises(MCPError):
        resource_target(hostile)
    assert MEMORY_URI.fullmatch(hostile[:100]) is None and ENTITY_URI.fullmatch("memory://entities/" + "9" * 50) is None
    assert time.perf_counter() - started < 1.0


def test_resource_uris_map_to_the_tools_that_answer_them() -> None:
    assert resource_target("memory://entities/12") == ("entity_get", {"id": 12})
    memory_id = "0B4C3A8E-1111-4222-8333-444455556666"
    assert resource_target(f"memory://memories/{memory_id}") == ("memory_get", {"id": memory_id.lower()})
    assert resource_target("memory://stats") == ("memory_stats", {})

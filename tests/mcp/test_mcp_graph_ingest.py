"""The graph and ingest tools over MCP (the SDK client against the live server)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from graph.models import Relation
from ingest.models import ImportRoot, IngestJob
from tests.conftest import Persona
from tests.mcp.conftest import error_text, mcp_client, payload, run

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_serves_the_graph_tools(live: Any, writer: Persona, reader: Persona, outsider: Persona) -> None:
    async def as_writer() -> dict[str, Any]:
        async with mcp_client(live.url, writer.key) as client:
            out: dict[str, Any] = {}
            out["add"] = payload(
                await client.call_tool(
                    "relation_add",
                    {
                        "source": {"name": "Alice Martin", "type": "person"},
                        "predicate": "works_at",
                        "target": {"name": "Acme Corp", "type": "organization"},
                        "fact": "Alice Martin works at Acme Corp",
                    },
                )
            )
            out["search"] = payload(await client.call_tool("entity_search", {"query": "Alice"}))
            alice = out["search"]["results"][0]["id"]
            out["get"] = payload(await client.call_tool("entity_get", {"id": alice}))
            out["neighbors"] = payload(await client.call_tool("graph_neighbors", {"id": alice, "depth": 1}))
            out["too_deep"] = await client.call_tool("graph_neighbors", {"id": alice, "depth": 9})
            return out

    out = run(as_writer)
    assert out["search"]["results"][0]["name"] == "Alice Martin"
    alice = out["search"]["results"][0]["id"]
    assert "Acme Corp" in {node["name"] for node in out["neighbors"]["nodes"]}
    assert out["get"]["id"] == alice
    assert error_text(out["too_deep"]).startswith("invalid argument depth")
    assert Relation.objects.filter(tenant=writer.tenant).count() == 1

    async def as_others() -> dict[str, Any]:
        async with mcp_client(live.url, reader.key) as client:
            refused = await client.call_tool(
                "relation_add", {"source": {"name": "Bob"}, "predicate": "knows", "target": {"name": "Carol"}}
            )
            allowed = payload(await client.call_tool("entity_get", {"id": alice}))
        async with mcp_client(live.url, outsider.key) as client:
            foreign = await client.call_tool("entity_get", {"id": alice})
            neighbors = await client.call_tool("graph_neighbors", {"id": alice})
            listing = payload(await client.call_tool("entity_search", {"query": "Alice"}))
        return {"refused": refused, "allowed": allowed, "foreign": foreign, "neighbors": neighbors, "list": listing}

    others = run(as_others)
    assert error_text(others["refused"]).startswith("forbidden")
    assert others["allowed"]["id"] == alice
    assert error_text(others["foreign"]) == "not found: no such entity in this workspace"
    assert error_text(others["neighbors"]).startswith("not found")
    assert others["list"]["results"] == []
    assert Relation.objects.count() == 1


def test_it_starts_ingest_jobs_from_files_and_directories(live: Any, writer: Persona, outsider: Persona) -> None:
    root = Path(live.import_root)
    ImportRoot.objects.get_or_create(tenant=writer.tenant, path=str(root.resolve()))
    vault = root / "vault"
    vault.mkdir(exist_ok=True)
    (vault / "note.md").write_text("# Trip\nWe fly to Lisbon in May.", encoding="utf-8")
    note_b64 = base64.b64encode(b"# Recipe\nMix flour and water.").decode()

    async def scenario() -> dict[str, Any]:
        async with mcp_client(live.url, writer.key) as client:
            out: dict[str, Any] = {}
            out["upload"] = payload(
                await client.call_tool("memory_add_file", {"content_base64": note_b64, "filename": "recipe.md"})
            )
            out["by_path"] = payload(await client.call_tool("memory_add_file", {"path": str(vault / "note.md")}))
            out["index"] = payload(await client.call_tool("memory_index_path", {"path": str(vault)}))
            out["job"] = payload(await client.call_tool("ingest_job_get", {"id": out["index"]["job"]["id"]}))
            out["outside"] = await client.call_tool("memory_add_file", {"path": "/etc/hostname"})
            out["outside_dir"] = await client.call_tool("memory_index_path", {"path": "/etc"})
            out["bad_type"] = await client.call_tool(
                "memory_add_file", {"content_base64": note_b64, "filename": "a.exe"}
            )
            out["bad_b64"] = await client.call_tool("memory_add_file", {"content_base64": "***", "filename": "a.md"})
        async with mcp_client(live.url, outsider.key) as client:
            out["foreign"] = await client.call_tool("ingest_job_get", {"id": out["index"]["job"]["id"]})
        return out

    out = run(scenario)
    assert out["upload"]["job"]["kind"] == "file" and out["upload"]["job"]["params"]["filename"] == "recipe.md"
    assert out["by_path"]["job"]["params"]["filename"] == "note.md"
    assert out["index"]["job"]["kind"] == "vault" and out["job"]["job"]["id"] == out["index"]["job"]["id"]
    assert error_text(out["outside"]).startswith("forbidden")
    assert error_text(out["outside_dir"]).startswith("forbidden")
    assert error_text(out["bad_type"]).startswith("invalid argument filename: unsupported file type")
    assert error_text(out["bad_b64"]) == "invalid argument content_base64: not valid base64"
    assert error_text(out["foreign"]).startswith("not found")
    assert IngestJob.objects.filter(tenant=writer.tenant).count() == 3

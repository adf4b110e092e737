"""MCP over Streamable HTTP at /mcp: the official SDK client against the real server (uvicorn, lifespan)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import pytest
from mcp import MCPError

from memory.models import Memory
from tests.conftest import REPO, Persona, embed_pending, free_port, subprocess_env, wait_for_http
from tests.mcp.conftest import error_text, mcp_client, payload, run, stop

pytestmark = pytest.mark.django_db(transaction=True)

ALL_TOOLS = {
    "memory_add",
    "memory_search",
    "memory_get",
    "memory_list",
    "memory_update",
    "memory_delete",
    "memory_history",
    "memory_stats",
}
WRITE_TOOLS = {"memory_add", "memory_update", "memory_delete", "relation_add", "memory_add_file", "memory_index_path"}


def test_it_initializes_and_lists_every_tool_with_a_schema(live: Any, reader: Persona) -> None:
    async def scenario() -> Any:
        async with mcp_client(live.url, reader.key) as client:
            return client.server_info, client.instructions, await client.list_tools()

    info, instructions, listing = run(scenario)
    assert info is not None and info.name == "easymemory"
    assert "memory_search" in (instructions or "")
    tools = {tool.name: tool for tool in listing.tools}
    assert ALL_TOOLS <= set(tools)
    for name, tool in tools.items():
        assert tool.input_schema["type"] == "object", name
        assert len(tool.description or "") > 60, f"{name} needs a description a model can act on"
        assert tool.annotations is not None and tool.annotations.read_only_hint is (name not in WRITE_TOOLS)
    assert tools["memory_search"].input_schema["required"] == ["query"]
    assert set(tools["memory_search"].input_schema["properties"]["search_type"]["enum"]) == {
        "all",
        "notes",
        "messages",
        "documents",
        "facts",
    }
    assert tools["memory_delete"].annotations.destructive_hint is True


def test_it_calls_every_tool(live: Any, writer: Persona) -> None:
    async def write_phase() -> dict[str, Any]:
        async with mcp_client(live.url, writer.key) as client:
            added = payload(
                await client.call_tool(
                    "memory_add",
                    {
                        "content": "Alice prefers green tea over coffee",
                        "kind": "fact",
                        "tags": ["preferences"],
                        "metadata": {"source": "chat"},
                        "scope": {"user_ref": "alice"},
                        "occurred_at": "2026-05-01T10:00:00Z",
                    },
                )
            )
            again = payload(
                await client.call_tool(
                    "memory_add", {"content": "Alice prefers green tea over coffee", "scope": {"user_ref": "alice"}}
                )
            )
            note = payload(await client.call_tool("memory_add", {"content": "The quarterly review is on Friday"}))
            return {"added": added, "again": again, "note": note}

    written = run(write_phase)
    memory = written["added"]["memory"]
    assert written["added"]["created"] is True
    assert memory["kind"] == "fact" and memory["tags"] == ["preferences"] and memory["user_ref"] == "alice"
    assert memory["occurred_at"].startswith("2026-05-01T10:00:00")
    assert written["again"] == {"created": False, "memory": {**written["again"]["memory"], "id": memory["id"]}}
    assert Memory.objects.filter(tenant=writer.tenant).count() == 2
    embed_pending()  # the worker's step, so the vector list takes part in search too
    memory_id = memory["id"]

    async def read_and_change() -> dict[str, Any]:
        async with mcp_client(live.url, writer.key) as client:
            out: dict[str, Any] = {}
            out["get"] = payload(await client.call_tool("memory_get", {"id": memory_id}))
            out["search"] = payload(
                await client.call_tool("memory_search", {"query": "what does alice drink?", "k": 5})
            )
            out["facts"] = payload(
                await client.call_tool("memory_search", {"query": "review friday", "search_type": "facts"})
            )
            out["filtered"] = payload(
                await client.call_tool("memory_search", {"query": "tea", "filters": {"user_ref": "alice"}})
            )
            out["before"] = payload(
                await client.call_tool("memory_search", {"query": "tea", "filters": {"as_of": "2026-04-01T00:00:00Z"}})
            )
            out["page1"] = payload(await client.call_tool("memory_list", {"limit": 1}))
            out["page2"] = payload(
                await client.call_tool("memory_list", {"limit": 1, "cursor": out["page1"]["next_cursor"]})
            )
            out["by_tag"] = payload(await client.call_tool("memory_list", {"filters": {"tags": ["preferences"]}}))
            out["update"] = payload(
                await client.call_tool(
                    "memory_update", {"id": memory_id, "content": "Alice now prefers oolong tea", "tags": ["drinks"]}
                )
            )
            out["stats"] = payload(await client.call_tool("memory_stats", {}))
            out["delete"] = payload(await client.call_tool("memory_delete", {"id": memory_id}))
            out["history"] = payload(await client.call_tool("memory_history", {"id": memory_id}))
            out["gone"] = await client.call_tool("memory_get", {"id": memory_id})
            return out

    out = run(read_and_change)
    assert out["get"]["memory"]["content"] == "Alice prefers green tea over coffee"
    top = out["search"]["results"][0]
    assert top["memory"]["id"] == memory_id and set(top["evidence"]) >= {"vector", "fulltext"}
    assert out["facts"]["results"] == [] or all(h["memory"]["kind"] == "fact" for h in out["facts"]["results"])
    assert [h["memory"]["id"] for h in out["filtered"]["results"]] == [memory_id]
    assert out["before"]["results"] == []  # it occurred on 2026-05-01
    assert len(out["page1"]["results"]) == 1 and out["page1"]["next_cursor"]
    assert len(out["page2"]["results"]) == 1 and out["page2"]["next_cursor"] is None
    assert {out["page1"]["results"][0]["id"], out["page2"]["results"][0]["id"]} == {
        memory_id,
        written["note"]["memory"]["id"],
    }
    assert [m["id"] for m in out["by_tag"]["results"]] == [memory_id]
    assert out["update"]["memory"]["content"] == "Alice now prefers oolong tea"
    assert out["update"]["memory"]["version"] == 2 and out["update"]["memory"]["tags"] == ["drinks"]
    assert out["stats"]["memories"] == 2 and out["stats"]["by_kind"] == {"fact": 1, "note": 1}
    assert out["delete"] == {"deleted": memory_id}
    assert [h["event"] for h in out["history"]["results"]] == ["ADD", "UPDATE", "DELETE"]
    assert "not found" in error_text(out["gone"])
    assert not Memory.objects.filter(pk=memory_id).exists()


def test_it_answers_401_with_a_challenge_without_valid_credentials(live: Any, writer: Persona) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    missing = httpx.post(f"{live.url}/mcp", json=body, headers=headers)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer ")
    wrong = httpx.post(f"{live.url}/mcp", json=body, headers={**headers, "Authorization": "Bearer emk_notakey123456"})
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]

    async def with_wrong_key() -> None:
        async with mcp_client(live.url, "emk_" + "x" * 40) as client:
            await client.list_tools()

    with pytest.raises(BaseExceptionGroup) as caught:  # the SDK's task groups wrap its MCPError
        run(with_wrong_key)
    assert caught.group_contains(MCPError, match="error response")
    assert not Memory.objects.exists()


def test_it_refuses_write_tools_to_a_reader_and_allows_an_admin(
    live: Any, reader: Persona, writer: Persona, admin: Persona
) -> None:
    existing = writer.client().post("/v1/memories", {"content": "Bob likes chess"}, format="json").json()

    async def as_reader() -> dict[str, Any]:
        async with mcp_client(live.url, reader.key) as client:
            return {
                "add": await client.call_tool("memory_add", {"content": "readers cannot write"}),
                "update": await client.call_tool("memory_update", {"id": existing["id"], "content": "changed"}),
                "delete": await client.call_tool("memory_delete", {"id": existing["id"]}),
                "get": await client.call_tool("memory_get", {"id": existing["id"]}),
            }

    out = run(as_reader)
    for name in ("add", "update", "delete"):
        assert error_text(out[name]).startswith("forbidden"), name
    assert payload(out["get"])["memory"]["content"] == "Bob likes chess"
    assert list(Memory.objects.values_list("content", flat=True)) == ["Bob likes chess"]

    async def as_admin() -> dict[str, Any]:
        async with mcp_client(live.url, admin.key) as client:
            return {
                "update": await client.call_tool("memory_update", {"id": existing["id"], "content": "Bob loves chess"}),
                "delete": await client.call_tool("memory_delete", {"id": existing["id"]}),
            }

    out = run(as_admin)
    assert payload(out["update"])["memory"]["content"] == "Bob loves chess"
    assert payload(out["delete"]) == {"deleted": existing["id"]}
    assert not Memory.objects.exists()


def test_it_treats_another_tenants_ids_as_not_found(live: Any, writer: Persona, outsider: Persona) -> None:
    theirs = writer.client().post("/v1/memories", {"content": "Acme launch code name is Falcon"}, format="json").json()
    embed_pending()

    async def scenario() -> dict[str, Any]:
        async with mcp_client(live.url, outsider.key) as client:
            out: dict[str, Any] = {}
            for name, args in {
                "memory_get": {"id": theirs["id"]},
                "memory_update": {"id": theirs["id"], "content": "hijacked"},
                "memory_delete": {"id": theirs["id"]},
                "memory_history": {"id": theirs["id"]},
            }.items():
                out[name] = await client.call_tool(name, args)
            out["search"] = payload(await client.call_tool("memory_search", {"query": "Falcon launch code name"}))
            out["list"] = payload(await client.call_tool("memory_list", {}))
            out["stats"] = payload(await client.call_tool("memory_stats", {}))
            return out

    out = run(scenario)
    for name in ("memory_get", "memory_update", "memory_delete", "memory_history"):
        assert error_text(out[name]).startswith("not found"), name
    assert out["search"]["results"] == [] and out["list"]["results"] == [] and out["stats"]["memories"] == 0
    assert Memory.objects.get(pk=theirs["id"]).content == "Acme launch code name is Falcon"


def test_it_reports_bad_input_as_tool_errors_and_keeps_the_session(live: Any, writer: Persona) -> None:
    from django.conf import settings

    too_big = "x" * (settings.EASYMEMORY_MAX_CONTENT_BYTES + 1)

    async def scenario() -> dict[str, Any]:
        async with mcp_client(live.url, writer.key) as client:
            out: dict[str, Any] = {}
            out["too_big"] = await client.call_tool("memory_add", {"content": too_big})
            out["unknown_field"] = await client.call_tool("memory_add", {"content": "ok", "colour": "red"})
            out["missing"] = await client.call_tool("memory_add", {})
            out["wrong_type"] = await client.call_tool("memory_search", {"query": "tea", "k": "ten"})
            out["bad_kind"] = await client.call_tool("memory_add", {"content": "ok", "kind": "poem"})
            out["bad_date"] = await client.call_tool("memory_add", {"content": "ok", "occurred_at": "yesterday"})
            out["bad_id"] = await client.call_tool("memory_get", {"id": "not-a-uuid"})
            out["long_query"] = await client.call_tool("memory_search", {"query": "q" * 5000})
            out["bad_cursor"] = await client.call_tool("memory_list", {"cursor": "!!!"})
            out["unknown_tool"] = await client.call_tool("memory_teleport", {})
            out["still_fine"] = await client.call_tool("memory_add", {"content": "the session survived"})
            return out

    out = run(scenario)
    assert "content" in error_text(out["too_big"]) and "limit" in error_text(out["too_big"])
    assert error_text(out["unknown_field"]) == "invalid argument colour: unknown field"
    assert error_text(out["missing"]) == "invalid argument content: this field is required"
    assert error_text(out["wrong_type"]).startswith("invalid argument k:")
    assert error_text(out["bad_kind"]).startswith("invalid argument kind:")
    assert error_text(out["bad_date"]).startswith("invalid argument occurred_at:")
    assert error_text(out["bad_id"]).startswith("not found")
    assert error_text(out["long_query"]).startswith("invalid argument query:")
    assert error_text(out["bad_cursor"]).startswith("invalid argument cursor:")
    assert "unknown tool" in error_text(out["unknown_tool"])
    assert payload(out["still_fine"])["created"] is True
    assert list(Memory.objects.values_list("content", flat=True)) == ["the session survived"]


def test_it_returns_the_same_hits_as_the_rest_search(live: Any, writer: Persona) -> None:
    client = writer.client()
    texts = ["Paris is the capital of France", "The Eiffel tower is in Paris", "Berlin has many museums"]
    client.post("/v1/memories", [{"content": text} for text in texts], format="json")
    embed_pending()
    query = {"query": "famous places in Paris", "k": 3}
    rest = httpx.post(f"{live.url}/v1/search", json=query, headers=writer.headers).json()

    async def scenario() -> dict[str, Any]:
        async with mcp_client(live.url, writer.key, mode="auto") as client:  # the 2026 per-request protocol
            return payload(await client.call_tool("memory_search", query))

    via_mcp = run(scenario)
    assert [h["memory"]["id"] for h in via_mcp["results"]] == [h["memory"]["id"] for h in rest["results"]]
    assert [h["score"] for h in via_mcp["results"]] == [h["score"] for h in rest["results"]]


@pytest.mark.slow
@pytest.mark.e2e
def test_it_serves_mcp_under_runserver_without_lifespan(writer: Persona) -> None:
    """`manage.py runserver` is daphne, which has no ASGI lifespan: the session manager starts on first use."""
    port = free_port()
    command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    process = subprocess.Popen(command, cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz", process=process)

        async def scenario() -> Any:
            async with mcp_client(url, writer.key) as client:
                return await client.call_tool("memory_add", {"content": "served by daphne"})

        assert payload(run(scenario))["created"] is True
    finally:
        stop(process)
    assert Memory.objects.get().content == "served by daphne"


def test_it_reports_items_the_memory_policy_declines(live: Any, writer: Persona) -> None:
    async def scenario() -> dict[str, Any]:
        async with mcp_client(live.url, writer.key) as client:
            return {
                "ack": payload(await client.call_tool("memory_add", {"content": "ok thanks!", "kind": "message"})),
                "listed": payload(await client.call_tool("memory_list", {})),
                "with_ephemeral": payload(
                    await client.call_tool("memory_list", {"filters": {"include_ephemeral": True}})
                ),
            }

    out = run(scenario)
    # the default policy ("smart") keeps acknowledgements, marked ephemeral and left out of lists
    assert out["ack"]["created"] is True and out["ack"]["memory"]["metadata"].get("ephemeral") is True
    assert out["listed"]["results"] == []
    assert [m["content"] for m in out["with_ephemeral"]["results"]] == ["ok thanks!"]

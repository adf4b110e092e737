"""`easymemory mcp` over stdio, driven by the SDK's stdio client: local database and proxy modes."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from memory.models import Memory
from tests.conftest import REPO, Persona, subprocess_env
from tests.mcp.conftest import error_text, payload, run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.e2e]


def stdio_client(*args: str, **env: str) -> Client:
    params = StdioServerParameters(
        command=sys.executable, args=["manage.py", "mcp", *args], env=subprocess_env(**env), cwd=str(REPO)
    )
    return Client(params, mode="legacy")


def test_it_serves_the_local_database_as_a_tenant(writer: Persona, outsider: Persona) -> None:
    theirs = outsider.client().post("/v1/memories", {"content": "Globex secret"}, format="json").json()

    async def scenario() -> dict[str, Any]:
        async with stdio_client("--tenant", "acme") as client:
            out: dict[str, Any] = {"tools": {tool.name for tool in (await client.list_tools()).tools}}
            out["add"] = payload(await client.call_tool("memory_add", {"content": "stdio remembers this"}))
            out["get"] = payload(await client.call_tool("memory_get", {"id": out["add"]["memory"]["id"]}))
            out["list"] = payload(await client.call_tool("memory_list", {}))
            out["foreign"] = await client.call_tool("memory_get", {"id": theirs["id"]})
            return out

    out = run(scenario)
    assert {"memory_add", "memory_search", "memory_stats"} <= out["tools"]
    assert out["get"]["memory"]["content"] == "stdio remembers this"
    assert [m["content"] for m in out["list"]["results"]] == ["stdio remembers this"]
    assert error_text(out["foreign"]).startswith("not found")
    stored = Memory.objects.get(pk=out["add"]["memory"]["id"])
    assert stored.tenant == writer.tenant


def test_it_acts_with_the_role_of_the_given_api_key(reader: Persona) -> None:
    async def scenario() -> Any:
        async with stdio_client("--api-key", reader.key) as client:
            return await client.call_tool("memory_add", {"content": "a reader cannot add"})

    assert error_text(run(scenario)).startswith("forbidden")
    assert not Memory.objects.exists()


def test_it_proxies_to_a_server_with_an_api_key(live: Any, writer: Persona, outsider: Persona) -> None:
    theirs = outsider.client().post("/v1/memories", {"content": "Globex roadmap"}, format="json").json()

    async def scenario() -> dict[str, Any]:
        async with stdio_client("--url", live.url, EASYMEMORY_API_KEY=writer.key) as client:
            out: dict[str, Any] = {}
            out["add"] = payload(await client.call_tool("memory_add", {"content": "proxied through stdio"}))
            out["search"] = payload(await client.call_tool("memory_search", {"query": "proxied"}))
            out["foreign"] = await client.call_tool("memory_get", {"id": theirs["id"]})
            out["bad"] = await client.call_tool("memory_add", {"content": ""})
            # Resources and prompts travel through the bridge too.
            memory_id = out["add"]["memory"]["id"]
            out["resource"] = await client.read_resource(f"memory://memories/{memory_id}")
            out["templates"] = await client.list_resource_templates()
            out["prompt"] = await client.get_prompt("recall", {"topic": "stdio"})
            return out

    out = run(scenario)
    assert json.loads(out["resource"].contents[0].text)["memory"]["content"] == "proxied through stdio"
    assert len(out["templates"].resource_templates) == 2
    assert "stdio" in out["prompt"].messages[0].content.text
    assert [h["memory"]["content"] for h in out["search"]["results"]] == ["proxied through stdio"]
    assert error_text(out["foreign"]).startswith("not found")
    assert error_text(out["bad"]).startswith("invalid argument content")
    assert Memory.objects.get(pk=out["add"]["memory"]["id"]).tenant == writer.tenant


def test_it_refuses_to_start_a_proxy_with_a_bad_key(live: Any) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "mcp", "--url", live.url, "--api-key", "emk_" + "y" * 40],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    assert "refused the API key" in done.stderr
    assert done.stdout == ""

"""MCP over stdio, for clients that launch a command (Claude Desktop, IDE agents).

Two ways to serve:

- local: the tools run in this process against the local database, as one
  tenant (`--tenant`, with that tenant's full rights, like every other CLI
  command) or as an API key (`--api-key`, with that key's role, re-checked on
  each call so revoking it takes effect at once);
- proxy: every request is forwarded to a running EasyMemory server's /mcp
  endpoint with an API key, so a laptop's Claude Desktop can use a LAN server.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import mcp_types as types
from mcp import Client
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server

from accounts.authentication import principal_for_bearer
from accounts.cli_support import system_principal
from accounts.principal import Principal
from accounts.selectors import InvalidCredential
from mcp_server.registry import ToolError
from mcp_server.server import INSTRUCTIONS, SERVER_NAME, build_server, run_db
from memory import embeddings


def local_principal_source(*, tenant: str | None, api_key: str | None) -> Any:
    """A PrincipalSource resolving the configured tenant or key on every call."""

    def resolve() -> Principal:
        if api_key:
            try:
                return principal_for_bearer(api_key)
            except InvalidCredential as exc:
                raise ToolError(f"not authenticated: {exc}") from exc
        return system_principal(tenant or "default")

    async def source(ctx: ServerRequestContext[Any, Any]) -> Principal:
        return await run_db(resolve)

    return source


async def serve_local(*, tenant: str | None, api_key: str | None) -> None:
    # Load the embedding model while the client initializes, not on its first search.
    # The query encoder, as a web process does: on ONNX Runtime that is a session of its own.
    warmup = threading.Thread(
        target=lambda: embeddings.query_encoder(embeddings.model_name()), name="embedding-warmup", daemon=True
    )
    warmup.start()
    server = build_server(local_principal_source(tenant=tenant, api_key=api_key))
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def remote_client(url: str, api_key: str, *, mode: str = "legacy") -> Client:
    """The SDK client for a server's /mcp endpoint, authenticated with `api_key`."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {api_key}"})
    transport = _owning(http, streamable_http_client(url, http_client=http))
    assert isinstance(http, httpx2.AsyncClient)
    return Client(transport, mode=mode)


@contextlib.asynccontextmanager
async def _owning(http: Any, transport: Any) -> AsyncIterator[Any]:
    # streamable_http_client leaves a caller-provided http client open; close it with the transport.
    async with http, transport as streams:
        yield streams


def proxy_server(remote: Client) -> Server[Any]:
    """A stdio-side server whose every tool, resource and prompt request is answered by the remote server."""

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return await remote.list_tools(cursor=params.cursor if params else None)

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            result = await remote.call_tool(params.name, dict(params.arguments or {}))
        except Exception as exc:  # noqa: BLE001 - the remote's failure is this call's error, not the session's
            return types.CallToolResult(
                content=[types.TextContent(text=f"the EasyMemory server could not be reached: {exc}")],
                is_error=True,
            )
        assert isinstance(result, types.CallToolResult)
        return result

    # Resources and prompts are forwarded too; the remote's refusals (MCPError) reach the client as they are.
    async def list_resources(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return await remote.list_resources(cursor=params.cursor if params else None)

    async def list_resource_templates(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return await remote.list_resource_templates(cursor=params.cursor if params else None)

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        return await remote.read_resource(str(params.uri))

    async def list_prompts(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return await remote.list_prompts(cursor=params.cursor if params else None)

    async def get_prompt(
        ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        return await remote.get_prompt(params.name, dict(params.arguments or {}))

    return Server(
        SERVER_NAME,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_resource_templates,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
    )


def check_remote(url: str, api_key: str) -> None:
    """Fail at start-up, with a message a person can act on, when the server cannot be used."""
    import httpx

    ping = {"jsonrpc": "2.0", "id": 0, "method": "ping"}
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json, text/event-stream"}
    try:
        response = httpx.post(url, json=ping, headers=headers, timeout=15)
    except httpx.HTTPError as exc:
        raise RemoteUnusable(f"cannot reach {url}: {exc}") from exc
    if response.status_code == 401:
        raise RemoteUnusable(f"{url} refused the API key: {response.text[:200]}")
    if response.status_code >= 400 and response.status_code not in {400, 405, 406}:
        raise RemoteUnusable(f"{url} answered HTTP {response.status_code}: {response.text[:200]}")


class RemoteUnusable(Exception):
    pass


async def serve_proxy(*, url: str, api_key: str) -> None:
    async with remote_client(url, api_key) as remote:
        server = proxy_server(remote)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

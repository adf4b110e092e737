"""The official MCP SDK's OAuth client against the real server (uvicorn), with a real browser
(Debian Chromium through Playwright) logging in and approving on the consent page.

Discovery (401 → protected resource metadata → authorization server metadata), dynamic
registration, PKCE authorization code, tool calls, refresh with rotation, revocation from
the dashboard → 401.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from accounts.models import ConsentGrant
from accounts.roles import Role
from mcp_server.stdio import _owning
from tests.conftest import free_port
from tests.e2e.browser import chromium
from tests.factories import MembershipFactory, TenantFactory
from tests.mcp.conftest import payload, run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.slow]

PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory


class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


@dataclass
class Callback:
    """The client's loopback redirect target: a real HTTP server that records the query."""

    url: str
    received: threading.Event = field(default_factory=threading.Event)
    query: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture
def callback() -> Iterator[Callback]:
    port = free_port()
    box = Callback(url=f"http://127.0.0.1:{port}/callback")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            if parts.path == "/callback":  # not the browser's /favicon.ico
                box.query = parse_qs(parts.query)
                box.received.set()
            body = b"<html><body><p id='done'>Connected. You can close this window.</p></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()


def browser_approve(authorization_url: str, base_url: str, username: str, tenant_id: str, cb: Callback) -> str:
    """Log in and approve in Chromium; returns the client name the consent page showed."""
    with chromium() as browser:
        page = browser.new_page()
        page.goto(authorization_url)
        page.wait_for_url(f"{base_url}/login/**")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("#consent-form")
        shown = page.inner_text("#client-name")
        page.select_option("#consent-tenant", value=tenant_id)
        page.click("#consent-allow")
        page.wait_for_url(f"{cb.url}**")
        page.wait_for_selector("#done")
        return shown


def browser_revoke(base_url: str, username: str) -> None:
    """Log in to the dashboard and revoke the one connected app."""
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{base_url}/login/?next=/account/connected-apps/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base_url}/account/connected-apps/")
        page.click("#own-grants button[type=submit]")
        page.wait_for_selector(".flash")


def test_an_mcp_client_connects_with_oauth_refreshes_and_is_cut_off_by_revocation(
    live: Any, tenant: Any, callback: Callback
) -> None:
    member = MembershipFactory(tenant=tenant, role=Role.WRITER.value).user
    globex = TenantFactory(name="Globex", slug="globex-e2e")
    MembershipFactory(user=member, tenant=globex, role=Role.READER.value)
    storage = MemoryStorage()
    seen: dict[str, Any] = {"redirects": 0}

    async def redirect_handler(url: str) -> None:
        seen["redirects"] += 1
        seen["authorize_url"] = url
        seen["client_name"] = await anyio.to_thread.run_sync(
            browser_approve, url, live.url, member.username, str(tenant.pk), callback
        )

    async def callback_handler() -> AuthorizationCodeResult:
        await anyio.to_thread.run_sync(callback.received.wait, 30)
        assert "code" in callback.query, callback.query
        return AuthorizationCodeResult(code=callback.query["code"][0], state=callback.query["state"][0])

    provider = OAuthClientProvider(
        server_url=f"{live.url}/mcp",
        client_metadata=OAuthClientMetadata(
            client_name="E2E MCP client",
            redirect_uris=[callback.url],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )

    def client() -> Client:
        http = create_mcp_http_client(auth=provider)
        return Client(_owning(http, streamable_http_client(f"{live.url}/mcp", http_client=http)), mode="legacy")

    async def connect_and_use() -> dict[str, Any]:
        async with client() as mcp:
            tools = await mcp.list_tools()
            added = payload(await mcp.call_tool("memory_add", {"content": "Dana leads the Atlas project"}))
            first_token = storage.tokens.access_token if storage.tokens else ""
            # The access token "expires" on the client's clock: the SDK refreshes it itself.
            provider.context.token_expiry_time = time.time() - 1
            listed = payload(await mcp.call_tool("memory_list", {}))
            return {"tools": tools, "added": added, "listed": listed, "first_token": first_token}

    result = run(connect_and_use)
    assert seen["redirects"] == 1 and seen["client_name"] == "E2E MCP client"
    query = parse_qs(urlsplit(seen["authorize_url"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["resource"] == [f"{live.url}/mcp"]
    assert storage.client is not None and storage.client.token_endpoint_auth_method == "none"
    assert "memory_add" in {tool.name for tool in result["tools"].tools}
    assert result["added"]["created"] is True
    assert [m["content"] for m in result["listed"]["results"]] == ["Dana leads the Atlas project"]

    grant = ConsentGrant.objects.get(user=member, revoked_at__isnull=True)
    assert grant.tenant == tenant  # the tenant chosen in the browser, not the member's other one
    refreshed = storage.tokens
    assert refreshed is not None and refreshed.access_token != result["first_token"]
    mcp_headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}

    def mcp_status(token: str) -> int:
        headers = mcp_headers | {"Authorization": f"Bearer {token}"}
        return httpx.post(f"{live.url}/mcp", json=ping, headers=headers, timeout=10).status_code

    assert mcp_status(result["first_token"]) == 401  # rotated away
    assert mcp_status(refreshed.access_token) != 401
    # The same token works on REST and on the websocket door's resolver, as the same member.
    rest = httpx.get(
        f"{live.url}/v1/memories", headers={"Authorization": f"Bearer {refreshed.access_token}"}, timeout=10
    )
    assert rest.status_code == 200 and len(rest.json()["results"]) == 1

    # And on the event websocket, as the member with their role in the chosen tenant.
    ws_url = live.url.replace("http://", "ws://") + "/ws/events"
    bearer = {"Authorization": f"Bearer {refreshed.access_token}"}
    with ws_connect(ws_url, additional_headers=bearer, proxy=None, open_timeout=30) as socket:
        hello = json.loads(socket.recv(timeout=30))
    assert hello == {"type": "hello", "tenant": str(tenant.pk), "role": "writer"}
    # Under another host name the same server is another resource: refused.
    other_name = ws_url.replace("127.0.0.1", "localhost")
    with pytest.raises(InvalidStatus):
        ws_connect(other_name, additional_headers=bearer, proxy=None, open_timeout=30)

    browser_revoke(live.url, member.username)
    with pytest.raises(InvalidStatus):
        ws_connect(ws_url, additional_headers=bearer, proxy=None, open_timeout=30)
    assert mcp_status(refreshed.access_token) == 401
    assert (
        httpx.get(
            f"{live.url}/v1/memories", headers={"Authorization": f"Bearer {refreshed.access_token}"}, timeout=10
        ).status_code
        == 401
    )
    dead = httpx.post(
        f"{live.url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refreshed.refresh_token,
            "client_id": grant.application.client_id,
        },
        timeout=10,
    )
    assert dead.status_code == 400


def test_mcp_answers_401_with_the_resource_metadata_challenge(live: Any) -> None:
    response = httpx.post(f"{live.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=10)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{live.url}/.well-known/oauth-protected-resource/mcp"' in challenge
    metadata = httpx.get(f"{live.url}/.well-known/oauth-protected-resource/mcp", timeout=10).json()
    assert metadata["resource"] == f"{live.url}/mcp"
    bad = httpx.post(
        f"{live.url}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={"Authorization": "Bearer not-a-token"},
        timeout=10,
    )
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
    assert "resource_metadata=" in bad.headers["WWW-Authenticate"]

"""The live event websocket, /ws/events.

Authenticated in connect() by, in this order: an `Authorization: Bearer`
header (API key or OAuth token), a `?token=` query parameter (browsers cannot
set headers on a websocket; see docs/events.md for the risk), or the dashboard
session cookie (only from an allowed Origin, against cross-site websocket
hijacking). The socket joins its tenant's group and receives typed events:

    {"type": "memory.created", "tenant": "<uuid>", "at": "<iso time>", "data": {"ids": [...]}}

The credential is re-checked before an event is sent (the result is trusted
for EASYMEMORY_WS_RECHECK_SECONDS), so a revoked key or a removed membership
closes the socket instead of leaking further events.
"""

from __future__ import annotations

import time
from importlib import import_module
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user
from django.http import HttpRequest
from django.http.request import validate_host

from accounts.authentication import principal_for_bearer, principal_for_session
from accounts.principal import Principal
from accounts.selectors import InvalidCredential
from core.events import tenant_group
from core.request_context import RequestInfo

READ_SCOPE = "memory:read"
CLOSE_FORBIDDEN = 4403


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def _bearer_principal(token: str, audience: str | None) -> Principal | None:
    try:
        # Fresh: a socket is authenticated once and then re-checked, never per event, so the re-check
        # reads the key itself rather than a web process's cached copy of it.
        return principal_for_bearer(token, audience=audience, fresh=True)
    except InvalidCredential:
        return None


def _session_principal(session_key: str | None) -> Principal | None:
    """The principal of a dashboard session, re-read from the session store (so a logout counts)."""
    if not session_key:
        return None
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
    request = SimpleNamespace(session=store)
    # get_user needs only .session; it verifies the session hash
    request.user = get_user(cast(HttpRequest, request))
    return principal_for_session(request)


def origin_allowed(origin: str) -> bool:
    """A browser's Origin must be this site (ALLOWED_HOSTS) or a trusted origin."""
    if not origin:
        return True  # not a browser: no ambient cookie to abuse
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    host = urlsplit(origin).hostname or ""
    return bool(host) and validate_host(host, settings.ALLOWED_HOSTS)


class EventsConsumer(AsyncJsonWebsocketConsumer):
    principal: Principal | None = None
    group: str | None = None

    async def connect(self) -> None:
        self.credential: tuple[str, str | None] | None = None
        self.checked_at = 0.0
        principal = await self._authenticate()
        if principal is None or not principal.has_scope(READ_SCOPE):
            if principal is None and self.credential is not None and self.credential[0] == "bearer":
                # A bad token costs the address like any failed authentication (and is audited).
                from audit.middleware import unauthenticated_request_refused

                client = self.scope.get("client") or ("", 0)
                info = RequestInfo(client_addr=str(client[0] or ""), user_agent=_header(self.scope, b"user-agent"))
                await database_sync_to_async(unauthenticated_request_refused)(info, "WEBSOCKET /ws/events")
            await self.close()  # before accept: the handshake is refused (HTTP 403)
            return
        self.principal = principal
        self.group = tenant_group(principal.tenant.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.checked_at = time.monotonic()
        await self.accept()
        await self.send_json({"type": "hello", "tenant": str(principal.tenant.pk), "role": principal.role.value})

    async def _authenticate(self) -> Principal | None:
        auth = _header(self.scope, b"authorization")
        if auth[:7].lower() == "bearer ":
            self.credential = ("bearer", auth[7:].strip())
        elif settings.EASYMEMORY_WS_QUERY_TOKEN:
            query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
            token = (query.get("token") or [""])[-1]
            if token:
                self.credential = ("bearer", token)
        if self.credential is None:
            if not origin_allowed(_header(self.scope, b"origin")):
                return None
            session = self.scope.get("session")
            self.credential = ("session", getattr(session, "session_key", None))
        return await self._resolve()

    async def _resolve(self) -> Principal | None:
        assert self.credential is not None
        kind, secret = self.credential
        if kind == "bearer":
            return await database_sync_to_async(_bearer_principal)(secret or "", self._audience())
        return await database_sync_to_async(_session_principal)(secret)

    def _audience(self) -> str | None:
        """This server's MCP resource URL as the socket reached it: an OAuth token bound to
        another resource is refused here too."""
        from accounts.oauth_grants import asgi_origin, mcp_resource_url

        if not _header(self.scope, b"host"):
            return None
        return mcp_resource_url(asgi_origin(self.scope))

    async def _still_allowed(self) -> bool:
        if time.monotonic() - self.checked_at < settings.EASYMEMORY_WS_RECHECK_SECONDS:
            return True
        current = await self._resolve()
        assert self.principal is not None
        allowed = (
            current is not None and current.tenant.pk == self.principal.tenant.pk and current.has_scope(READ_SCOPE)
        )
        if allowed:
            self.checked_at = time.monotonic()
        return allowed

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None  # not JSON: ignored, like any other message from the client

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The socket is one-way; answer pings so clients can keep proxies from timing it out.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def memory_event(self, message: dict[str, Any]) -> None:
        """Handler for every event published to the tenant's group (message type "memory.event")."""
        if self.principal is None or message.get("tenant") != str(self.principal.tenant.pk):
            return
        if not await self._still_allowed():
            await self.close(code=CLOSE_FORBIDDEN)
            self.principal = None
            return
        event = {
            "type": message["event"],
            "tenant": message["tenant"],
            "at": message.get("at"),
            "data": message["data"],
        }
        await self.send_json(event)

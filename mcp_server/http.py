"""MCP over Streamable HTTP at /mcp, in the same ASGI process as REST and websockets.

Every HTTP request is authenticated here (Authorization: Bearer, API key or
OAuth token through `principal_for_bearer`) before the SDK sees it; the
principal travels in the ASGI scope to the tool call. A request without a
valid credential gets 401 with `WWW-Authenticate: Bearer resource_metadata=…`
(RFC 9728), from which an MCP client discovers the authorization server; an
OAuth token must be bound to this endpoint's URL (RFC 8707). The session manager runs
stateless with JSON responses: each POST stands alone and is authorized on its
own, so a revoked key stops working at once and any web process behind a load
balancer can answer any request (nothing lives in one process's memory).

The SDK's session manager must be running (its `run()` context) before it
serves a request. Under uvicorn (`easymemory serve`) the ASGI lifespan starts
it; servers without lifespan (daphne behind `manage.py runserver`) get it
started on the first request instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, MutableMapping
from functools import partial
from typing import Any

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from mcp.server import ServerRequestContext
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from accounts.authentication import principal_for_bearer
from accounts.oauth_grants import asgi_origin, mcp_resource_url
from accounts.principal import Principal
from accounts.selectors import InvalidCredential
from core.lifespan import register_lifespan
from core.request_context import RequestInfo
from mcp_server.registry import ToolError
from mcp_server.server import build_server, run_db

logger = logging.getLogger(__name__)

MOUNT_PATH = "/mcp"
PRINCIPAL_KEY = "easymemory.principal"
REQUEST_INFO_KEY = "easymemory.request_info"
WWW_AUTHENTICATE = 'Bearer realm="easymemory"'
PROTECTED_RESOURCE_METADATA_PATH = "/.well-known/oauth-protected-resource" + MOUNT_PATH


async def _principal_from_scope(ctx: ServerRequestContext[Any, Any]) -> Principal:
    scope = getattr(ctx.request, "scope", None) or {}
    principal = scope.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):  # unreachable through McpHttpApp; fail closed anyway
        raise ToolError("not authenticated")
    return principal


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


async def _send_json(send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": base + headers})
    await send({"type": "http.response.body", "body": payload})


async def _refused_too_often(
    scope: dict[str, Any], request_id: str, addr: str, send: Any, id_header: tuple[bytes, bytes]
) -> bool:
    """Audit a failed authentication and charge the address; True (429 sent) once its bucket is spent."""
    from audit.middleware import unauthenticated_request_refused

    info = RequestInfo(request_id=request_id, client_addr=addr, user_agent=_header(scope, b"user-agent"))
    decision = await run_db(unauthenticated_request_refused, info, f"{scope.get('method', '')} {MOUNT_PATH}")
    if decision.allowed:
        return False
    headers = [(k.lower().encode(), v.encode()) for k, v in decision.headers().items()]
    body = {"error": "too many requests without a valid credential from this address; retry later"}
    await _send_json(send, 429, body, [*headers, id_header])
    return True


class McpHttpApp:
    """ASGI app for /mcp: host check, bearer authentication, then the SDK's session manager."""

    def __init__(self) -> None:
        self.server = build_server(_principal_from_scope)
        self.manager = StreamableHTTPSessionManager(
            app=self.server,
            stateless=True,
            json_response=True,
            max_request_body_size=settings.EASYMEMORY_MAX_REQUEST_BYTES,
        )
        self._running = asyncio.Event()
        self._start_lock = asyncio.Lock()
        self._fallback: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with self.manager.run():
            self._running.set()
            yield

    async def _run_without_lifespan(self) -> None:
        async with self.lifespan():
            await asyncio.Event().wait()  # lives as long as the server's event loop

    async def _ensure_running(self) -> None:
        if self._running.is_set():
            return
        async with self._start_lock:
            if not self._running.is_set():
                logger.info("no ASGI lifespan (daphne/runserver?): starting the MCP session manager on first use")
                self._fallback = asyncio.get_running_loop().create_task(self._run_without_lifespan())
                await self._running.wait()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request_id = _header(scope, b"x-request-id")
        if not (request_id.isascii() and 0 < len(request_id) <= 64):
            request_id = uuid.uuid4().hex
        id_header = (b"x-request-id", request_id.encode())

        host, _port = split_domain_port(_header(scope, b"host"))
        if not host or not validate_host(host, settings.ALLOWED_HOSTS):
            await _send_json(send, 400, {"error": "host not allowed (EASYMEMORY_ALLOWED_HOSTS)"}, [id_header])
            return

        origin = asgi_origin(scope)
        challenge = f'{WWW_AUTHENTICATE}, resource_metadata="{origin}{PROTECTED_RESOURCE_METADATA_PATH}"'
        auth = _header(scope, b"authorization")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        client = scope.get("client") or ("", 0)
        if not token:
            if await _refused_too_often(scope, request_id, str(client[0] or ""), send, id_header):
                return
            headers = [(b"www-authenticate", challenge.encode()), id_header]
            body = {"error": "authentication required: send Authorization: Bearer <API key or OAuth token>"}
            await _send_json(send, 401, body, headers)
            return
        try:
            principal = await run_db(partial(principal_for_bearer, audience=mcp_resource_url(origin)), token)
        except InvalidCredential as exc:
            if await _refused_too_often(scope, request_id, str(client[0] or ""), send, id_header):
                return
            # The description is one of our own fixed messages (never client input): safe in a quoted string.
            challenge += f', error="invalid_token", error_description="{exc}"'
            await _send_json(send, 401, {"error": str(exc)}, [(b"www-authenticate", challenge.encode()), id_header])
            return

        scope = dict(scope)
        scope[PRINCIPAL_KEY] = principal
        scope[REQUEST_INFO_KEY] = RequestInfo(
            request_id=request_id, client_addr=str(client[0] or ""), user_agent=_header(scope, b"user-agent")
        )
        # The SDK binds stateful sessions to this identity; harmless in stateless mode, right if that changes.
        scope["user"] = AuthenticatedUser(
            AccessToken(token=principal.actor, client_id=principal.actor, scopes=sorted(principal.scopes))
        )

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), id_header]}
            await send(message)

        await self._ensure_running()
        await self.manager.handle_request(scope, receive, send_with_id)


_app: McpHttpApp | None = None


def mcp_http_app() -> McpHttpApp:
    """The process's one MCP app; its session manager is started by the ASGI lifespan."""
    global _app
    if _app is None:
        _app = McpHttpApp()
        register_lifespan(_app.lifespan)
    return _app

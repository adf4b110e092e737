"""Where each path goes. Apps add websocket routes and extra ASGI mounts here."""

from __future__ import annotations

from typing import Any

from channels.routing import URLRouter
from channels.sessions import SessionMiddlewareStack
from django.urls import path


def http_router(django_asgi: Any) -> Any:
    from mcp_server.http import MOUNT_PATH, mcp_http_app

    # Exact mounts in front of Django: MCP speaks ASGI itself (the SDK's Streamable HTTP transport).
    # Observed like a Django request (metrics and the request log line), under the route "mcp".
    mcp_app = observed_asgi("mcp", mcp_http_app())
    mounts = {MOUNT_PATH: mcp_app, MOUNT_PATH + "/": mcp_app}

    async def router(scope: dict[str, Any], receive: Any, send: Any) -> None:
        mounted = mounts.get(scope.get("path", ""))
        await (mounted or django_asgi)(scope, receive, send)

    return router


def websocket_router() -> Any:
    from django.conf import settings

    from core.consumers import EventsConsumer
    from core.events import postgres_event_relay
    from core.lifespan import register_lifespan

    if settings.EASYMEMORY_EVENTS_VIA_POSTGRES:
        register_lifespan(postgres_event_relay)

    # Sessions (not Channels' AuthMiddleware): the consumer resolves the user itself in connect(),
    # so a bearer-authenticated socket never touches the session store.
    return SessionMiddlewareStack(URLRouter([path("ws/events", EventsConsumer.as_asgi())]))


def observed_asgi(route: str, app: Any) -> Any:
    """`app` with each HTTP request timed and logged as `route` (the status from its response start)."""
    import time

    from core.metrics import request_observe
    from core.middleware import principal_labels, request_log

    async def observed(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 500, "request_id": ""}

        async def watching_send(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                seen["status"] = int(message.get("status", 500))
                for name, value in message.get("headers") or []:
                    if name.lower() == b"x-request-id":
                        seen["request_id"] = value.decode("latin-1")
            await send(message)

        try:
            await app(scope, receive, watching_send)
        finally:
            seconds = time.perf_counter() - started
            tenant, principal = principal_labels(scope.get("easymemory.principal"))  # loaded objects: no query
            method = str(scope.get("method", ""))
            request_observe(route=route, method=method, status=seen["status"], seconds=seconds)
            client = scope.get("client") or ("", 0)
            request_log(
                request_id=seen["request_id"],
                tenant=tenant,
                principal=principal,
                route=route,
                method=method,
                status=seen["status"],
                seconds=seconds,
                client=str(client[0] or ""),
            )

    return observed

"""Where each path goes. Apps add websocket routes and extra ASGI mounts here."""

from __future__ import annotations

from typing import Any

from channels.routing import URLRouter
from channels.sessions import SessionMiddlewareStack
from django.urls import path


def http_router(django_asgi: Any) -> Any:
    from memory.mcp.http import MOUNT_PATH, mcp_http_app

    # Exact mounts in front of Django: MCP speaks ASGI itself (the SDK's Streamable HTTP transport).
    mounts = {MOUNT_PATH: mcp_http_app(), MOUNT_PATH + "/": mcp_http_app()}

    async def router(scope: dict[str, Any], receive: Any, send: Any) -> None:
        mounted = mounts.get(scope.get("path", ""))
        await (mounted or django_asgi)(scope, receive, send)

    return router


def websocket_router() -> Any:
    from django.conf import settings

    from config.consumers import EventsConsumer
    from config.events import postgres_event_relay
    from config.lifespan import register_lifespan

    if settings.EASYMEMORY_EVENTS_VIA_POSTGRES:
        register_lifespan(postgres_event_relay)

    # Sessions (not Channels' AuthMiddleware): the consumer resolves the user itself in connect(),
    # so a bearer-authenticated socket never touches the session store.
    return SessionMiddlewareStack(URLRouter([path("ws/events", EventsConsumer.as_asgi())]))

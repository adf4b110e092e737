"""Where each path goes. Apps add websocket routes and extra ASGI mounts here."""

from __future__ import annotations

from typing import Any

from channels.routing import URLRouter


def http_router(django_asgi: Any) -> Any:
    return django_asgi


def websocket_router() -> Any:
    return URLRouter([])

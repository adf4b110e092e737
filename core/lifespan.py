"""A tiny ASGI lifespan implementation around the Channels router.

Components register async context managers with `register_lifespan`; they are
entered on server start-up and exited on shutdown, in reverse order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

LifespanFactory = Callable[[], AbstractAsyncContextManager[Any]]
_factories: list[LifespanFactory] = []


def register_lifespan(factory: LifespanFactory) -> LifespanFactory:
    if factory not in _factories:
        _factories.append(factory)
    return factory


def with_lifespan(app: Any) -> Any:
    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        async with contextlib.AsyncExitStack() as stack:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    try:
                        for factory in _factories:
                            await stack.enter_async_context(factory())
                    except Exception as exc:  # noqa: BLE001 - reported to the server
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await stack.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    return application

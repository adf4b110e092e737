"""ASGI entry: HTTP (Django), websocket (Channels) and lifespan in one app.

Channels' ProtocolTypeRouter has no lifespan route, so the outer callable
answers lifespan itself; apps that need start-up work (the MCP session
manager) register a context in `core.lifespan`.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from config.startup import data_dir_prepare  # noqa: E402

data_dir_prepare()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi = get_asgi_application()

from config.routing import http_router, websocket_router  # noqa: E402
from core.lifespan import with_lifespan  # noqa: E402

application = with_lifespan(ProtocolTypeRouter({"http": http_router(django_asgi), "websocket": websocket_router()}))

"""PostgreSQL backend that starts the embedded server on first connection.

Used when DATABASE_URL is unset. Starting lazily keeps commands that never
touch the database (``--help``, ``check``) fast, and lets whichever process
connects first bring the server up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.backends.postgresql import base

from config.embedded_pg import ensure_server


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        server = ensure_server(Path(settings.EASYMEMORY_DATA_DIR))
        self.settings_dict["HOST"] = str(server.socket_dir)
        self.settings_dict["PORT"] = str(server.port)
        return super().get_connection_params()

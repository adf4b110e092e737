"""Liveness and readiness probes (no authentication, no data).

The probes answer anyone, so a failure is named ("unavailable") but its exception text, which
can hold host names, ports or paths, goes only to the server log.
"""

from __future__ import annotations

import logging
import os

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database_ok() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            if cursor.fetchone() is None:
                return "pgvector extension missing"
    except Exception:  # noqa: BLE001 - report any failure as not ready
        logger.warning("readiness: the database is unavailable", exc_info=True)
        return "unavailable"
    return None


def _queue_ok() -> str | None:
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception:  # noqa: BLE001
        logger.warning("readiness: the task queue is unavailable", exc_info=True)
        return "unavailable"
    return None


def readyz(request: HttpRequest) -> JsonResponse:
    drain_file = settings.EASYMEMORY_DRAIN_FILE
    if drain_file and os.path.exists(drain_file):
        # Shutting down: still serving what is in flight, but no new traffic should come here.
        return JsonResponse({"status": "draining", "mode": settings.EASYMEMORY_MODE}, status=503)
    checks = {"database": _database_ok(), "queue": _queue_ok()}
    ready = all(problem is None for problem in checks.values())
    body = {
        "status": "ready" if ready else "not ready",
        "mode": settings.EASYMEMORY_MODE,
        "checks": {name: problem or "ok" for name, problem in checks.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)

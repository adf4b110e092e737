"""Live events for dashboards and clients: typed, per tenant, sent after commit.

`publish_event` is the one way any app announces a change. Delivery goes
through the Channels layer to the group of the tenant (`tenant_group`):

- with Redis (EASYMEMORY_REDIS_URL, team mode) the layer reaches every server
  process, so the event is handed to it once the transaction commits;
- without Redis (single-user mode) each process has its own in-memory layer and
  the background worker is another process, so the event goes through
  PostgreSQL instead: `pg_notify` inside the writer's transaction (PostgreSQL
  delivers it only if and when that transaction commits), and every web process
  runs `postgres_event_relay`, which LISTENs and forwards to its local layer.

Payloads carry ids and small facts, never memory content: subscribers fetch
what they are allowed to read through the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

EVENT_TYPES = {
    "memory.created",
    "memory.updated",
    "memory.deleted",
    "memory.enriched",
    "ingest.progress",
    "ingest.finished",
}
NOTIFY_CHANNEL = "easymemory_events"
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; id lists are split well below that.
IDS_PER_EVENT = 100


def tenant_group(tenant_id: object) -> str:
    return f"tenant-{tenant_id}"


def _message(tenant_id: str, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "memory.event",
        "event": event_type,
        "tenant": tenant_id,
        "at": timezone.now().isoformat(),
        "data": payload,
    }


def _send(message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(tenant_group(message["tenant"]), message)
    except Exception:  # noqa: BLE001 - a lost live event must never fail the write
        logger.warning("could not publish %s for tenant %s", message["event"], message["tenant"], exc_info=True)


def _notify(message: dict[str, Any]) -> None:
    try:
        with transaction.atomic(), connection.cursor() as cursor:  # a savepoint: a failure leaves the write intact
            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, json.dumps(message)])
    except Exception:  # noqa: BLE001 - a lost live event must never fail the write
        logger.warning("could not publish %s for tenant %s", message["event"], message["tenant"], exc_info=True)


def _split(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    ids = payload.get("ids")
    if not isinstance(ids, list) or len(ids) <= IDS_PER_EVENT:
        yield payload
        return
    for start in range(0, len(ids), IDS_PER_EVENT):
        yield {**payload, "ids": ids[start : start + IDS_PER_EVENT]}


def publish_event(tenant_id: object, event_type: str, payload: dict[str, Any]) -> None:
    """Send `event_type` to the tenant's subscribers once the current transaction commits.

    A payload with a long `ids` list is sent as several events of at most IDS_PER_EVENT ids.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    tenant = str(tenant_id)
    for part in _split(payload):
        message = _message(tenant, event_type, part)
        if settings.EASYMEMORY_EVENTS_VIA_POSTGRES:
            _notify(message)
        else:
            transaction.on_commit(partial(_send, message))


# --- the relay (single-user mode) ------------------------------------------------------

_CONNINFO_KEYS = {"dbname", "user", "password", "host", "port", "sslmode", "sslrootcert", "sslcert", "sslkey"}


def _listen_conninfo() -> dict[str, Any]:
    params = connection.get_connection_params()  # starts the embedded server if needed
    return {key: value for key, value in params.items() if key in _CONNINFO_KEYS and value not in ("", None)}


async def _deliver(payload: str) -> None:
    try:
        message = json.loads(payload)
        tenant = str(message["tenant"])
    except (ValueError, KeyError, TypeError):
        logger.warning("ignored a malformed event notification")
        return
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(tenant_group(tenant), message)


async def _relay_forever(listening: asyncio.Event) -> None:
    import psycopg

    delay = 0.5
    while True:
        try:
            params = await asyncio.to_thread(_listen_conninfo)
            conn = await psycopg.AsyncConnection.connect(**params, autocommit=True)
            async with conn:
                await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")  # unscoped: reads no row
                listening.set()
                delay = 0.5
                async for note in conn.notifies():
                    await _deliver(note.payload)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - database restarts: reconnect with backoff
            logger.warning("event relay lost its database connection; retrying in %.1fs", delay, exc_info=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


@contextlib.asynccontextmanager
async def postgres_event_relay() -> AsyncIterator[None]:
    """Lifespan context: LISTEN for events from any process and forward them to this process's layer."""
    listening = asyncio.Event()
    task = asyncio.get_running_loop().create_task(_relay_forever(listening))
    # Wait (briefly) for LISTEN so events right after start-up are not missed; never block start-up for long.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listening.wait(), timeout=10)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

"""Live events for dashboards and clients: typed, per tenant, sent after commit.

`publish_event` is the one way any app announces a change. Delivery goes
through the Channels layer to the group of the tenant (`tenant_group`); with
the Redis layer (team mode) that reaches every server process.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

EVENT_TYPES = {
    "memory.created",
    "memory.updated",
    "memory.deleted",
    "memory.enriched",
    "ingest.progress",
    "ingest.finished",
}


def tenant_group(tenant_id: object) -> str:
    return f"tenant-{tenant_id}"


def _send(tenant_id: str, event_type: str, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "memory.event", "event": event_type, "tenant": tenant_id, "data": payload}
    try:
        async_to_sync(layer.group_send)(tenant_group(tenant_id), message)
    except Exception:  # noqa: BLE001 - a lost live event must never fail the write
        logger.warning("could not publish %s for tenant %s", event_type, tenant_id, exc_info=True)


def publish_event(tenant_id: object, event_type: str, payload: dict[str, Any]) -> None:
    """Send `event_type` to the tenant's subscribers once the current transaction commits."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    tenant = str(tenant_id)
    transaction.on_commit(lambda: _send(tenant, event_type, payload))

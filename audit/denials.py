"""Denied requests and failed logins, aggregated per client and time window.

Every denial used to append its own event to a hash chain, under that chain's
lock: a client hammering the server with bad credentials serialised all of
them on one lock and grew the trail without bound. Now the first denial of a
(chain, actor, client address, action, outcome) in a window of
EASYMEMORY_AUDIT_DENIAL_WINDOW_SECONDS is chained at once; the rest of that
window only increment a counter row (a row lock of its own, not the chain's).
When the window has closed, its count becomes one chained event
(`detail.repeated`: how many more denials it stands for), written by the next
denial from anyone or by `audit_denials_flush()` (the audit API calls it before
answering, so a reader always sees the complete picture).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Tenant
from accounts.principal import Principal
from audit.services import audit_record
from core.request_context import RequestInfo, current_request_info

FLUSH_BATCH = 100

_UPSERT = """
INSERT INTO audit_denialwindow AS w
  (key, window_start, count, tenant_id, actor_type, actor_id, client_addr, action, outcome, target_type, target_id)
VALUES (%(key)s, %(window_start)s, 1, %(tenant_id)s, %(actor_type)s, %(actor_id)s, %(client_addr)s, %(action)s,
        %(outcome)s, %(target_type)s, %(target_id)s)
ON CONFLICT (key) DO UPDATE SET count = w.count + 1
RETURNING count
"""

# Closed windows, oldest first; SKIP LOCKED lets concurrent flushers share the work.
_TAKE_CLOSED = """
DELETE FROM audit_denialwindow WHERE key IN (
  SELECT key FROM audit_denialwindow WHERE window_start < %(open_since)s
  ORDER BY window_start LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
RETURNING window_start, count, tenant_id, actor_type, actor_id, client_addr, action, outcome, target_type, target_id
"""


def _window_start(now: datetime) -> datetime:
    seconds: int = settings.EASYMEMORY_AUDIT_DENIAL_WINDOW_SECONDS
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=now.tzinfo)


def audit_denial_record(
    *,
    principal: Principal | None,
    action: str,
    outcome: str,
    target_type: str = "",
    target_id: str = "",
    detail: dict[str, object] | None = None,
    global_chain: bool = False,
    actor: tuple[str, str] | None = None,
) -> None:
    """Record one denial: chained at once if it is the first of its window, else counted."""
    if settings.EASYMEMORY_SECURITY_DISABLED_FOR_BENCH:
        return
    info = current_request_info()
    tenant = None if global_chain or principal is None else principal.tenant
    actor_type, actor_id = actor or ((principal.actor_type, principal.actor_id) if principal else ("anonymous", ""))
    start = _window_start(timezone.now())
    # The target is not part of the key: probing many paths is one pattern, counted once.
    identity = "\x1f".join(
        [str(tenant.pk if tenant else ""), actor_type, actor_id, info.client_addr, action, outcome, start.isoformat()]
    )
    row: dict[str, Any] = {
        "key": hashlib.sha256(identity.encode("utf-8")).hexdigest(),
        "window_start": start,
        "tenant_id": tenant.pk if tenant else None,
        "actor_type": actor_type[:32],
        "actor_id": str(actor_id)[:200],
        "client_addr": info.client_addr[:64],
        "action": action[:64],
        "outcome": outcome[:16],
        "target_type": target_type[:64],
        "target_id": target_id[:200],
    }
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, row)  # scoped: the row carries the tenant of the denial
        (count,) = cursor.fetchone()
    if count == 1:
        audit_record(
            principal=principal,
            action=action,
            outcome=outcome,
            target_type=target_type,
            target_id=target_id,
            detail={**(detail or {}), "window_seconds": settings.EASYMEMORY_AUDIT_DENIAL_WINDOW_SECONDS},
            global_chain=global_chain or tenant is None,
            actor=actor,
        )
    audit_denials_flush(limit=10)


def audit_denials_flush(*, limit: int = FLUSH_BATCH, everything: bool = False) -> int:
    """Chain one summary event per closed window that counted more than its first denial.

    `everything` also closes the windows still open (tests, shutdown). Returns the
    number of summary events written.
    """
    open_since = _window_start(timezone.now())
    if everything:
        open_since += timedelta(days=1)
    written = 0
    with transaction.atomic():
        with connection.cursor() as cursor:
            # unscoped: moves every tenant's closed windows into the audit trail, each with its tenant
            cursor.execute(_TAKE_CLOSED, {"open_since": open_since, "limit": limit})
            rows = cursor.fetchall()
        tenants = {t.pk: t for t in Tenant.objects.filter(pk__in={r[2] for r in rows if r[2] is not None})}
        for start, count, tenant_id, actor_type, actor_id, addr, action, outcome, target_type, target_id in rows:
            if count <= 1:
                continue  # its one denial is chained already
            tenant = tenants.get(tenant_id)
            audit_record(
                principal=None,
                tenant=tenant,
                global_chain=tenant is None,
                actor=(actor_type, actor_id),
                action=action,
                outcome=outcome,
                target_type=target_type,
                target_id=target_id,
                detail={
                    "repeated": count - 1,
                    "window_start": start.isoformat(),
                    "window_seconds": settings.EASYMEMORY_AUDIT_DENIAL_WINDOW_SECONDS,
                    **({"tenant_id": str(tenant_id)} if tenant_id and tenant is None else {}),
                },
                request_info=RequestInfo(client_addr=addr),
            )
            written += 1
    return written

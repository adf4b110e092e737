"""Recording audit events. Content and query text never enter the trail (unless
EASYMEMORY_AUDIT_QUERIES says otherwise for query text).

Appends are serialised per tenant with a transaction-scoped advisory lock, so
two processes can never both read the same chain head and fork the chain. The
lock lasts until the surrounding transaction ends: writes of one tenant that
end with an audit event commit one after another at that point.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.principal import Principal
from audit.chain import canonical_content, canonical_json
from audit.models import AuditEvent
from audit.sink import jsonl_append
from core.request_context import RequestInfo, current_request_info

# pg_advisory_xact_lock(int, int): this class id, then a hash of the tenant.
_LOCK_CLASS = 0x45415544  # "EAUD"


def query_detail(query: str | None) -> dict[str, str]:
    """What EASYMEMORY_AUDIT_QUERIES allows the trail to keep of a query's text."""
    mode: str = settings.EASYMEMORY_AUDIT_QUERIES
    if not query or mode == "off":
        return {}
    if mode == "hash":
        return {"query_sha256": hashlib.sha256(query.encode("utf-8")).hexdigest()}
    return {"query": query}


def audit_record(
    *,
    principal: Principal | None,
    action: str,
    target_type: str = "",
    target_id: str = "",
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
    query: str | None = None,
    tenant: Any = None,
    global_chain: bool = False,
    actor: tuple[str, str] | None = None,
    request_info: RequestInfo | None = None,
) -> AuditEvent | None:
    """Append one event to a chain: `tenant`'s when given, else the principal's; the
    tenant-less chain with `global_chain` (tenant management, logins, anonymous denials).

    `actor` overrides (type, id) for events without a principal (logins); `request_info`
    the current request's facts (a summary written later for an earlier client).
    Returns None when auditing is disabled for the bench.
    """
    if settings.EASYMEMORY_SECURITY_DISABLED_FOR_BENCH:
        return None
    info = request_info or current_request_info()
    if global_chain:
        tenant = None
    elif tenant is None and principal is not None:
        tenant = principal.tenant
    actor_type, actor_id = actor or ((principal.actor_type, principal.actor_id) if principal else ("anonymous", ""))
    event = AuditEvent(
        tenant=tenant,
        created_at=timezone.now(),
        actor_type=actor_type,
        actor_id=str(actor_id)[:200],
        action=action,
        target_type=target_type,
        target_id=str(target_id)[:200],
        outcome=outcome,
        request_id=info.request_id,
        client_addr=info.client_addr[:64],
        user_agent=info.user_agent[:300],
        detail={**(detail or {}), **query_detail(query)},
    )
    # An event recorded on its own (reads, searches, denials) commits without waiting for
    # the WAL flush unless EASYMEMORY_AUDIT_DURABLE_READS: a crash can then lose the newest
    # fraction of a second of such events, always a suffix, so the chain stays intact. An
    # event inside a write's transaction shares that transaction's durable commit.
    standalone = not connection.in_atomic_block
    # Round-trip the detail through JSON the way jsonb will, so the hash is of what is stored.
    event.detail = _jsonb_normal(event.detail)
    content = canonical_json(canonical_content(event))
    with connection.cursor() as cursor:
        # One statement (the audit_append function, migration 0003): lock the chain, read
        # its head, hash, insert. Standalone, it is also its own transaction.
        cursor.execute(
            "SELECT * FROM audit_append(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)",
            [
                _LOCK_CLASS,
                standalone and not settings.EASYMEMORY_AUDIT_DURABLE_READS,
                content,
                event.tenant_id,
                event.created_at,
                event.actor_type,
                event.actor_id,
                event.action,
                event.target_type,
                event.target_id,
                event.outcome,
                event.request_id,
                event.client_addr,
                event.user_agent,
                json.dumps(event.detail),
            ],
        )
        event.id, event.seq, event.prev_hash, event.hash = cursor.fetchone()
    event._state.adding = False
    if settings.EASYMEMORY_AUDIT_JSONL:
        line = {"id": event.id, "seq": event.seq, **json.loads(content)}
        line.update(prev_hash=event.prev_hash, hash=event.hash)
        transaction.on_commit(lambda: jsonl_append(line))
    return event


def _jsonb_normal(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))

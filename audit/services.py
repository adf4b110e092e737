"""Recording audit events. Content and query text never enter the trail."""

from __future__ import annotations

from typing import Any

from accounts.principal import Principal
from audit.models import AuditEvent
from config.request_context import current_request_info


def audit_record(
    *,
    principal: Principal | None,
    action: str,
    target_type: str = "",
    target_id: str = "",
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    info = current_request_info()
    return AuditEvent.objects.create(
        tenant=principal.tenant if principal else None,
        actor_type=principal.actor_type if principal else "anonymous",
        actor_id=principal.actor_id if principal else "",
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        outcome=outcome,
        request_id=info.request_id,
        client_addr=info.client_addr,
        user_agent=info.user_agent[:300],
        detail=detail or {},
    )

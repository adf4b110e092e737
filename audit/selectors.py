"""Reads on the audit trail: filtered lists for the API, chains for verify and export."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from accounts.models import Tenant
from accounts.scoping import scoped
from audit.chain import ChainReport, verify_events
from audit.models import AuditEvent


@dataclass(frozen=True)
class AuditFilters:
    action: str = ""
    actor_type: str = ""
    actor_id: str = ""
    outcome: str = ""
    target_type: str = ""
    target_id: str = ""
    since: datetime | None = None
    until: datetime | None = None


def audit_list_for(tenant: Tenant, filters: AuditFilters, *, before_seq: int | None = None) -> QuerySet[AuditEvent]:
    """The tenant's events, newest first (the (tenant, seq) unique index serves the order).

    Denial windows that have closed are summarised first, so the reader sees their counts.
    """
    from audit.denials import audit_denials_flush

    audit_denials_flush()
    qs = scoped(AuditEvent, tenant)
    for name in ("actor_type", "actor_id", "outcome", "target_type", "target_id"):
        value = getattr(filters, name)
        if value:
            qs = qs.filter(**{name: value})
    if filters.action:
        # "memory.*" selects a family of actions.
        if filters.action.endswith(".*"):
            qs = qs.filter(action__startswith=filters.action[:-1])
        else:
            qs = qs.filter(action=filters.action)
    if filters.since:
        qs = qs.filter(created_at__gte=filters.since)
    if filters.until:
        qs = qs.filter(created_at__lt=filters.until)
    if before_seq is not None:
        qs = qs.filter(seq__lt=before_seq)
    return qs.order_by("-seq")


def chain_ids() -> list[Any]:
    """Every chain in the table: tenant ids (deleted tenants' too), None for the tenant-less one."""
    events = AuditEvent.objects.order_by()  # unscoped: verification walks every chain
    return list(events.values_list("tenant_id", flat=True).distinct())


def chain_events(tenant_id: Any) -> Iterator[AuditEvent]:
    events = AuditEvent.objects.filter(tenant_id=tenant_id)  # unscoped: one whole chain, deleted tenants' too
    return events.order_by("seq", "id").iterator(chunk_size=2000)


def audit_verify(tenant_id: Any) -> ChainReport:
    return verify_events(chain_events(tenant_id), str(tenant_id) if tenant_id is not None else None)

"""Reads only the dashboard needs (charts, storage, members); all tenant-scoped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import Count, F, Func, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import ApiKey, Membership, Tenant
from accounts.scoping import scoped
from memory.models import EnrichmentState, Memory, MemoryEmbedding


@dataclass(frozen=True)
class DayCount:
    day: date
    count: int


def memories_per_day_for(tenant: Tenant, *, days: int = 30) -> list[DayCount]:
    """Memories added per UTC day over the last `days` days, zero-filled (uses the tenant/created index)."""
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    rows = (
        scoped(Memory, tenant)
        .filter(created_at__date__gte=first)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = {row["day"]: row["n"] for row in rows}
    span = [first + timedelta(days=offset) for offset in range(days)]
    return [DayCount(day=day, count=counts.get(day, 0)) for day in span]


def tenant_storage_for(tenant: Tenant) -> dict[str, int]:
    """What this tenant's memories take: content bytes (UTF-8) and embedding rows."""
    content = scoped(Memory, tenant).aggregate(size=Sum(Func(F("content"), function="octet_length")))["size"] or 0
    return {
        "content_bytes": int(content),
        "embeddings": scoped(MemoryEmbedding, tenant).count(),
    }


def failed_memories_for(tenant: Tenant, *, limit: int = 10) -> QuerySet[Memory]:
    return (
        scoped(Memory, tenant)
        .filter(enrichment_state=EnrichmentState.FAILED)
        .order_by("-updated_at")
        .only("id", "content", "enrichment_error", "updated_at")[:limit]
    )


def member_list_for(tenant: Tenant) -> QuerySet[Membership]:
    return scoped(Membership, tenant).select_related("user").order_by("user__username")


def tenant_list_all() -> QuerySet[Tenant]:
    """Every tenant, for the superuser page only (deliberately unscoped)."""
    return Tenant.objects.annotate(member_count=Count("memberships")).order_by("name")


def actor_labels_for(tenant: Tenant, actors: set[str]) -> dict[str, str]:
    """Readable names for `actor_type:actor_id` strings in history: usernames and API key names."""
    from django.contrib.auth import get_user_model

    user_ids = {actor.split(":", 1)[1] for actor in actors if actor.startswith("user:")}
    key_ids = {actor.split(":", 1)[1] for actor in actors if actor.startswith("api_key:")}
    labels: dict[str, str] = {}
    users = get_user_model().objects.filter(pk__in=[i for i in user_ids if i.isdigit()])
    for user in users:
        labels[f"user:{user.pk}"] = user.get_username()
    for key in scoped(ApiKey, tenant).filter(pk__in=key_ids).only("id", "name", "prefix"):
        labels[f"api_key:{key.pk}"] = f"API key {key.name} ({key.prefix}…)"
    return labels


def entity_types_for(tenant: Tenant) -> list[str]:
    from graph.models import Entity

    return list(scoped(Entity, tenant).order_by("type").values_list("type", flat=True).distinct()[:100])


def entities_mentioned_in(tenant: Tenant, memory: Memory) -> list[Any]:
    """The entities a memory mentions (what graph extraction linked it to), most-mentioned first."""
    from graph.models import Mention

    mentions = scoped(Mention, tenant).filter(memory=memory).select_related("entity")
    return sorted({m.entity for m in mentions}, key=lambda e: (-e.mention_count, e.name))


def tenant_counts_for(tenant: Tenant) -> dict[str, int]:
    """What deleting the tenant removes, counted, for the confirmation on its page."""
    from accounts.models import Application, Invitation
    from graph.models import Entity, Relation
    from ingest.models import IngestJob

    return {
        "memories": scoped(Memory, tenant).count(),
        "entities": scoped(Entity, tenant).count(),
        "relations": scoped(Relation, tenant).count(),
        "import jobs": scoped(IngestJob, tenant).count(),
        "API keys": scoped(ApiKey, tenant).count(),
        "OAuth applications": scoped(Application, tenant).count(),
        "members": scoped(Membership, tenant).count(),
        "invitations": scoped(Invitation, tenant).count(),
    }


def relation_predicates_for(tenant: Tenant) -> list[str]:
    from graph.models import Relation

    return list(scoped(Relation, tenant).order_by("predicate").values_list("predicate", flat=True).distinct()[:200])

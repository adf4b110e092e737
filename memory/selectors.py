"""Reads on memories: access helpers, filtered lists, history and stats."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import Tenant
from accounts.principal import Principal
from accounts.scoping import get_scoped_or_404, scoped
from audit.services import audit_record
from core.db_routing import read_connection
from core.inputs import json_check, text_check
from memory import embeddings
from memory.models import EnrichmentState, Memory, MemoryHistory
from memory.policy import EPHEMERAL_KEY


@dataclass(frozen=True)
class MemoryFilters:
    kinds: list[str] = field(default_factory=list)
    tags_any: list[str] = field(default_factory=list)
    tags_all: list[str] = field(default_factory=list)
    user_ref: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    occurred_after: datetime | None = None
    occurred_before: datetime | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    include_expired: bool = False
    include_ephemeral: bool = False  # trivial chat turns the memory policy marked ephemeral
    # The world as of this moment, on the graph's valid-time axis: memories of what had happened by
    # then (occurred_at, or when unknown created_at, at or before it) and not expired then; search's
    # graph list follows the relations valid then.
    as_of: datetime | None = None


def filters_check(filters: MemoryFilters) -> None:
    """Refuse filter values the database cannot compare (every door builds MemoryFilters)."""
    for name in ("kinds", "tags_any", "tags_all"):
        for value in getattr(filters, name):
            text_check(name, str(value))
    for name in ("user_ref", "agent_id", "session_id"):
        value = getattr(filters, name)
        if value is not None:
            text_check(name, str(value))
    json_check("metadata", filters.metadata)


def filters_apply(qs: QuerySet[Memory], filters: MemoryFilters) -> QuerySet[Memory]:
    filters_check(filters)
    if filters.kinds:
        qs = qs.filter(kind__in=filters.kinds)
    if filters.tags_any:
        qs = qs.filter(tags__overlap=filters.tags_any)
    if filters.tags_all:
        qs = qs.filter(tags__contains=filters.tags_all)
    for name in ("user_ref", "agent_id", "session_id"):
        value = getattr(filters, name)
        if value is not None:
            qs = qs.filter(**{name: value})
    if filters.metadata:
        qs = qs.filter(metadata__contains=filters.metadata)
    if filters.occurred_after:
        qs = qs.filter(occurred_at__gte=filters.occurred_after)
    if filters.occurred_before:
        qs = qs.filter(occurred_at__lt=filters.occurred_before)
    if filters.created_after:
        qs = qs.filter(created_at__gte=filters.created_after)
    if filters.created_before:
        qs = qs.filter(created_at__lt=filters.created_before)
    if not filters.include_ephemeral:
        qs = qs.exclude(metadata__contains={EPHEMERAL_KEY: True})
    if filters.as_of:
        qs = qs.filter(Q(occurred_at__lte=filters.as_of) | Q(occurred_at__isnull=True, created_at__lte=filters.as_of))
    if not filters.include_expired:
        qs = qs.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=filters.as_of or timezone.now()))
    return qs


_SIZE_TTL_SECONDS = 30.0
_sizes: dict[tuple[str, tuple[Any, ...]], tuple[int, float]] = {}


# Every column of a memory: the filtered set is compiled once per search with all of them, and each
# statement of the search selects what it needs from it (PostgreSQL drops the rest when it
# flattens the subquery).
_ALL_COLUMNS = tuple(f.attname for f in Memory._meta.concrete_fields)


def filtered_sql(rows: QuerySet[Memory]) -> tuple[str, tuple[Any, ...]]:
    """The SQL of a filtered set of memories, every column, compiled once per queryset object.

    Search passes one queryset (tenant and filters) to every candidate list and step; compiling
    it anew for each statement cost more CPU than several of those statements took to run."""
    compiled: tuple[str, tuple[Any, ...]] | None = getattr(rows, "_easymemory_sql", None)
    if compiled is None:
        sql, params = rows.values(*_ALL_COLUMNS).query.sql_with_params()
        compiled = (sql, tuple(params))
        rows._easymemory_sql = compiled  # type: ignore[attr-defined]
    return compiled


def filtered_count(rows: QuerySet[Memory]) -> int:
    """cached_count() of a filtered set of memories, from its SQL compiled once (filtered_sql)."""
    sql, params = filtered_sql(rows)
    return _cached_size(sql, params, lambda: _count_of(sql, params))


def _count_of(sql: str, params: tuple[Any, ...]) -> int:
    with read_connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM ({sql}) c", params)  # noqa: S608  # scoped: a scoped() queryset's SQL
        return int(cursor.fetchone()[0])


def cached_count(rows: QuerySet[Any]) -> int:
    """count() of a filtered set, cached for a few seconds per query text.

    Used where an approximate size is enough: to pick the vector and full-text plans and as N
    in the full-text IDF. Counting a 100k-row tenant costs tens of milliseconds, which each
    search should not pay.
    """
    sql, params = rows.query.sql_with_params()
    return _cached_size(sql, tuple(params), rows.count)


def _cached_size(sql: str, params: tuple[Any, ...], count: Callable[[], int]) -> int:
    # The expiry filter's "now" changes every call; to the minute is precise enough to pick a plan.
    key = (sql, tuple(str(p.replace(second=0, microsecond=0) if isinstance(p, datetime) else p) for p in params))
    now = time.monotonic()
    cached = _sizes.get(key)
    if cached is not None and cached[1] > now:
        return cached[0]
    size = count()
    if len(_sizes) > 10_000:
        _sizes.clear()
    _sizes[key] = (size, now + _SIZE_TTL_SECONDS)
    return size


def memory_list_for(principal: Principal, filters: MemoryFilters) -> QuerySet[Memory]:
    """The principal's memories within `filters`, newest first. Audited here (one `memory.list`
    per call), so REST, MCP and the dashboard are audited alike."""
    audit_record(principal=principal, action="memory.list", target_type="memory")
    return filters_apply(scoped(Memory, principal.tenant), filters).order_by("-created_at", "-id")


def memory_get_for(principal: Principal, memory_id: object) -> Memory:
    """The memory with this id in the principal's tenant; 404 for missing and foreign ids alike.

    Not audited: writes look their target up through here too. Reads use memory_read_for."""
    return get_scoped_or_404(Memory, principal.tenant, pk=memory_id)


def memory_read_for(principal: Principal, memory_id: object) -> Memory:
    """memory_get_for for showing a memory to the principal: audited as `memory.read`."""
    memory = memory_get_for(principal, memory_id)
    audit_record(principal=principal, action="memory.read", target_type="memory", target_id=str(memory.id))
    return memory


def memory_history_for(principal: Principal, memory_id: UUID | str) -> QuerySet[MemoryHistory]:
    try:
        history = scoped(MemoryHistory, principal.tenant).filter(memory_id=memory_id).order_by("created_at", "id")
    except ValidationError as exc:  # a malformed id is "not found", like in get_scoped_or_404 (found by schemathesis)
        raise Http404("not found") from exc
    if not history.exists():
        memory_get_for(principal, memory_id)  # 404 unless the memory exists here
    audit_record(principal=principal, action="memory.history", target_type="memory", target_id=str(memory_id))
    return history


StatsProvider = Callable[[Tenant], dict[str, Any]]
# Figures other apps add to a tenant's statistics, by key (the graph adds "graph"); memory never
# imports the apps that register here.
STATS_PROVIDERS: dict[str, StatsProvider] = {}


def register_stats_provider(name: str, provider: StatsProvider) -> StatsProvider:
    STATS_PROVIDERS[name] = provider
    return provider


def memory_stats_for(tenant: Tenant) -> dict[str, Any]:
    memories = scoped(Memory, tenant)
    by_kind = {row["kind"]: row["n"] for row in memories.values("kind").annotate(n=Count("id")).order_by()}
    by_state = {
        row["enrichment_state"]: row["n"]
        for row in memories.values("enrichment_state").annotate(n=Count("id")).order_by()
    }
    name = embeddings.model_name()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        database_bytes = int(cursor.fetchone()[0])
    return {
        "memories": sum(by_kind.values()),
        "by_kind": by_kind,
        "enrichment": {state: by_state.get(state, 0) for state in EnrichmentState.values},
        "pending_embeddings": memories.exclude(embeddings__model=name).count(),
        "embedding_model": name,
        "database_bytes": database_bytes,
        **{name: provider(tenant) for name, provider in STATS_PROVIDERS.items()},
    }

"""Per-tenant full-text statistics: how many memories hold each lexeme.

BM25 needs each query term's document frequency before it can rank. Counting it at query
time means reading every matching row, which on a 100k-row tenant is most of a search's
time; so large tenants keep a snapshot of the counts, rebuilt in the background when the
tenant has grown or shrunk by more than `EASYMEMORY_TERM_STATS_DRIFT` since the last one.
The snapshot is derived data: it can always be rebuilt from the memories, and a missing or
stale one only changes which plan ranks the full-text list (memory/fulltext.py), never which
memories may be returned.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Tenant
from accounts.scoping import scoped
from memory import dispatch
from memory.models import Memory, TermStat, TermStatsSnapshot

logger = logging.getLogger(__name__)

# A process asks for a tenant's rebuild at most this often.
_REQUEST_INTERVAL_SECONDS = 60.0
_requested: dict[str, float] = {}


@dataclass(frozen=True)
class TermStats:
    docs: int
    avgdl: float
    df: dict[str, int]


def term_stats_rebuild(tenant: Tenant) -> TermStatsSnapshot:
    """Count every lexeme of the tenant's memories afresh (one pass over its rows)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            # One rebuild per tenant at a time; a second caller waits and then redoes it (cheap, current).
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('term_stats:' || %s))", [str(tenant.pk)])
            scoped(TermStat, tenant).delete()
            cursor.execute(
                "INSERT INTO memory_termstat (tenant_id, lexeme, df)"
                " SELECT m.tenant_id, v.lexeme, count(*) FROM memory_memory m, unnest(m.search_vector) v"
                " WHERE m.tenant_id = %s GROUP BY m.tenant_id, v.lexeme",
                [tenant.pk],  # scoped: WHERE m.tenant_id
            )
            cursor.execute(
                "SELECT count(*), COALESCE(avg(length(search_vector)), 1) FROM memory_memory WHERE tenant_id = %s",
                [tenant.pk],  # scoped: WHERE tenant_id
            )
            docs, avgdl = cursor.fetchone()
        snapshot, _ = TermStatsSnapshot.objects.update_or_create(
            tenant=tenant, defaults={"docs": int(docs), "avgdl": max(float(avgdl), 1.0), "built_at": timezone.now()}
        )
    return snapshot


def term_stats_discard(tenant: Tenant) -> None:
    """Drop the tenant's snapshot: after an end user is forgotten, the words of their memories
    must not outlive them here. Searches use the exact plan until the next rebuild."""
    scoped(TermStat, tenant).delete()
    TermStatsSnapshot.objects.filter(tenant=tenant).delete()  # unscoped: keyed by the tenant itself


def term_stats_for_text(tenant: Tenant, text: str) -> tuple[list[str], TermStats | None]:
    """The distinct lexemes PostgreSQL's English configuration makes of `text`, and the tenant's
    snapshot (None if it has none) with their frequencies (a lexeme it has not counted is absent).
    One statement: this runs on every search of a large tenant."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.lexeme, s.df, snap.docs, snap.avgdl"  # scoped: joins on the tenant's id
            " FROM unnest(tsvector_to_array(to_tsvector('english', %s))) AS t(lexeme)"
            " LEFT JOIN memory_termstat s ON s.tenant_id = %s AND s.lexeme = t.lexeme"
            " LEFT JOIN memory_termstatssnapshot snap ON snap.tenant_id = %s",
            [text, tenant.pk, tenant.pk],
        )
        rows = cursor.fetchall()
    lexemes = sorted({lexeme for lexeme, *_ in rows})
    snapshot = next(((docs, avgdl) for _, _, docs, avgdl in rows if docs is not None), None)
    if snapshot is None:
        return lexemes, None
    df = {lexeme: int(count) for lexeme, count, _, _ in rows if count is not None}
    return lexemes, TermStats(docs=int(snapshot[0]), avgdl=float(snapshot[1]), df=df)


def is_stale(snapshot_docs: int, tenant_rows: int) -> bool:
    drift = abs(tenant_rows - snapshot_docs) / max(snapshot_docs, 1)
    return drift > settings.EASYMEMORY_TERM_STATS_DRIFT


def term_stats_refresh() -> list[Tenant]:
    """Rebuild, now, the snapshot of every tenant large enough for the tiered plan whose snapshot
    is missing or has drifted (`easymemory reconcile`). Returns the tenants rebuilt."""
    rebuilt = []
    for tenant in Tenant.objects.order_by("slug"):
        rows = scoped(Memory, tenant).count()
        if rows <= settings.EASYMEMORY_FULLTEXT_EXACT_MAX_ROWS:
            continue
        snapshot = TermStatsSnapshot.objects.filter(tenant=tenant).first()  # unscoped: keyed by the tenant
        if snapshot is None or is_stale(snapshot.docs, rows):
            term_stats_rebuild(tenant)
            rebuilt.append(tenant)
    return rebuilt


def request_rebuild(tenant: Tenant) -> None:
    """Queue a background rebuild, at most once a minute per tenant from this process."""
    key = str(tenant.pk)
    now = time.monotonic()
    if _requested.get(key, 0.0) > now:
        return
    _requested[key] = now + _REQUEST_INTERVAL_SECONDS
    try:
        dispatch.term_stats_rebuild_enqueue(key)
    except Exception:  # the search itself must not fail because the queue is down
        logger.warning("could not queue a term statistics rebuild for tenant %s", key, exc_info=True)

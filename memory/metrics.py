"""Scrape-time figures of the memory tables for /metrics (registered with core.metrics)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def embedding_backlog_metrics() -> Iterator[Any]:
    """Memories waiting for their embedding, and the age of the oldest, all tenants together."""
    from django.db.models import Count, Min
    from django.utils import timezone
    from prometheus_client.core import GaugeMetricFamily

    from memory.models import EnrichmentState, Memory

    pending = GaugeMetricFamily(
        "easymemory_embedding_pending", "Memories waiting for their embedding, all tenants together."
    )
    oldest = GaugeMetricFamily(
        "easymemory_embedding_oldest_pending_age_seconds",
        "Age of the oldest memory waiting for its embedding (0 when none waits).",
    )
    pending_rows = Memory.objects.filter(enrichment_state=EnrichmentState.PENDING)  # unscoped: operator total
    row = pending_rows.aggregate(count=Count("id"), first=Min("created_at"))  # counts and a time, no content
    pending.add_metric([], float(row["count"] or 0))
    age = (timezone.now() - row["first"]).total_seconds() if row["first"] else 0.0
    oldest.add_metric([], max(age, 0.0))
    yield pending
    yield oldest

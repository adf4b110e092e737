"""Enrichment tasks: thin, idempotent, keyed by memory ids."""

from __future__ import annotations

import logging

from config.celery import app
from memory.services import memory_announce_enriched, memory_embed_batch, memory_mark_failed

logger = logging.getLogger(__name__)

ENRICH_BATCH = 64  # measured: batches of 32-64 embed fastest on 2 cores
MAX_RETRIES = 5


@app.task(bind=True, max_retries=MAX_RETRIES, acks_late=True)
def memory_enrich_task(self, memory_ids: list[str]) -> int:  # type: ignore[no-untyped-def]
    """Embed (and, when the graph app provides it, extract from) the given memories."""
    try:
        count = memory_embed_batch(memory_ids=memory_ids)
        from memory.enrichment import run_enrichment_hooks

        run_enrichment_hooks(memory_ids)
        memory_announce_enriched(memory_ids=memory_ids)
        return count
    except Exception as exc:
        if self.request.retries >= MAX_RETRIES:
            memory_mark_failed(memory_ids=memory_ids, error=f"{type(exc).__name__}: {exc}")
            logger.exception("enrichment failed for good for %d memories", len(memory_ids))
            return 0
        raise self.retry(exc=exc, countdown=min(300, 2**self.request.retries * 5)) from exc


@app.task(acks_late=True)
def term_stats_rebuild_task(tenant_id: str) -> int:
    """Rebuild one tenant's full-text statistics (see memory/term_stats.py); returns its document count."""
    from accounts.models import Tenant
    from memory.term_stats import term_stats_rebuild

    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:  # deleted since the request
        return 0
    return term_stats_rebuild(tenant).docs


@app.task(acks_late=True)
def memory_bulk_task(job_id: str) -> str:
    """Run one bulk action job (memory/bulk.py); a redelivered task resumes or finds it done."""
    from memory.bulk import bulk_job_mark_crashed, bulk_job_run

    try:
        job = bulk_job_run(job_id)
    except Exception as exc:
        logger.exception("bulk job %s crashed", job_id)
        bulk_job_mark_crashed(job_id, f"{type(exc).__name__}: {exc}")
        return "failed"
    return job.status if job is not None else "skipped"

"""Enrichment tasks: thin, idempotent, keyed by memory ids.

Every task here may run twice without harm (each computes only what is missing), so each
acknowledges after the work (`acks_late`) and is handed back to the queue when its worker dies
(`reject_on_worker_lost`): a worker killed mid-batch loses nothing. Queues: config/settings.py
(CELERY_TASK_ROUTES) sends embeddings and LLM extraction to different queues.
"""

from __future__ import annotations

import logging

from celery import Task, shared_task

from memory.dispatch import (
    BULK_TASK,
    EMBED_TASK,
    ENRICH_TASK,
    EXTRACT_TASK,
    TERM_STATS_REBUILD_TASK,
    extraction_enqueue,
)
from memory.services import memory_mark_failed

logger = logging.getLogger(__name__)

EXTRACT_CHUNK = 16  # memories extracted between checks for embeddings waiting
EXTRACT_QUIET_SECONDS = 1.0  # extraction runs once the pipeline has been idle this long
EXTRACT_DEFER_SECONDS = 2.0
EXTRACT_MAX_DEFERRALS = 60  # then it runs anyway (about two minutes of steady embedding)
MAX_RETRIES = 5


def _embed_then_extract(task: Task, memory_ids: list[str]) -> int:
    from memory.embed_pipeline import pipeline
    from memory.enrichment import has_enrichment_hooks

    try:
        count = pipeline.embed(memory_ids)
    except Exception as exc:
        if task.request.retries >= MAX_RETRIES:
            memory_mark_failed(memory_ids=memory_ids, error=f"{type(exc).__name__}: {exc}")
            logger.exception("embedding failed for good for %d memories", len(memory_ids))
            return 0
        raise task.retry(exc=exc, countdown=min(300, 2**task.request.retries * 5)) from exc
    if has_enrichment_hooks():
        # After the embedding, on its own queue: a slow model never delays searchability. Sent
        # again if this task is re-run; the steps skip what they already did.
        extraction_enqueue(memory_ids)
    return count


@shared_task(name=EMBED_TASK, bind=True, max_retries=MAX_RETRIES, acks_late=True, reject_on_worker_lost=True)
def memory_embed_task(self: Task, memory_ids: list[str]) -> int:
    """Embed the given memories (through this worker's pipeline, memory/embed_pipeline.py), announce
    them, then hand the other enrichment steps to the LLM queue. Returns how many it embedded."""
    return _embed_then_extract(self, memory_ids)


@shared_task(name=ENRICH_TASK, bind=True, max_retries=MAX_RETRIES, acks_late=True, reject_on_worker_lost=True)
def memory_enrich_task(self: Task, memory_ids: list[str]) -> int:
    """The former name of memory_embed_task: messages queued before an upgrade still run."""
    return _embed_then_extract(self, memory_ids)


@shared_task(name=EXTRACT_TASK, bind=True, max_retries=MAX_RETRIES, acks_late=True, reject_on_worker_lost=True)
def memory_extract_task(self: Task, memory_ids: list[str], deferrals: int = 0) -> None:
    """The enrichment steps beyond embedding (graph extraction, often through an LLM).

    Embeddings go first: in a worker that also embeds, while its pipeline is busy (or was a moment
    ago) the memories not yet extracted go back to the queue for EXTRACT_DEFER_SECONDS, which frees
    this thread for the next embedding task; after EXTRACT_MAX_DEFERRALS they run anyway. The steps
    record a provider's failure on the memory themselves; what reaches here is an infrastructure
    error (database, broker), retried with backoff.
    """
    from memory.embed_pipeline import pipeline
    from memory.enrichment import run_enrichment_hooks

    try:
        for start in range(0, len(memory_ids), EXTRACT_CHUNK):
            if deferrals < EXTRACT_MAX_DEFERRALS and pipeline.busy(within=EXTRACT_QUIET_SECONDS):
                extraction_enqueue(memory_ids[start:], deferrals=deferrals + 1, countdown=EXTRACT_DEFER_SECONDS)
                return
            run_enrichment_hooks(memory_ids[start : start + EXTRACT_CHUNK])
    except Exception as exc:
        if self.request.retries >= MAX_RETRIES:
            memory_mark_failed(memory_ids=memory_ids, error=f"graph: {type(exc).__name__}: {exc}")
            logger.exception("extraction failed for good for %d memories", len(memory_ids))
            return
        raise self.retry(exc=exc, countdown=min(300, 2**self.request.retries * 5)) from exc


@shared_task(name=TERM_STATS_REBUILD_TASK, acks_late=True, reject_on_worker_lost=True)
def term_stats_rebuild_task(tenant_id: str) -> int:
    """Rebuild one tenant's full-text statistics (see memory/term_stats.py); returns its document count."""
    from accounts.models import Tenant
    from memory.term_stats import term_stats_rebuild

    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:  # deleted since the request
        return 0
    return term_stats_rebuild(tenant).docs


@shared_task(name=BULK_TASK, acks_late=True, reject_on_worker_lost=True)
def memory_bulk_task(job_id: str) -> str:
    """Run one bulk action job (memory/bulk.py); a redelivered task resumes or finds it done (a job
    lock keeps a second delivery from running it twice), so it is acknowledged after the work."""
    from memory.bulk import bulk_job_mark_crashed, bulk_job_run

    try:
        job = bulk_job_run(job_id)
    except Exception as exc:
        logger.exception("bulk job %s crashed", job_id)
        bulk_job_mark_crashed(job_id, f"{type(exc).__name__}: {exc}")
        return "failed"
    return job.status if job is not None else "skipped"

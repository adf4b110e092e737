"""Import jobs: creating them and running them (the writes they make: ingest/writes.py; the
source-specific runners: ingest/runners.py).

A job runs the same way from a Celery task (API) and in-process (CLI).
Every run is resumable without duplicates: items carry stable keys
(IngestedItem; IndexedFile for vault files), each group of items is stored
in one transaction together with its keys, and memories are de-duplicated
by content hash. A re-run of an interrupted job skips what is already there.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.principal import Principal
from accounts.scoping import scoped
from audit.services import audit_record
from core.errors import InvalidInput
from core.events import publish_event
from ingest import dispatch
from ingest.items import SourceError
from ingest.models import IngestJob, IngestUpload, JobKind, JobStatus
from ingest.writes import JobRun, ProgressCallback, job_payload
from memory.services import memory_tables_analyze

logger = logging.getLogger(__name__)

# A job that created this many memories refreshes the planner statistics when it ends.
ANALYZE_AFTER_CREATED = 1_000


# --- jobs ---------------------------------------------------------------------------------


def job_create(
    *,
    principal: Principal,
    kind: str,
    params: dict[str, Any],
    upload: tuple[str, bytes] | None = None,
    enqueue: bool = True,
) -> IngestJob:
    """Record a job (and its uploaded bytes) and, after commit, hand it to the worker."""
    if kind not in JobKind.values:
        raise InvalidInput("kind", f"kind must be one of {', '.join(JobKind.values)}")
    if kind == JobKind.JSON:
        # An export's graph section is written only for a credential that may write the graph.
        params = {**params, "graph": principal.has_scope("graph:write")}
    with transaction.atomic():
        job = IngestJob.objects.create(tenant=principal.tenant, kind=kind, params=params, actor=principal.actor)
        if upload is not None:
            name, data = upload
            IngestUpload.objects.create(tenant=principal.tenant, job=job, name=name[:500], size=len(data), data=data)
        audit_record(
            principal=principal,
            action="ingest.create",
            target_type="ingest_job",
            target_id=str(job.id),
            detail={"kind": kind},
        )
        if enqueue:
            job_id = str(job.id)
            transaction.on_commit(lambda: dispatch.job_enqueue(job_id))
    return job


def index_path_start(
    *, principal: Principal, path: str, pattern: str = "*.md", recursive: bool = True, trusted: bool = False
) -> IngestJob:
    """Start indexing a server directory: the one entry for REST, MCP, the dashboard and the CLI.

    Unless `trusted` (only the local command line), the path must lie inside the tenant's
    import roots (ingest/roots.py); a refusal is audited and raised as PathRefused.
    """
    from ingest.roots import PathRefused, import_path_check, is_directory

    if trusted:
        root = Path(path).expanduser().resolve()
    else:
        try:
            root = import_path_check(tenant=principal.tenant, path=path)
        except PathRefused:
            audit_record(principal=principal, action="ingest.index", target_type="path", outcome="denied")
            raise
    if not is_directory(root):
        raise InvalidInput("path", "not a directory")
    params = {"path": str(root), "pattern": pattern, "recursive": recursive, "trusted": trusted}
    return job_create(principal=principal, kind=JobKind.VAULT, params=params)


def job_requeue_unfinished() -> list[str]:
    """Re-send queued/running jobs (after a broker outage or a crash that lost the message),
    except those a live worker is running now (it holds the job's claim)."""
    ids = [
        str(i)
        for i in IngestJob.objects.filter(  # unscoped: maintenance over all tenants
            status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
        ).values_list("id", flat=True)
    ]
    free = [job_id for job_id in ids if not job_claimed_elsewhere(job_id)]
    for job_id in free:
        dispatch.job_enqueue(job_id)
    return free


# A job is claimed by a PostgreSQL session-level advisory lock held for the whole run: taking it
# is atomic, and it is released when the run ends or when the claiming worker's connection dies
# (a crashed worker's job becomes free to resume, with no lease to expire). This namespace keeps
# the keys apart from any other advisory lock.
_CLAIM_NAMESPACE = 0x1E57


def _claim_key(job_id: str) -> int:
    return int.from_bytes(uuid.UUID(str(job_id)).bytes[:4], "big", signed=True)


def job_claim(job_id: str) -> bool:
    """Claim the job for this process's database session; False when another session holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_CLAIM_NAMESPACE, _claim_key(job_id)])
        return bool(cursor.fetchone()[0])


def job_release(job_id: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_CLAIM_NAMESPACE, _claim_key(job_id)])


def job_claimed_elsewhere(job_id: str) -> bool:
    """Whether another database session holds the job's claim now."""
    if not job_claim(job_id):
        return True
    job_release(job_id)
    return False


def job_run(job_id: str, *, on_progress: ProgressCallback | None = None) -> IngestJob | None:
    """Run (or resume) a job to the end. Idempotent: a finished job is left alone, and a job
    that another worker is running (it holds the claim) is left to it."""
    if not job_claim(job_id):
        logger.info("ingest job %s is running in another worker; not started twice", job_id)
        return IngestJob.objects.filter(pk=job_id).first()  # unscoped: id from the queue
    try:
        return _job_run_claimed(job_id, on_progress)
    finally:
        job_release(job_id)


def _job_run_claimed(job_id: str, on_progress: ProgressCallback | None) -> IngestJob | None:
    job = IngestJob.objects.filter(pk=job_id).select_related("tenant").first()  # unscoped: id from the queue
    if job is None or job.status in (JobStatus.DONE, JobStatus.FAILED):
        return job
    run = JobRun(job, on_progress)
    # A resumed run starts its counts again: what an earlier run stored now counts as skipped.
    job.status, job.started_at, job.finished_at = JobStatus.RUNNING, timezone.now(), None
    job.done = job.skipped = job.failed = job.memories_created = job.memories_deleted = 0
    job.stats, job.errors, job.error = {}, [], ""
    run.save()
    principal = Principal.system(job.tenant)
    try:
        from ingest import runners

        runners.RUNNERS[job.kind](principal, job, run)
        job.status = JobStatus.DONE
        if job.memories_created >= ANALYZE_AFTER_CREATED:
            memory_tables_analyze()
    except SourceError as exc:
        job.status, job.error = JobStatus.FAILED, str(exc)
    job.finished_at = timezone.now()
    with transaction.atomic():
        run.save()
        scoped(IngestUpload, job.tenant).filter(job=job).delete()
        publish_event(job.tenant_id, "ingest.finished", {**job_payload(job), "error": job.error})
    if on_progress is not None:
        on_progress(job)
    return job


def job_mark_crashed(job_id: str, error: str) -> None:
    IngestJob.objects.filter(pk=job_id).update(  # unscoped: id from the queue
        status=JobStatus.FAILED, error=error[:2000], finished_at=timezone.now()
    )



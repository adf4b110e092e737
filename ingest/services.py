"""Import jobs: creating them, running them, and the writes they make.

A job runs the same way from a Celery task (API) and in-process (CLI).
Every run is resumable without duplicates: items carry stable keys
(IngestedItem; IndexedFile for vault files), each group of items is stored
in one transaction together with its keys, and memories are de-duplicated
by content hash. A re-run of an interrupted job skips what is already there.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.principal import Principal
from accounts.scoping import scoped
from audit.services import audit_record
from config.errors import InvalidInput
from config.events import publish_event
from ingest.models import IngestedItem, IngestJob, IngestUpload, JobKind, JobStatus
from memory.models import Memory
from memory.services import MemoryInput, memory_create_many, memory_delete, memory_tables_analyze

logger = logging.getLogger(__name__)

MAX_JOB_ERRORS = 200  # per-item errors kept on the job; the count is always exact
GROUP_MEMORIES = 256  # memories per transaction, each group a few statements (memory_create_many)
CREATE_SLICE = 500  # below EASYMEMORY_MAX_BATCH
PROGRESS_EVERY_SECONDS = 1.0

ProgressCallback = Callable[[IngestJob], None]

# A job that created this many memories refreshes the planner statistics when it ends.
ANALYZE_AFTER_CREATED = 1_000


@dataclass
class SourceItem:
    """One unit of a source (a message, an e-mail, a record, a document) and its memories."""

    key: str
    label: str
    inputs: list[MemoryInput] = field(default_factory=list)
    error: str = ""  # could not be read: counted failed
    skip: str = ""  # deliberately not imported (bot noise, file share, empty): counted skipped


class SourceError(Exception):
    """The source as a whole cannot be imported (corrupt archive, unreadable file)."""


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


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
            transaction.on_commit(lambda: _enqueue(job_id))
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


def _enqueue(job_id: str) -> None:
    from ingest.tasks import ingest_job_task

    try:
        ingest_job_task.delay(job_id)
    except Exception:  # noqa: BLE001 - the job stays queued; `easymemory resumejobs` re-sends it
        logger.warning("could not enqueue ingest job %s; run `easymemory resumejobs`", job_id)


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
        _enqueue(job_id)
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


class JobRun:
    """Counts and errors of one run, saved and published at most once a second."""

    def __init__(self, job: IngestJob, on_progress: ProgressCallback | None) -> None:
        self.job = job
        self.on_progress = on_progress
        self.last = 0.0

    def ok(self, created: int = 0) -> None:
        self.job.done += 1
        self.job.memories_created += created
        self.tick()

    def skip(self, reason: str) -> None:
        self.job.skipped += 1
        self.job.stats[reason] = self.job.stats.get(reason, 0) + 1
        self.tick()

    def fail(self, item: str, error: str) -> None:
        self.job.failed += 1
        if len(self.job.errors) < MAX_JOB_ERRORS:
            self.job.errors.append({"item": item[:500], "error": error[:1000]})
        self.tick()

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_EVERY_SECONDS:
            return
        self.last = now
        self.save()
        publish_event(self.job.tenant_id, "ingest.progress", job_payload(self.job))
        if self.on_progress is not None:
            self.on_progress(self.job)

    def save(self) -> None:
        self.job.save(
            update_fields=[
                "status",
                "total",
                "done",
                "skipped",
                "failed",
                "memories_created",
                "memories_deleted",
                "stats",
                "errors",
                "error",
                "started_at",
                "finished_at",
            ]
        )


def job_payload(job: IngestJob) -> dict[str, Any]:
    return {
        "id": str(job.id),
        "kind": job.kind,
        "status": job.status,
        "total": job.total,
        "done": job.done,
        "skipped": job.skipped,
        "failed": job.failed,
        "memories_created": job.memories_created,
    }


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


# --- writing items ---------------------------------------------------------------------------


def create_all(principal: Principal, inputs: list[MemoryInput]) -> list[tuple[Memory, bool]]:
    """(memory, created) per input, in order; importers store every item (policy "all")."""
    out: list[tuple[Memory, bool]] = []
    for start in range(0, len(inputs), CREATE_SLICE):
        results = memory_create_many(principal=principal, items=inputs[start : start + CREATE_SLICE], policy="all")
        out.extend((r.memory, r.created) for r in results if r.memory is not None)
    return out


def _store_group(principal: Principal, job: IngestJob, run: JobRun, group: list[SourceItem]) -> None:
    hashes = {key_hash(item.key): item for item in group}
    known = set(
        scoped(IngestedItem, principal.tenant).filter(key_hash__in=list(hashes)).values_list("key_hash", flat=True)
    )
    todo = [(h, item) for h, item in hashes.items() if h not in known]
    for _ in range(len(group) - len(todo)):
        run.skip("already imported")
    if not todo:
        return
    try:
        with transaction.atomic():
            created = _store_items(principal, job, todo)
        for count in created:
            run.ok(count)
    except InvalidInput:
        # One bad item must not sink the group: store the items one by one to find it.
        for h, item in todo:
            try:
                with transaction.atomic():
                    count = _store_items(principal, job, [(h, item)])[0]
                run.ok(count)
            except InvalidInput as exc:
                run.fail(item.label, str(exc))


def _store_items(principal: Principal, job: IngestJob, todo: list[tuple[str, SourceItem]]) -> list[int]:
    inputs = [data for _, item in todo for data in item.inputs]
    memories = create_all(principal, inputs)
    created_counts: list[int] = []
    rows = []
    offset = 0
    for h, item in todo:
        mine = memories[offset : offset + len(item.inputs)]
        offset += len(item.inputs)
        created_counts.append(sum(1 for _, created in mine if created))
        rows.append(
            IngestedItem(tenant=principal.tenant, key_hash=h, key=item.key, memory_ids=[m.id for m, _ in mine], job=job)
        )
    IngestedItem.objects.bulk_create(rows, ignore_conflicts=True)
    return created_counts


def store_items(principal: Principal, job: IngestJob, run: JobRun, items: Iterable[SourceItem]) -> None:
    """Store a stream of items in groups of about GROUP_MEMORIES memories, counting each item."""
    group: list[SourceItem] = []
    size = 0
    for item in items:
        if item.error:
            run.fail(item.label, item.error)
            continue
        if item.skip:
            run.skip(item.skip)
            continue
        if not item.inputs:
            run.skip("no text")
            continue
        group.append(item)
        size += len(item.inputs)
        if size >= GROUP_MEMORIES:
            _store_group(principal, job, run, group)
            group, size = [], 0
    if group:
        _store_group(principal, job, run, group)
    run.tick(force=True)


def delete_memories(principal: Principal, memory_ids: Iterable[object]) -> int:
    """Delete memories a source no longer has (their history records the deletion)."""
    count = 0
    for memory in scoped(Memory, principal.tenant).filter(pk__in=list(memory_ids)):
        memory_delete(principal=principal, memory=memory)
        count += 1
    return count


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def upload_bytes(job: IngestJob) -> tuple[str, bytes]:
    upload = scoped(IngestUpload, job.tenant).filter(job=job).first()
    if upload is None:
        raise SourceError("the uploaded file is gone (the job already finished once?)")
    limit = settings.EASYMEMORY_MAX_UPLOAD_BYTES
    if upload.size > limit:
        raise SourceError(f"the file is over the {limit}-byte upload limit")
    return upload.name, bytes(upload.data)

"""What a running import job writes: its items as memories (in groups, each with its keys in one
transaction), memories a source no longer has, and its progress (saved and published at most once
a second)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.principal import Principal
from accounts.scoping import scoped
from core.errors import InvalidInput
from core.events import publish_event
from ingest.items import SourceError, SourceItem
from ingest.models import IngestedItem, IngestJob, IngestUpload
from memory.models import Memory
from memory.services import MemoryInput, memory_create_many, memory_delete

MAX_JOB_ERRORS = 200  # per-item errors kept on the job; the count is always exact
GROUP_MEMORIES = 256  # memories per transaction, each group a few statements (memory_create_many)
CREATE_SLICE = 500  # below EASYMEMORY_MAX_BATCH
PROGRESS_EVERY_SECONDS = 1.0

ProgressCallback = Callable[[IngestJob], None]


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


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


def upload_bytes(job: IngestJob) -> tuple[str, bytes]:
    upload = scoped(IngestUpload, job.tenant).filter(job=job).first()
    if upload is None:
        raise SourceError("the uploaded file is gone (the job already finished once?)")
    limit = settings.EASYMEMORY_MAX_UPLOAD_BYTES
    if upload.size > limit:
        raise SourceError(f"the file is over the {limit}-byte upload limit")
    return upload.name, bytes(upload.data)

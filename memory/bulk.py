"""Bulk actions on many memories: one audited job per action, run off the request path.

Each memory is changed through the ordinary memory service (history, events, enrichment
and per-memory audit as for a single edit), in small transactions, so a crash loses at
most the current batch's progress and a re-run skips what is already done. The job itself
is audited when created and when it ends. Deletions have no undo (a deleted memory's row
is gone; its history stays): the page asks for a confirmation that names the count.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.principal import Principal
from accounts.roles import Role
from accounts.scoping import scoped
from audit.services import audit_record
from core.errors import InvalidInput
from memory import dispatch
from memory.models import BulkAction, BulkStatus, Memory, MemoryBulkJob
from memory.services import MAX_TAGS, SCOPE_FIELDS, _clean_tags, memory_delete, memory_rescope, memory_update

logger = logging.getLogger(__name__)

BATCH = 100  # memories per progress save
MAX_ERRORS = 100


def bulk_ids_from(principal: Principal, values: Iterable[str]) -> list[uuid.UUID]:
    """The principal's memories among `values` (ids from a form); others and malformed ones drop out."""
    ids: list[uuid.UUID] = []
    for value in values:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError as exc:
            raise InvalidInput("ids", "not a memory id") from exc
        if len(ids) > settings.EASYMEMORY_BULK_MAX:
            raise InvalidInput("ids", f"at most {settings.EASYMEMORY_BULK_MAX} memories per action")
    return list(scoped(Memory, principal.tenant).filter(pk__in=ids).values_list("id", flat=True))


def bulk_params_validate(action: str, params: dict[str, Any]) -> dict[str, Any]:
    if action not in BulkAction.values:
        raise InvalidInput("action", f"action must be one of {', '.join(BulkAction.values)}")
    if action in (BulkAction.TAGS_ADD, BulkAction.TAGS_REMOVE):
        tags = params.get("tags")
        if not isinstance(tags, list) or not tags:
            raise InvalidInput("tags", "name at least one tag")
        return {"tags": _clean_tags(tags[:MAX_TAGS + 1], "")}
    if action == BulkAction.RESCOPE:
        scope = {name: params[name] for name in SCOPE_FIELDS if params.get(name) is not None}
        if not scope:
            raise InvalidInput("scope", "set at least one of user_ref, agent_id, session_id")
        for name, value in scope.items():
            if not isinstance(value, str) or len(value) > 200 or "\x00" in value:
                raise InvalidInput(name, f"{name} must be a string of at most 200 characters")
        return scope
    return {}


def bulk_job_create(
    *, principal: Principal, action: str, memory_ids: Sequence[uuid.UUID], params: dict[str, Any], enqueue: bool = True
) -> MemoryBulkJob:
    """Record the job over exactly these memories and hand it to the worker after commit."""
    params = bulk_params_validate(action, params)
    if not memory_ids:
        raise InvalidInput("ids", "select at least one memory")
    if len(memory_ids) > settings.EASYMEMORY_BULK_MAX:
        raise InvalidInput("ids", f"at most {settings.EASYMEMORY_BULK_MAX} memories per action")
    with transaction.atomic():
        job = MemoryBulkJob.objects.create(
            tenant=principal.tenant,
            action=action,
            params=params,
            memory_ids=list(dict.fromkeys(memory_ids)),
            total=len(set(memory_ids)),
            actor=principal.actor,
        )
        audit_record(
            principal=principal, action="memory.bulk.create", target_type="bulk_job", target_id=str(job.id),
            detail={"action": action, "count": job.total},
        )  # fmt: skip
        if enqueue:
            job_id = str(job.id)
            transaction.on_commit(lambda: _enqueue(job_id))
    return job


def _enqueue(job_id: str) -> None:
    try:
        dispatch.bulk_job_enqueue(job_id)
    except Exception:  # noqa: BLE001 - the job stays queued; it can be run again
        logger.warning("could not enqueue bulk job %s", job_id)


# pg_try_advisory_lock(int, int): this class id, then a hash of the job id.
_LOCK_CLASS = 0x45424C4B  # "EBLK"


def _claim(job_id: str) -> MemoryBulkJob | None:
    """Take the job unless it is finished (a redelivered task after a crash resumes it)."""
    with transaction.atomic():
        jobs = MemoryBulkJob.objects.select_for_update(skip_locked=True)  # unscoped: resolved by id, then its tenant
        job = jobs.filter(pk=job_id).first()
        if job is None or job.status in (BulkStatus.DONE, BulkStatus.FAILED):
            return None
        job.status = BulkStatus.RUNNING
        job.started_at = job.started_at or timezone.now()
        job.save(update_fields=["status", "started_at"])
        return job


def _principal_for(job: MemoryBulkJob) -> Principal:
    """The job acts with a writer's rights, under the name of whoever started it."""
    actor_type, _, actor_id = job.actor.partition(":")
    return Principal.for_role(job.tenant, Role.WRITER, actor_type=actor_type or "system", actor_id=actor_id)


def _apply(principal: Principal, job: MemoryBulkJob, memory: Memory) -> None:
    if job.action == BulkAction.DELETE:
        memory_delete(principal=principal, memory=memory)
    elif job.action == BulkAction.TAGS_ADD:
        tags = list(dict.fromkeys([*memory.tags, *job.params["tags"]]))
        if tags != list(memory.tags):
            memory_update(principal=principal, memory=memory, changes={"tags": tags})
    elif job.action == BulkAction.TAGS_REMOVE:
        tags = [tag for tag in memory.tags if tag not in job.params["tags"]]
        if tags != list(memory.tags):
            memory_update(principal=principal, memory=memory, changes={"tags": tags})
    elif job.action == BulkAction.RESCOPE:
        memory_rescope(principal=principal, memory=memory, scope=job.params)


def bulk_job_run(job_id: str) -> MemoryBulkJob | None:
    """Run (or resume) the job: memories already gone are counted skipped. Returns None when the
    job is finished, gone, or being run by another worker right now."""
    # A session-level advisory lock held for the whole run: a second delivery of the same task
    # (broker redelivery, `resumejobs`) while the first still runs gets None instead of a double run.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [_LOCK_CLASS, str(job_id)])
        if not cursor.fetchone()[0]:
            return None
    try:
        return _run(job_id)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [_LOCK_CLASS, str(job_id)])


def bulk_jobs_requeue_unfinished() -> list[str]:
    """Re-send queued and running jobs (after a broker outage or a crash); each resumes where it stopped."""
    unfinished = MemoryBulkJob.objects.filter(  # unscoped: maintenance over all tenants
        status__in=[BulkStatus.QUEUED, BulkStatus.RUNNING]
    )
    ids = [str(job_id) for job_id in unfinished.values_list("id", flat=True)]
    for job_id in ids:
        _enqueue(job_id)
    return ids


def _run(job_id: str) -> MemoryBulkJob | None:
    job = _claim(job_id)
    if job is None:
        return None
    principal = _principal_for(job)
    position = job.done + job.skipped + job.failed  # resume where a crashed run stopped
    ids = job.memory_ids[position:]
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        found = scoped(Memory, job.tenant).in_bulk(chunk)
        for memory_id in chunk:
            memory = found.get(memory_id)
            if memory is None:
                job.skipped += 1
                continue
            try:
                _apply(principal, job, memory)
            except InvalidInput as exc:
                job.failed += 1
                if len(job.errors) < MAX_ERRORS:
                    job.errors.append({"item": str(memory_id), "error": exc.message})
            else:
                job.done += 1
        job.save(update_fields=["done", "skipped", "failed", "errors"])
    job.status = BulkStatus.DONE
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "finished_at"])
    audit_record(
        principal=principal, action="memory.bulk.done", target_type="bulk_job", target_id=str(job.id),
        detail={"action": job.action, "done": job.done, "skipped": job.skipped, "failed": job.failed},
    )  # fmt: skip
    return job


def bulk_job_mark_crashed(job_id: str, error: str) -> None:
    MemoryBulkJob.objects.filter(pk=job_id).exclude(status=BulkStatus.DONE).update(  # unscoped: resolved by id
        status=BulkStatus.FAILED, finished_at=timezone.now(), errors=[{"item": "", "error": error[:1000]}]
    )


def bulk_job_list_for(principal: Principal) -> Any:
    return scoped(MemoryBulkJob, principal.tenant).defer("memory_ids").order_by("-created_at")

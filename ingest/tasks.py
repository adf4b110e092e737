"""Import jobs in the background: thin, idempotent (a re-delivered job resumes, never duplicates)."""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.db import OperationalError

from ingest.dispatch import JOB_TASK
from ingest.services import job_mark_crashed, job_run

logger = logging.getLogger(__name__)

MAX_RETRIES = 3


# Late acknowledgement: a job re-delivered after its worker died resumes (items already stored count
# as skipped). The broker's visibility timeout must exceed the longest import, or a job still running
# would be handed to a second worker (EASYMEMORY_TASK_VISIBILITY_TIMEOUT).
@shared_task(name=JOB_TASK, bind=True, max_retries=MAX_RETRIES, acks_late=True, reject_on_worker_lost=True)
def ingest_job_task(self: Task, job_id: str) -> str:
    try:
        job = job_run(job_id)
    except OperationalError as exc:  # database restart or lost connection: resume later
        if self.request.retries >= MAX_RETRIES:
            job_mark_crashed(job_id, f"{type(exc).__name__}: {exc}")
            return "failed"
        raise self.retry(exc=exc, countdown=min(300, 2**self.request.retries * 10)) from exc
    except Exception as exc:
        logger.exception("ingest job %s crashed", job_id)
        job_mark_crashed(job_id, f"{type(exc).__name__}: {exc}")
        return "failed"
    return job.status if job is not None else "gone"

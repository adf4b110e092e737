"""Import jobs in the background: thin, idempotent (a re-delivered job resumes, never duplicates)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

from ingest.services import job_mark_crashed, job_run

logger = logging.getLogger(__name__)

MAX_RETRIES = 3


@shared_task(bind=True, max_retries=MAX_RETRIES, acks_late=True)
def ingest_job_task(self, job_id: str) -> str:  # type: ignore[no-untyped-def]
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

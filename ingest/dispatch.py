"""Every task the ingest app sends goes out from here, by name through the Celery app (the name
`ingest/tasks.py` registers and CELERY_TASK_ROUTES routes), so the services that send a job never
import the task that runs it."""

from __future__ import annotations

import logging

from celery import current_app

logger = logging.getLogger(__name__)

JOB_TASK = "ingest.tasks.ingest_job_task"


def job_enqueue(job_id: str) -> None:
    try:
        current_app.send_task(JOB_TASK, args=[job_id])
    except Exception:  # noqa: BLE001 - the job stays queued; `easymemory resumejobs` re-sends it
        logger.warning("could not enqueue ingest job %s; run `easymemory resumejobs`", job_id)

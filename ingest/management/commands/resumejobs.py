from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ingest.services import job_requeue_unfinished


class Command(BaseCommand):
    help = "Re-send unfinished import jobs to the worker (they resume without duplicates)."

    def handle(self, *args: Any, **options: Any) -> None:
        ids = job_requeue_unfinished()
        self.stdout.write(f"re-queued {len(ids)} job(s)")
        from memory.bulk import bulk_jobs_requeue_unfinished

        bulk = bulk_jobs_requeue_unfinished()
        self.stdout.write(f"re-queued {len(bulk)} bulk job(s)")

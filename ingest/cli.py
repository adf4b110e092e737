"""Shared by the ingest commands: run a job in this process with a progress bar, then report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from accounts.cli_support import add_tenant_argument, system_principal
from core.progress import ProgressBar
from ingest import services
from ingest.models import IngestJob, JobStatus


def add_job_arguments(parser: CommandParser) -> None:
    add_tenant_argument(parser)
    parser.add_argument(
        "--background", action="store_true", help="queue the job for the worker instead of running it here"
    )


def job_progress(bar: ProgressBar) -> services.ProgressCallback:
    """The job's counts onto the command's bar (the job calls back at most once a second)."""

    def show(job: IngestJob) -> None:
        seen = job.done + job.skipped + job.failed
        bar.update(seen, job.total or None, done=job.done, skipped=job.skipped, failed=job.failed)

    return show


def read_source(path: str) -> tuple[str, bytes]:
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"{path}: no such file")
    limit = settings.EASYMEMORY_MAX_UPLOAD_BYTES
    if file.stat().st_size > limit:
        raise CommandError(f"{path}: over the {limit}-byte limit (EASYMEMORY_MAX_UPLOAD_BYTES)")
    return file.name, file.read_bytes()


def run_job(
    options: dict[str, Any],
    kind: str,
    params: dict[str, Any],
    stdout: Any,
    upload: tuple[str, bytes] | None = None,
    stderr: Any = None,
) -> IngestJob:
    principal = system_principal(options["tenant"])
    background = options.get("background", False)
    job = services.job_create(principal=principal, kind=kind, params=params, upload=upload, enqueue=background)
    if background:
        stdout.write(f"queued job {job.id}; follow it with GET /v1/jobs/{job.id}")
        return job
    with ProgressBar(stderr or sys.stderr, kind, unit="items") as bar:
        finished = services.job_run(str(job.id), on_progress=job_progress(bar))
    assert finished is not None
    report(finished, stdout)
    if finished.status == JobStatus.FAILED:
        raise CommandError(finished.error)
    return finished


def report(job: IngestJob, stdout: Any) -> None:
    stdout.write(
        f"job {job.id} {job.status}: {job.done} imported, {job.skipped} skipped, {job.failed} failed; "
        f"{job.memories_created} memories created, {job.memories_deleted} deleted"
    )
    for reason, count in sorted(job.stats.items()):
        stdout.write(f"  {reason}: {count}")
    for error in job.errors[:20]:
        stdout.write(f"  error: {error['item']}: {error['error']}")

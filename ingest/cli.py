"""Shared by the ingest commands: run a job in this process with a progress bar, then report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from accounts.cli_support import add_tenant_argument, system_principal
from ingest import services
from ingest.models import IngestJob, JobStatus

BAR_WIDTH = 30


def add_job_arguments(parser: CommandParser) -> None:
    add_tenant_argument(parser)
    parser.add_argument(
        "--background", action="store_true", help="queue the job for the worker instead of running it here"
    )


class ProgressBar:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.interactive = stream.isatty()

    def __call__(self, job: IngestJob) -> None:
        seen = job.done + job.skipped + job.failed
        if job.total:
            filled = int(BAR_WIDTH * min(seen, job.total) / job.total)
            bar = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {seen}/{job.total}"
        else:
            bar = f"{seen} items"
        line = f"{bar}  done {job.done}, skipped {job.skipped}, failed {job.failed}"
        self.stream.write(("\r" + line) if self.interactive else line + "\n")
        self.stream.flush()


def read_source(path: str) -> tuple[str, bytes]:
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"{path}: no such file")
    limit = settings.EASYMEMORY_MAX_UPLOAD_BYTES
    if file.stat().st_size > limit:
        raise CommandError(f"{path}: over the {limit}-byte limit (EASYMEMORY_MAX_UPLOAD_BYTES)")
    return file.name, file.read_bytes()


def run_job(
    options: dict[str, Any], kind: str, params: dict[str, Any], stdout: Any, upload: tuple[str, bytes] | None = None
) -> IngestJob:
    principal = system_principal(options["tenant"])
    background = options.get("background", False)
    job = services.job_create(principal=principal, kind=kind, params=params, upload=upload, enqueue=background)
    if background:
        stdout.write(f"queued job {job.id}; follow it with GET /v1/jobs/{job.id}")
        return job
    finished = services.job_run(str(job.id), on_progress=ProgressBar(sys.stderr))
    assert finished is not None
    sys.stderr.write("\n" if sys.stderr.isatty() else "")
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

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models

from accounts.models import Tenant


class JobKind(models.TextChoices):
    VAULT = "vault"
    FILE = "file"
    SLACK = "slack"
    MBOX = "mbox"
    JSON = "json"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class IngestJob(models.Model):
    """One import run. The counts describe the latest run: a resumed job counts what
    an earlier, interrupted run already stored as `skipped` (already present)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="ingest_jobs")
    kind = models.CharField(max_length=16, choices=JobKind.choices)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    total = models.PositiveIntegerField(null=True, blank=True)
    done = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    memories_created = models.PositiveIntegerField(default=0)
    memories_deleted = models.PositiveIntegerField(default=0)
    stats = models.JSONField(default=dict, blank=True)  # per-reason skip counts, e.g. {"bot": 3, "files": 2}
    errors = models.JSONField(default=list, blank=True)  # [{"item": ..., "error": ...}], capped
    error = models.TextField(blank=True, default="")
    actor = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"], name="ingestjob_tenant_created")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}:{self.status}"


class IngestUpload(models.Model):
    """The bytes of an uploaded source, kept in the database (not on a web server's disk)
    so any worker can run the job; deleted when the job finishes."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    job = models.OneToOneField(IngestJob, on_delete=models.CASCADE, related_name="upload")
    name = models.CharField(max_length=500)
    size = models.PositiveBigIntegerField()
    data = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)


class IndexedFile(models.Model):
    """What the last index run stored for one file of a vault: the incremental re-index
    compares size/mtime (cheap) and then the hash before touching the file's chunks."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    root = models.CharField(max_length=1000)
    rel_path = models.CharField(max_length=1000)
    size = models.PositiveBigIntegerField()
    mtime_ns = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    memory_ids = ArrayField(models.UUIDField(), default=list, blank=True)
    indexed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "root", "rel_path"], name="indexedfile_unique_path"),
        ]


class IngestedItem(models.Model):
    """The stable key of one imported item (Slack channel+ts, an e-mail's Message-ID, a JSON
    record's id) and the memories it became: a re-run or resumed job skips known keys."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    key_hash = models.CharField(max_length=64)
    key = models.TextField()
    memory_ids = ArrayField(models.UUIDField(), default=list, blank=True)
    job = models.ForeignKey(IngestJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key_hash"], name="ingesteditem_unique_key")]


class ImportRoot(models.Model):
    """A server directory one tenant may import from (POST /v1/index, MCP, dashboard).

    Set by the tenant's admin (only inside the operator's EASYMEMORY_IMPORT_ROOTS) or by the
    operator on the command line. Roots of two tenants never overlap (ingest/roots.py).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    path = models.CharField(max_length=1000)
    created_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["path"], name="importroot_unique_path")]
        indexes = [models.Index(fields=["tenant", "path"], name="importroot_tenant_path")]

    def __str__(self) -> str:
        return self.path

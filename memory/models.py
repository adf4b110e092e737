from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import VectorField

from accounts.models import Tenant


class Kind(models.TextChoices):
    NOTE = "note"
    MESSAGE = "message"
    DOCUMENT = "document"
    FACT = "fact"


class EnrichmentState(models.TextChoices):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class Memory(models.Model):
    """One remembered item. The row is the source of truth; embeddings, the
    full-text vector and graph links are derived from it and can be rebuilt."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memories")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.NOTE)
    content = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    tags = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    user_ref = models.CharField(max_length=200, blank=True, default="")
    agent_id = models.CharField(max_length=200, blank=True, default="")
    session_id = models.CharField(max_length=200, blank=True, default="")
    content_hash = models.CharField(max_length=64)
    importance = models.FloatField(default=0.5)
    occurred_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    search_vector = SearchVectorField(null=True, editable=False)
    enrichment_state = models.CharField(max_length=16, choices=EnrichmentState.choices, default=EnrichmentState.PENDING)
    enrichment_error = models.TextField(blank=True, default="")
    version = models.PositiveIntegerField(default=1)

    class Meta:
        # tenant_id leads every index: every query is tenant-scoped.
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "user_ref", "agent_id", "session_id", "content_hash"],
                name="memory_unique_content_per_scope",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="memory_tenant_created"),
            models.Index(fields=["tenant", "kind"], name="memory_tenant_kind"),
            models.Index(fields=["tenant", "user_ref"], name="memory_tenant_user"),
            models.Index(fields=["tenant", "occurred_at"], name="memory_tenant_occurred"),
            # search: a hit's neighbours in its conversation session (memory/search.py).
            models.Index(fields=["tenant", "session_id", "created_at"], name="memory_tenant_session"),
            models.Index(fields=["tenant", "enrichment_state"], name="memory_tenant_enrichment"),
            GinIndex(fields=["search_vector"], name="memory_search_vector"),
            GinIndex(fields=["tags"], name="memory_tags"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


class HistoryEvent(models.TextChoices):
    ADD = "ADD"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


class MemoryHistory(models.Model):
    """Every version of a memory. Outlives the memory (no FK) so deletions stay on record,
    except when an end user is forgotten, which removes this too."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    memory_id = models.UUIDField()
    event = models.CharField(max_length=8, choices=HistoryEvent.choices)
    old_content = models.TextField(null=True, blank=True)
    new_content = models.TextField(null=True, blank=True)
    old_metadata = models.JSONField(null=True, blank=True)
    new_metadata = models.JSONField(null=True, blank=True)
    user_ref = models.CharField(max_length=200, blank=True, default="")
    actor = models.CharField(max_length=200)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "memory_id", "created_at"], name="history_tenant_memory"),
            models.Index(fields=["tenant", "user_ref"], name="history_tenant_user"),
        ]


class MemoryEmbedding(models.Model):
    """One embedding of one memory under one model. Dimensions vary by model, so
    the column is an untyped vector; the HNSW index is an expression index per
    dimension (see the migration)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    memory = models.ForeignKey(Memory, on_delete=models.CASCADE, related_name="embeddings")
    model = models.CharField(max_length=200)
    dims = models.PositiveSmallIntegerField()
    embedding = VectorField()
    # The memory together with the turns before it in its session (EASYMEMORY_SEARCH_WINDOW_TURNS),
    # for the search list "window": an answer is often recognisable only with its question. Null
    # when the memory has no session or no earlier turn (the list then uses `embedding`).
    window_embedding = VectorField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["memory", "model"], name="embedding_unique_memory_model"),
        ]
        indexes = [models.Index(fields=["tenant", "model"], name="embedding_tenant_model")]


class TermStatsSnapshot(models.Model):
    """When a tenant's full-text statistics were last counted, and over how many memories.

    Derived data for ranking large tenants (memory/fulltext.py): rebuilt from the memories by
    `memory.term_stats.term_stats_rebuild`, never edited by hand."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, primary_key=True, related_name="+")
    docs = models.PositiveIntegerField()
    avgdl = models.FloatField()
    built_at = models.DateTimeField()


class TermStat(models.Model):
    """How many of a tenant's memories hold a lexeme (document frequency), as of the snapshot."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    lexeme = models.TextField()
    df = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "lexeme"], name="termstat_unique_tenant_lexeme")]


class BulkAction(models.TextChoices):
    DELETE = "delete"
    TAGS_ADD = "tags_add"
    TAGS_REMOVE = "tags_remove"
    RESCOPE = "rescope"


class BulkStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class MemoryBulkJob(models.Model):
    """One bulk action over a selection of memories, run in the background with progress.

    The selection is resolved to ids when the job is created, so the count a person confirmed
    is the set the job acts on; memories deleted meanwhile are skipped, never replaced.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=16, choices=BulkAction.choices)
    params = models.JSONField(default=dict, blank=True)
    memory_ids = ArrayField(models.UUIDField(), default=list, blank=True)
    status = models.CharField(max_length=16, choices=BulkStatus.choices, default=BulkStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    actor = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"], name="bulkjob_tenant_created")]

"""The knowledge graph: entities, relations with two time axes, mentions, merges.

Everything here is derived from memories (except relations and entities added
by hand through the API) and can be rebuilt by `easymemory reconcile`.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from pgvector.django import VectorField

from accounts.models import Tenant
from memory.models import Memory


class Origin(models.TextChoices):
    EXTRACTED = "extracted"  # found in memories: removed when no memory supports it any more
    MANUAL = "manual"  # added through the API: stays until deleted


class Entity(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=300)
    # NFKC, case-folded, whitespace-collapsed: the exact-match resolution key.
    key = models.CharField(max_length=300)
    type = models.CharField(max_length=60, default="entity")
    aliases = ArrayField(models.CharField(max_length=300), default=list, blank=True)
    # Normalised aliases, for lookups (same normalisation as `key`).
    alias_keys = ArrayField(models.CharField(max_length=300), default=list, blank=True)
    summary = models.TextField(blank=True, default="")
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.EXTRACTED)
    # Embedding of the name under the current embedding model (for near-duplicate resolution).
    embedding = VectorField(null=True, blank=True)
    embedding_model = models.CharField(max_length=200, blank=True, default="")
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)
    mention_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="entity_unique_key_per_tenant")]
        indexes = [
            models.Index(fields=["tenant", "type"], name="entity_tenant_type"),
            models.Index(fields=["tenant", "-last_seen_at", "-id"], name="entity_tenant_last_seen"),
            GinIndex(fields=["alias_keys"], name="entity_alias_keys"),
        ]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}"


class Relation(models.Model):
    """A fact `source --predicate--> target`.

    Two time axes, as in bi-temporal models: `valid_at`/`invalid_at` say when the
    fact was true in the world (null = unknown / still true); `created_at`/`expired_at`
    say when this system learned it and when it was retired (null = current record).
    A contradicting newer fact closes `invalid_at`; it never deletes the old row.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="outgoing")
    target = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="incoming")
    predicate = models.CharField(max_length=100)
    fact = models.TextField(blank=True, default="")
    confidence = models.FloatField(default=1.0)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.EXTRACTED)
    valid_at = models.DateTimeField(null=True, blank=True)
    invalid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    # The relation that closed this one's validity, if any.
    invalidated_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    memories = models.ManyToManyField(Memory, through="RelationSource", related_name="+")

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "source", "predicate"], name="relation_tenant_source_pred"),
            models.Index(fields=["tenant", "target"], name="relation_tenant_target"),
            models.Index(fields=["tenant", "-created_at"], name="relation_tenant_created"),
        ]

    def __str__(self) -> str:
        return f"{self.source_id} {self.predicate} {self.target_id}"


class RelationSource(models.Model):
    """Provenance: which memory supports which relation."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    relation = models.ForeignKey(Relation, on_delete=models.CASCADE, related_name="sources")
    memory = models.ForeignKey(Memory, on_delete=models.CASCADE, related_name="graph_relation_sources")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["relation", "memory"], name="relation_source_unique")]
        indexes = [models.Index(fields=["tenant", "memory"], name="relation_source_tenant_memory")]


class Mention(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    entity = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="mentions")
    memory = models.ForeignKey(Memory, on_delete=models.CASCADE, related_name="graph_mentions")
    text = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entity", "memory"], name="mention_unique_entity_memory")]
        indexes = [
            models.Index(fields=["tenant", "entity"], name="mention_tenant_entity"),
            models.Index(fields=["tenant", "memory"], name="mention_tenant_memory"),
        ]


class GraphExtraction(models.Model):
    """Marks a memory's current content as extracted, so the enrichment step is idempotent
    and `reconcile` can find what is missing."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    memory = models.OneToOneField(Memory, on_delete=models.CASCADE, related_name="graph_extraction")
    content_hash = models.CharField(max_length=64)
    provider = models.CharField(max_length=40)
    model = models.CharField(max_length=200, blank=True, default="")
    entities = models.PositiveIntegerField(default=0)
    relations = models.PositiveIntegerField(default=0)
    extracted_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "extracted_at"], name="graph_extraction_tenant_at")]


class EntityMerge(models.Model):
    """History of merges: what was folded into what, by whom, with the merged entity's names."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    target = models.ForeignKey(Entity, on_delete=models.SET_NULL, null=True, related_name="merges")
    merged_entity_id = models.BigIntegerField()
    merged_name = models.CharField(max_length=300)
    merged_type = models.CharField(max_length=60)
    merged_aliases = ArrayField(models.CharField(max_length=300), default=list, blank=True)
    reason = models.CharField(max_length=40, default="manual")  # manual | similarity
    actor = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "target"], name="entity_merge_tenant_target")]

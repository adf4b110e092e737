"""Every change to the graph goes through these functions.

Extraction is applied per memory in its own transaction and is idempotent: a memory
whose current content was already extracted is skipped, and re-extracting a changed
memory first withdraws what the old content supported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from pgvector.django import CosineDistance

from accounts.models import Tenant
from accounts.principal import Principal
from accounts.scoping import scoped
from audit.services import audit_record
from core.errors import InvalidInput
from graph.models import Entity, EntityMerge, GraphExtraction, Mention, Origin, Relation, RelationSource
from graph.providers import Extraction, ExtractionError, Extractor, TransientProviderError, extractor_from_settings
from graph.providers.base import SINGLE_VALUED_PREDICATES, clean_name, normalise_key, normalise_predicate
from memory.dispatch import enrichment_enqueue
from memory.models import EnrichmentState, Memory

logger = logging.getLogger(__name__)

GRAPH_ERROR_PREFIX = "graph: "
# Types whose names are identifiers: near-duplicate resolution by meaning makes no sense for them.
LITERAL_TYPES = frozenset({"url", "email", "topic"})
GENERIC_TYPE = "entity"
MAX_MERGE_SOURCES = 100


def release_db_connection() -> None:
    """Give the connection back before waiting seconds on a model: a worker must not hold
    one of PostgreSQL's few connections idle. Inside an atomic block it must stay."""
    if not connection.in_atomic_block:
        connection.close()


# --- entity resolution ------------------------------------------------------------------


def _embed_names(names: Sequence[str]) -> tuple[list[list[float]], str]:
    """Name embeddings in one batch (one model call per memory, not per name)."""
    if settings.EASYMEMORY_GRAPH_SIMILARITY > 1 or not names:
        return [], ""
    from memory import embeddings

    model = embeddings.model_name()
    return embeddings.embed_texts(list(names), model), model


def _literal(name: str, type_: str) -> bool:
    """Identifiers (URLs, e-mails, tags, @handles) only ever match exactly."""
    return type_ in LITERAL_TYPES or name.startswith("@")


def same_digits(a: str, b: str) -> bool:
    """Names that differ in their numbers are different things however close they read ("Q3 plan" / "Q4 plan")."""
    return [c for c in a if c.isdigit()] == [c for c in b if c.isdigit()]


def _unique_first_name(tenant: Tenant, key: str, type_: str) -> Entity | None:
    """A lone first name ("Marco") is the one person whose full name starts with it ("Marco Rossi"),
    when there is exactly one; with two Marcos it stays its own entity."""
    if " " in key or type_ not in {"person", GENERIC_TYPE} or not key.isalpha():
        return None
    matches = list(scoped(Entity, tenant).filter(type="person", key__startswith=key + " ")[:2])
    return matches[0] if len(matches) == 1 else None


def _similar_entity(tenant: Tenant, name: str, type_: str, vector: list[float], model: str) -> Entity | None:
    types = [type_, GENERIC_TYPE] if type_ != GENERIC_TYPE else None
    candidates = scoped(Entity, tenant).filter(embedding_model=model, embedding__isnull=False)
    candidates = candidates.exclude(type__in=LITERAL_TYPES)
    if types is not None:
        candidates = candidates.filter(type__in=types)
    best = candidates.annotate(distance=CosineDistance("embedding", vector)).order_by("distance").first()
    if best is None or 1.0 - float(best.distance) < settings.EASYMEMORY_GRAPH_SIMILARITY:
        return None
    return best if same_digits(name, best.name) else None


def _add_alias(entity: Entity, name: str) -> None:
    key = normalise_key(name)
    if key == entity.key or key in entity.alias_keys:
        return
    entity.aliases = [*entity.aliases, name]
    entity.alias_keys = [*entity.alias_keys, key]
    entity.save(update_fields=["aliases", "alias_keys"])


def entity_resolve(
    *,
    tenant: Tenant,
    name: str,
    type_: str = GENERIC_TYPE,
    origin: str = Origin.EXTRACTED,
    use_similarity: bool = True,
    embedded: tuple[list[float], str] | None = None,
) -> Entity:
    """The tenant's entity for `name`: by exact key, then alias, then a unique first-name match,
    then embedding similarity (same or generic type, above EASYMEMORY_GRAPH_SIMILARITY, same
    digits); created when none fits. A name resolved by the last two becomes an alias."""
    name = clean_name(name)
    key = normalise_key(name)
    if not key:
        raise InvalidInput("name", "an entity name must not be empty")
    entities = scoped(Entity, tenant)
    found = entities.filter(key=key).first() or entities.filter(alias_keys__contains=[key]).order_by("id").first()
    vector: list[float] | None = None
    model = ""
    if found is None and use_similarity and not _literal(name, type_):
        found = _unique_first_name(tenant, key, type_)
        if found is None:
            if embedded is None:
                vectors, model = _embed_names([name])
                embedded = (vectors[0], model) if vectors else None
            if embedded is not None:
                vector, model = embedded
                found = _similar_entity(tenant, name, type_, vector, model)
        if found is not None:
            _add_alias(found, name)
    if found is not None:
        if found.type == GENERIC_TYPE and type_ != GENERIC_TYPE:
            found.type = type_
            found.save(update_fields=["type"])
        return found
    try:
        with transaction.atomic():
            return Entity.objects.create(
                tenant=tenant, name=name, key=key, type=type_ or GENERIC_TYPE, origin=origin,
                embedding=vector, embedding_model=model,
            )  # fmt: skip
    except IntegrityError:
        # A concurrent extraction created the same key first.
        return entities.get(key=key)


# --- applying an extraction -----------------------------------------------------------


def _relation_current(qs: Any) -> Any:
    return qs.filter(invalid_at__isnull=True, expired_at__isnull=True)


def _close_contradicted(relation: Relation) -> None:
    """A single-valued fact (lives_in, works_at, ...) has one current value per source.
    The later-valid fact wins; the earlier one gets `invalid_at` and stays queryable."""
    others = _relation_current(
        scoped(Relation, relation.tenant).filter(source_id=relation.source_id, predicate=relation.predicate)
    ).exclude(pk=relation.pk)
    for other in others.select_for_update():
        if other.target_id == relation.target_id:
            continue
        new_start = relation.valid_at or relation.created_at
        old_start = other.valid_at or other.created_at
        if new_start >= old_start:
            other.invalid_at = max(new_start, old_start)
            other.invalidated_by = relation
            other.save(update_fields=["invalid_at", "invalidated_by"])
        elif relation.invalid_at is None:
            # An older memory arrived late: the fact it states ended when the current one began.
            relation.invalid_at = old_start
            relation.invalidated_by = other
            relation.save(update_fields=["invalid_at", "invalidated_by"])


def _drop_orphans(tenant: Tenant, relation_ids: Iterable[int], entity_ids: Iterable[int]) -> None:
    """Remove extracted relations no memory supports any more (reopening facts they had closed),
    and extracted entities left with neither mentions nor relations."""
    orphans = scoped(Relation, tenant).filter(pk__in=list(relation_ids), origin=Origin.EXTRACTED)
    orphans = orphans.annotate(n=Count("sources")).filter(n=0)
    orphan_ids = list(orphans.values_list("id", flat=True))
    if orphan_ids:
        scoped(Relation, tenant).filter(invalidated_by_id__in=orphan_ids).update(invalid_at=None, invalidated_by=None)
        scoped(Relation, tenant).filter(pk__in=orphan_ids).delete()
    entity_ids = list(entity_ids)
    if not entity_ids:
        return
    touched = scoped(Entity, tenant).filter(pk__in=entity_ids)
    _refresh_mention_counts(tenant, entity_ids)
    touched.filter(origin=Origin.EXTRACTED, mention_count=0).exclude(
        Exists(scoped(Relation, tenant).filter(Q(source_id=OuterRef("pk")) | Q(target_id=OuterRef("pk"))))
    ).delete()


def _refresh_mention_counts(tenant: Tenant, entity_ids: Sequence[int], *, seen: bool = False) -> None:
    """Recount mentions of these entities in one UPDATE (and mark them seen now, when asked)."""
    if not entity_ids:
        return
    count = (
        scoped(Mention, tenant).filter(entity_id=OuterRef("pk"))
        .values("entity_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    changes: dict[str, Any] = {"mention_count": Coalesce(Subquery(count), 0)}
    if seen:
        changes["last_seen_at"] = timezone.now()
    scoped(Entity, tenant).filter(pk__in=list(entity_ids)).update(**changes)


def _withdraw_memories(tenant: Tenant, memory_ids: Sequence[Any]) -> None:
    """Take back everything these memories contributed: their mentions and their support of relations."""
    relation_ids = set(
        scoped(RelationSource, tenant).filter(memory_id__in=memory_ids).values_list("relation_id", flat=True)
    )
    entity_ids = set(scoped(Mention, tenant).filter(memory_id__in=memory_ids).values_list("entity_id", flat=True))
    if relation_ids:
        rel = scoped(Relation, tenant).filter(pk__in=relation_ids)
        entity_ids |= set(rel.values_list("source_id", flat=True)) | set(rel.values_list("target_id", flat=True))
    scoped(RelationSource, tenant).filter(memory_id__in=memory_ids).delete()
    scoped(Mention, tenant).filter(memory_id__in=memory_ids).delete()
    _drop_orphans(tenant, relation_ids, entity_ids)


def _candidate_names(extraction: Extraction) -> dict[str, str]:
    """Names that may need similarity resolution, by key."""
    names: dict[str, str] = {normalise_key(e.name): e.name for e in extraction.entities if not _literal(e.name, e.type)}
    for r in extraction.relations:
        for name in (r.source, r.target):
            if not _literal(name, GENERIC_TYPE):
                names.setdefault(normalise_key(name), name)
    return names


def _apply(
    memory: Memory,
    extraction: Extraction,
    extractor: Extractor,
    precomputed: dict[str, tuple[list[float], str]] | None = None,
) -> GraphExtraction:
    tenant = memory.tenant
    _withdraw_memories(tenant, [memory.pk])
    resolved: dict[str, Entity] = {}
    names = _candidate_names(extraction)
    all_keys = list(names) + [normalise_key(e.name) for e in extraction.entities if _literal(e.name, e.type)]
    known = scoped(Entity, tenant).filter(Q(key__in=all_keys) | Q(alias_keys__overlap=all_keys)).order_by("-id")
    for found in known:
        # Keys win over aliases (the same order as entity_resolve): aliases first, keys overwrite.
        for k in found.alias_keys:
            resolved.setdefault(k, found)
    for found in known:
        resolved[found.key] = found
    for k in resolved:
        names.pop(k, None)
    embedded = {key: precomputed[key] for key in names if precomputed and key in precomputed}
    missing = [key for key in names if key not in embedded]
    vectors, model = _embed_names([names[key] for key in missing])
    embedded.update({key: (vector, model) for key, vector in zip(missing, vectors, strict=False)})

    def entity_for(name: str, type_: str) -> Entity:
        key = normalise_key(name)
        if key not in resolved:
            resolved[key] = entity_resolve(tenant=tenant, name=name, type_=type_, embedded=embedded.get(key))
        entity = resolved[key]
        if entity.type == GENERIC_TYPE and type_ != GENERIC_TYPE:
            entity.type = type_
            entity.save(update_fields=["type"])
        return entity

    mentions: dict[int, str] = {}
    for item in extraction.entities:
        entity = entity_for(item.name, item.type)
        for alias in item.aliases:
            _add_alias(entity, alias)
        mentions.setdefault(entity.pk, (item.text or item.name)[:300])
    relations = 0
    for extracted in extraction.relations:
        source = entity_for(extracted.source, GENERIC_TYPE)
        target = entity_for(extracted.target, GENERIC_TYPE)
        if source.pk == target.pk:
            continue
        mentions.setdefault(source.pk, extracted.source[:300])
        mentions.setdefault(target.pk, extracted.target[:300])
        predicate = normalise_predicate(extracted.predicate)
        existing = _relation_current(
            scoped(Relation, tenant).filter(source=source, target=target, predicate=predicate)
        ).first()
        if existing is None:
            existing = Relation.objects.create(
                tenant=tenant, source=source, target=target, predicate=predicate, fact=extracted.fact,
                confidence=extracted.confidence, valid_at=extracted.valid_at or memory.occurred_at or memory.created_at,
                invalid_at=extracted.invalid_at,
            )  # fmt: skip
            if extracted.invalid_at is None and (extracted.replaces_previous or predicate in SINGLE_VALUED_PREDICATES):
                _close_contradicted(existing)
        elif extracted.confidence > existing.confidence:
            existing.confidence = extracted.confidence
            existing.save(update_fields=["confidence"])
        RelationSource.objects.get_or_create(tenant=tenant, relation=existing, memory=memory)
        relations += 1
    Mention.objects.bulk_create(
        [Mention(tenant=tenant, entity_id=eid, memory=memory, text=text) for eid, text in mentions.items()],
        ignore_conflicts=True,
    )
    _refresh_mention_counts(tenant, list(mentions), seen=True)
    record, _ = GraphExtraction.objects.update_or_create(
        memory=memory,
        defaults={
            "tenant": tenant, "content_hash": memory.content_hash, "provider": extractor.name,
            "model": extractor.model, "entities": len(mentions), "relations": relations,
        },
    )  # fmt: skip
    return record


@dataclass
class ExtractOutcome:
    extracted: int = 0
    skipped: int = 0
    failed: int = 0


def graph_extract_memories(memory_ids: Sequence[str], *, extractor: Extractor | None = None) -> ExtractOutcome:
    """The enrichment step: extract entities and relations from these memories.

    Skips memories gone or already extracted for their current content. A provider
    failure is recorded on the memory (`enrichment_state=failed`, `enrichment_error`
    starting with "graph: ") and retried by `easymemory reconcile`; it never raises,
    so one bad memory does not hold back its batch.
    """
    extractor = extractor or extractor_from_settings()
    outcome = ExtractOutcome()
    rows = list(
        Memory.objects.filter(pk__in=list(memory_ids)).values_list(  # unscoped: the worker acts on ids it was given
            "id", "content", "content_hash", "graph_extraction__content_hash", "tenant_id"
        )
    )
    todo = [(mid, content, digest) for mid, content, digest, done, _ in rows if done != digest]
    tenant_of = {mid: tenant_id for mid, _, _, _, tenant_id in rows}
    outcome.skipped = len(rows) - len(todo)
    if not todo:
        return outcome
    if extractor.remote:
        release_db_connection()
    results: dict[Any, Extraction] = {}
    errors: dict[Any, str] = {}
    for mid, content, _ in todo:
        try:
            results[mid] = extractor.extract(content)
        except (ExtractionError, TransientProviderError) as exc:
            errors[mid] = str(exc)
    precomputed = _embed_new_names(results, tenant_of)
    for mid, _, digest in todo:
        if mid in errors:
            logger.warning("graph extraction failed for memory %s: %s", mid, errors[mid])
            Memory.objects.filter(pk=mid).update(  # unscoped: id given to the worker
                enrichment_state=EnrichmentState.FAILED, enrichment_error=(GRAPH_ERROR_PREFIX + errors[mid])[:2000]
            )
            outcome.failed += 1
            continue
        with transaction.atomic():
            memory = Memory.objects.select_for_update().filter(pk=mid).select_related("tenant").first()  # unscoped: id
            if memory is None or memory.content_hash != digest:
                continue  # deleted or changed while we waited: the newer task handles it
            _apply(memory, results[mid], extractor, precomputed.get(memory.tenant_id))
            if memory.enrichment_state == EnrichmentState.FAILED and memory.enrichment_error.startswith(
                GRAPH_ERROR_PREFIX
            ):
                done = Memory.objects.filter(pk=mid)  # unscoped: the id the worker was given
                done.update(enrichment_state=EnrichmentState.DONE, enrichment_error="")
            outcome.extracted += 1
    return outcome


def _embed_new_names(
    results: dict[Any, Extraction], tenant_of: dict[Any, UUID]
) -> dict[UUID, dict[str, tuple[list[float], str]]]:
    """One embedding call for the whole batch: names not yet known in their tenant (by key or alias).
    Per-memory calls would pay the model's per-call overhead dozens of times per batch."""
    wanted: dict[UUID, dict[str, str]] = {}
    for mid, extraction in results.items():
        wanted.setdefault(tenant_of[mid], {}).update(_candidate_names(extraction))
    texts: list[tuple[UUID, str, str]] = []
    for tenant_id, names in wanted.items():
        keys = list(names)
        known = Entity.objects.filter(tenant_id=tenant_id).filter(  # unscoped: by tenant_id, a worker has no Tenant
            Q(key__in=keys) | Q(alias_keys__overlap=keys)
        )
        for key, alias_keys in known.values_list("key", "alias_keys"):
            for k in (key, *alias_keys):
                names.pop(k, None)
        texts += [(tenant_id, key, name) for key, name in names.items()]
    vectors, model = _embed_names([name for _, _, name in texts])
    out: dict[UUID, dict[str, tuple[list[float], str]]] = {}
    for (tenant_id, key, _), vector in zip(texts, vectors, strict=False):
        out.setdefault(tenant_id, {})[key] = (vector, model)
    return out


def graph_enrichment_hook(memory_ids: Sequence[str]) -> None:
    graph_extract_memories(memory_ids)


def graph_memories_deleting(*, tenant: Tenant, memory_ids: Sequence[Any]) -> None:
    """Called by memory deletion (in its transaction, before the rows go): removes the memories'
    mentions and the relations only they supported; entities left with nothing go too."""
    if memory_ids:
        _withdraw_memories(tenant, list(memory_ids))


def graph_reconcile(*, limit: int = 10_000) -> int:
    """Re-queue memories whose graph extraction is missing, stale or failed. Returns the count."""
    stale = Memory.objects.filter(  # unscoped: maintenance over all tenants
        Q(graph_extraction__isnull=True) | ~Q(graph_extraction__content_hash=F("content_hash"))
    )
    ids = [str(mid) for mid in stale.order_by("created_at").values_list("id", flat=True)[:limit]]
    if ids:
        enrichment_enqueue(ids)
    return len(ids)


# --- API writes -------------------------------------------------------------------------


def _entity_from_ref(principal: Principal, ref: Any, field: str) -> Entity:
    entities = scoped(Entity, principal.tenant)
    if isinstance(ref, int) and not isinstance(ref, bool):
        found = entities.filter(pk=ref).first()
        if found is None:
            raise InvalidInput(field, "no such entity")
        return found
    if isinstance(ref, dict) and isinstance(ref.get("name"), str) and ref["name"].strip():
        type_ = ref.get("type") or GENERIC_TYPE
        if not isinstance(type_, str) or len(type_) > 60:
            raise InvalidInput(f"{field}.type", "type must be a string of at most 60 characters")
        return entity_resolve(
            tenant=principal.tenant, name=ref["name"], type_=normalise_predicate(type_), origin=Origin.MANUAL,
            use_similarity=False,
        )  # fmt: skip
    raise InvalidInput(field, 'give an entity id or {"name": ..., "type": ...}')


@transaction.atomic
def relation_add(
    *,
    principal: Principal,
    source: Any,
    target: Any,
    predicate: str,
    fact: str = "",
    confidence: float = 1.0,
    valid_at: datetime | None = None,
    invalid_at: datetime | None = None,
) -> Relation:
    """Add a fact by hand. Single-valued predicates close the current value, as extraction does."""
    if not isinstance(predicate, str) or not predicate.strip():
        raise InvalidInput("predicate", "predicate must be a non-empty string")
    if not 0.0 <= confidence <= 1.0:
        raise InvalidInput("confidence", "confidence must be between 0 and 1")
    if valid_at and invalid_at and invalid_at <= valid_at:
        raise InvalidInput("invalid_at", "invalid_at must be after valid_at")
    source_entity = _entity_from_ref(principal, source, "source")
    target_entity = _entity_from_ref(principal, target, "target")
    if source_entity.pk == target_entity.pk:
        raise InvalidInput("target", "source and target must be different entities")
    relation = Relation.objects.create(
        tenant=principal.tenant, source=source_entity, target=target_entity,
        predicate=normalise_predicate(predicate), fact=fact[:2000], confidence=confidence,
        origin=Origin.MANUAL, valid_at=valid_at or timezone.now(), invalid_at=invalid_at,
    )  # fmt: skip
    if invalid_at is None and relation.predicate in SINGLE_VALUED_PREDICATES:
        _close_contradicted(relation)
    audit_record(principal=principal, action="graph.relation.add", target_type="relation", target_id=str(relation.pk))
    return relation


@transaction.atomic
def relation_delete(*, principal: Principal, relation: Relation) -> Relation:
    """Retire a relation: `expired_at` is set (system time), the row stays for history.
    Facts it had closed become current again."""
    relation = scoped(Relation, principal.tenant).select_for_update().get(pk=relation.pk)
    if relation.expired_at is None:
        relation.expired_at = timezone.now()
        relation.save(update_fields=["expired_at"])
        reopened = scoped(Relation, principal.tenant).filter(invalidated_by=relation, expired_at__isnull=True)
        reopened.update(invalid_at=None, invalidated_by=None)
    audit_record(
        principal=principal, action="graph.relation.delete", target_type="relation", target_id=str(relation.pk)
    )
    return relation


@transaction.atomic
def entity_delete(*, principal: Principal, entity: Entity) -> None:
    """Delete an entity with its mentions and relations. Memories stay."""
    entity_id = entity.pk
    scoped(Entity, principal.tenant).filter(pk=entity_id).delete()
    audit_record(principal=principal, action="graph.entity.delete", target_type="entity", target_id=str(entity_id))


@transaction.atomic
def entity_merge(*, principal: Principal, target: Entity, sources: Sequence[Entity], reason: str = "manual") -> Entity:
    """Fold `sources` into `target`: mentions, relations and names move over, each merge is recorded."""
    if not sources:
        raise InvalidInput("sources", "give at least one entity to merge")
    if len(sources) > MAX_MERGE_SOURCES:
        raise InvalidInput("sources", f"at most {MAX_MERGE_SOURCES} entities per merge")
    tenant = principal.tenant
    target = scoped(Entity, tenant).select_for_update().get(pk=target.pk)
    for source in sources:
        if source.pk == target.pk:
            raise InvalidInput("sources", "an entity cannot be merged into itself")
    for source in scoped(Entity, tenant).select_for_update().filter(pk__in=[s.pk for s in sources]).order_by("pk"):
        EntityMerge.objects.create(
            tenant=tenant, target=target, merged_entity_id=source.pk, merged_name=source.name,
            merged_type=source.type, merged_aliases=source.aliases, reason=reason, actor=principal.actor,
        )  # fmt: skip
        # Mentions of both in one memory would clash on the unique constraint: keep the target's.
        both = scoped(Mention, tenant).filter(entity=target).values("memory_id")
        scoped(Mention, tenant).filter(entity=source, memory_id__in=both).delete()
        scoped(Mention, tenant).filter(entity=source).update(entity=target)
        scoped(Relation, tenant).filter(source=source).update(source=target)
        scoped(Relation, tenant).filter(target=source).update(target=target)
        for name in [source.name, *source.aliases]:
            _add_alias(target, name)
        if target.type == GENERIC_TYPE and source.type != GENERIC_TYPE:
            target.type = source.type
        if source.first_seen_at < target.first_seen_at:
            target.first_seen_at = source.first_seen_at
        source.delete()
    # A merge can turn a relation into a self-loop (A knows B, A merged with B): drop those.
    scoped(Relation, tenant).filter(source=target, target=target).delete()
    target.last_seen_at = max(target.last_seen_at, timezone.now())
    target.save(update_fields=["type", "first_seen_at", "last_seen_at"])
    _refresh_mention_counts(tenant, [target.pk])
    audit_record(
        principal=principal, action="graph.entity.merge", target_type="entity", target_id=str(target.pk),
        detail={"merged": [s.pk for s in sources]},
    )  # fmt: skip
    target.refresh_from_db()
    return target

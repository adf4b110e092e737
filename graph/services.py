"""Every change to the graph goes through these functions.

Extraction is applied per memory in its own transaction and is idempotent: a memory
whose current content was already extracted is skipped, and re-extracting a changed
memory first withdraws what the old content supported.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, Field, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from pgvector.django import CosineDistance

from accounts.models import Tenant
from accounts.principal import Principal
from accounts.scoping import scoped
from audit.services import audit_record
from core.errors import InvalidInput, PayloadTooLarge
from graph.models import Entity, EntityMerge, GraphExtraction, Mention, Origin, Relation, RelationSource
from graph.providers import Extraction, ExtractionError, Extractor, TransientProviderError, extractor_from_settings
from graph.providers.base import (
    MAX_NAME,
    MAX_PREDICATE,
    SINGLE_VALUED_PREDICATES,
    clean_name,
    normalise_key,
    normalise_predicate,
)
from memory.dispatch import enrichment_enqueue
from memory.models import EnrichmentState, Memory
from memory.redaction import is_placeholder

logger = logging.getLogger(__name__)

GRAPH_ERROR_PREFIX = "graph: "
# Types whose names are identifiers: near-duplicate resolution by meaning makes no sense for them.
LITERAL_TYPES = frozenset({"url", "email", "topic"})
GENERIC_TYPE = "entity"
MAX_MERGE_SOURCES = 100
SYMMETRIC_PREDICATES = ("married_to", "knows")


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


def _close_contradicted(relation: Relation, among: Sequence[int] | None = None) -> None:
    """A single-valued fact (lives_in, works_at, ...) has one current value per source.
    The later-valid fact wins; the earlier one gets `invalid_at` and stays queryable.
    `among` limits the rivals to these relations (an import weighs only the facts held before it)."""
    others = _relation_current(
        scoped(Relation, relation.tenant).filter(source_id=relation.source_id, predicate=relation.predicate)
    ).exclude(pk=relation.pk)
    if among is not None:
        others = others.filter(pk__in=list(among))
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


def _close_ended(ending: Relation, predicates: Sequence[str]) -> None:
    """`ending` ("Marco left Acme") closes the current relations of these predicates between the
    same two entities (works_at Marco → Acme) when it began, without naming a successor. Nothing
    current, nothing closed: an ending alone records no fact of the ended kind. Closed relations
    point at `ending`, so withdrawing its memory re-opens them."""
    moment = ending.valid_at or ending.created_at
    pair = Q(source_id=ending.source_id, target_id=ending.target_id)
    # A marriage ends whichever of the two it was recorded from.
    reverse = Q(source_id=ending.target_id, target_id=ending.source_id, predicate__in=SYMMETRIC_PREDICATES)
    current = _relation_current(
        scoped(Relation, ending.tenant).filter(pair | reverse).filter(predicate__in=list(predicates))
    ).exclude(pk=ending.pk)
    for other in current.select_for_update():
        if other.valid_at is not None and other.valid_at > moment:
            continue  # it began after this ending: a later return, not what ended
        other.invalid_at = moment
        other.invalidated_by = ending
        other.save(update_fields=["invalid_at", "invalidated_by"])


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


def without_placeholders(extraction: Extraction) -> Extraction:
    """The extraction minus every entity, alias and relation with a redaction marker for a name:
    whatever the provider, a secret's placeholder never becomes a node of the graph."""
    entities = [
        replace(e, aliases=tuple(a for a in e.aliases if not is_placeholder(a)))
        for e in extraction.entities
        if not is_placeholder(e.name)
    ]
    relations = [r for r in extraction.relations if not (is_placeholder(r.source) or is_placeholder(r.target))]
    return Extraction(entities=entities, relations=relations)


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
        if extracted.ends:
            _close_ended(existing, [normalise_predicate(p) for p in extracted.ends])
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
            results[mid] = without_placeholders(extractor.extract(content))
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
            if GraphExtraction.objects.filter(memory_id=mid, content_hash=digest).exists():  # unscoped: id given
                outcome.skipped += 1  # an import brought its graph meanwhile: extracting would replace it
                continue
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


# --- importing an exported graph -------------------------------------------------------

MAX_IMPORT_ALIASES = 1_000
MAX_IMPORT_FACT = 10_000
MAX_IMPORT_SUMMARY = 10_000
MAX_IMPORT_REFS = 1_000  # mentions / supported relations of one memory
IMPORT_CHUNK = 1_000


@dataclass(frozen=True)
class EntityImport:
    """An entity as an export holds it; `ref` is its id in the exporting tenant."""

    ref: int
    name: str
    type: str = GENERIC_TYPE
    aliases: tuple[str, ...] = ()
    summary: str = ""
    origin: str = Origin.EXTRACTED
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None


@dataclass(frozen=True)
class RelationImport:
    ref: int
    source: int  # entity refs
    target: int
    predicate: str
    fact: str = ""
    confidence: float = 1.0
    origin: str = Origin.EXTRACTED
    valid_at: datetime | None = None
    invalid_at: datetime | None = None
    created_at: datetime | None = None
    expired_at: datetime | None = None
    invalidated_by: int | None = None  # a relation ref


@dataclass(frozen=True)
class MemoryGraphImport:
    """What one exported memory contributes: its mentions (entity ref, text), the relations it
    supports (relation refs), and the extractor that produced them, when it was up to date."""

    memory: uuid.UUID  # the memory's id in the export
    mentions: tuple[tuple[int, str], ...] = ()
    supports: tuple[int, ...] = ()
    provider: str = ""
    model: str = ""


@dataclass
class GraphImport:
    entities: list[EntityImport] = field(default_factory=list)
    relations: list[RelationImport] = field(default_factory=list)
    memories: list[MemoryGraphImport] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entities) + len(self.relations) + len(self.memories)


@dataclass
class GraphImportOutcome:
    entities_created: int = 0
    entities_merged: int = 0  # resolved to an entity the tenant already had
    relations_created: int = 0
    relations_merged: int = 0
    mentions: int = 0
    supports: int = 0
    dropped: int = 0  # references to memories this import did not store, and self-loops after merging


def _check_text(value: str, limit: int, name: str, *, required: bool = False) -> None:
    if required and not value.strip():
        raise InvalidInput(name, f"{name} must not be empty")
    if len(value) > limit:
        raise PayloadTooLarge(name, f"{name} is over {limit} characters")
    if "\x00" in value:
        raise InvalidInput(name, f"{name} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(name, f"{name} is not valid Unicode (a lone surrogate)") from exc


def graph_import_validate(section: GraphImport, memory_refs: set[uuid.UUID] | None = None) -> None:
    """Refuse (InvalidInput naming the record) a section that is inconsistent: duplicate or dangling
    ids, out-of-range values, oversized texts; with `memory_refs`, references to memories the file
    does not hold. Nothing is read from or written to the database."""
    entity_refs: set[int] = set()
    for item in section.entities:
        name = f"entity {item.ref}"
        if item.ref in entity_refs:
            raise InvalidInput(name, "the same entity id appears twice")
        entity_refs.add(item.ref)
        _check_text(item.name, MAX_NAME, f"{name}.name", required=True)
        if not normalise_key(item.name):
            raise InvalidInput(f"{name}.name", "an entity name must not be empty")
        _check_text(item.type, 60, f"{name}.entity_type", required=True)
        if len(item.aliases) > MAX_IMPORT_ALIASES:
            raise PayloadTooLarge(f"{name}.aliases", f"at most {MAX_IMPORT_ALIASES} aliases")
        for alias in item.aliases:
            _check_text(alias, MAX_NAME, f"{name}.aliases", required=True)
        _check_text(item.summary, MAX_IMPORT_SUMMARY, f"{name}.summary")
        if item.origin not in Origin.values:
            raise InvalidInput(f"{name}.origin", f"origin must be one of {', '.join(Origin.values)}")
    relation_refs = {rel.ref for rel in section.relations}
    if len(relation_refs) != len(section.relations):
        raise InvalidInput("relation", "the same relation id appears twice")
    for rel in section.relations:
        name = f"relation {rel.ref}"
        for end in ("source", "target"):
            if getattr(rel, end) not in entity_refs:
                raise InvalidInput(f"{name}.{end}", f"entity {getattr(rel, end)} is not in the file")
        if rel.source == rel.target:
            raise InvalidInput(f"{name}.target", "source and target must be different entities")
        _check_text(rel.predicate, MAX_PREDICATE, f"{name}.predicate", required=True)
        _check_text(rel.fact, MAX_IMPORT_FACT, f"{name}.fact")
        if not 0.0 <= rel.confidence <= 1.0:
            raise InvalidInput(f"{name}.confidence", "confidence must be between 0 and 1")
        if rel.origin not in Origin.values:
            raise InvalidInput(f"{name}.origin", f"origin must be one of {', '.join(Origin.values)}")
        if rel.invalidated_by is not None and rel.invalidated_by not in relation_refs:
            raise InvalidInput(f"{name}.invalidated_by", f"relation {rel.invalidated_by} is not in the file")
    seen: set[uuid.UUID] = set()
    for part in section.memories:
        name = f"memory {part.memory}"
        if part.memory in seen:
            raise InvalidInput(name, "the graph of one memory appears twice")
        seen.add(part.memory)
        if memory_refs is not None and part.memory not in memory_refs:
            raise InvalidInput(name, "no memory with this id in the file")
        if len(part.mentions) > MAX_IMPORT_REFS or len(part.supports) > MAX_IMPORT_REFS:
            raise PayloadTooLarge(f"{name}.graph", f"at most {MAX_IMPORT_REFS} mentions and supported relations")
        for ref, text in part.mentions:
            if ref not in entity_refs:
                raise InvalidInput(f"{name}.graph.mentions", f"entity {ref} is not in the file")
            _check_text(text, MAX_NAME, f"{name}.graph.mentions")
        for ref in part.supports:
            if ref not in relation_refs:
                raise InvalidInput(f"{name}.graph.supports", f"relation {ref} is not in the file")
        _check_text(part.provider, 40, f"{name}.graph.provider")
        _check_text(part.model, 200, f"{name}.graph.model")


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), IMPORT_CHUNK):
        yield values[start : start + IMPORT_CHUNK]


def _update_columns(tenant: Tenant, rows: Sequence[Entity] | Sequence[Relation], fields: Sequence[str]) -> None:
    """Write these fields of the tenant's rows, one UPDATE ... FROM (VALUES ...) per chunk. Django's
    bulk_update builds a CASE per row and field, whose compilation took seconds for a few thousand rows."""
    if not rows:
        return
    meta = type(rows[0])._meta
    columns = [column for name in fields if isinstance(column := meta.get_field(name), Field)]
    quote = connection.ops.quote_name
    names = ", ".join(["id", *(quote(c.attname) for c in columns)])
    assign = ", ".join(f"{quote(c.attname)} = v.{quote(c.attname)}::{c.db_type(connection)}" for c in columns)
    with connection.cursor() as cursor:
        for chunk in _chunks(rows):
            values = ", ".join(["(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"] * len(chunk))
            params: list[Any] = []
            for row in chunk:
                params.append(row.pk)
                params += [c.get_db_prep_save(getattr(row, c.attname), connection) for c in columns]
            # scoped: WHERE t.tenant_id = %s
            cursor.execute(
                f"UPDATE {quote(meta.db_table)} AS t SET {assign} FROM (VALUES {values}) AS v({names})"  # noqa: S608 - names from the model
                " WHERE t.id = v.id::bigint AND t.tenant_id = %s",
                [*params, tenant.pk],
            )


def _import_entities(tenant: Tenant, items: list[EntityImport], outcome: GraphImportOutcome) -> dict[int, Entity]:
    """Resolve each imported entity to the tenant's entity with the same key (then alias), as
    entity_resolve does without similarity; create the rest. Names, aliases, types and seen-times merge."""
    wanted = {normalise_key(clean_name(item.name)) for item in items}
    found: dict[str, Entity] = {}
    for chunk in _chunks(sorted(wanted)):
        rows = list(scoped(Entity, tenant).filter(Q(key__in=chunk) | Q(alias_keys__overlap=chunk)).order_by("id"))
        for row in rows:  # keys win over aliases (entity_resolve's order)
            for alias in row.alias_keys:
                found.setdefault(alias, row)
        for row in rows:
            found[row.key] = row
    existing = {key: entity for key, entity in found.items() if key in wanted}
    new: dict[str, Entity] = {}
    for item in items:
        key = normalise_key(clean_name(item.name))
        if key not in existing and key not in new:
            new[key] = Entity(
                tenant=tenant, name=clean_name(item.name), key=key, type=item.type, origin=item.origin,
                summary=item.summary,
            )  # fmt: skip
    # ignore_conflicts: a concurrent extraction may create a key meanwhile; it is then merged into.
    Entity.objects.bulk_create(list(new.values()), ignore_conflicts=True, batch_size=IMPORT_CHUNK)
    created_keys = set(new)
    for chunk in _chunks(sorted(new)):
        for row in scoped(Entity, tenant).filter(key__in=chunk):
            existing[row.key] = row
    mapping: dict[int, Entity] = {}
    changed: dict[int, Entity] = {}
    for item in items:
        key = normalise_key(clean_name(item.name))
        entity = existing[key]
        mapping[item.ref] = entity
        # Created here (its seen-times are the file's) or resolved to an entity the tenant had.
        fresh = key in created_keys and entity.pk not in changed
        if fresh:
            outcome.entities_created += 1
        else:
            outcome.entities_merged += 1
        for alias in (item.name, *item.aliases):
            alias_key = normalise_key(alias)
            if alias_key and alias_key != entity.key and alias_key not in entity.alias_keys:
                entity.aliases = [*entity.aliases, clean_name(alias)]
                entity.alias_keys = [*entity.alias_keys, alias_key]
        if entity.type == GENERIC_TYPE and item.type != GENERIC_TYPE:
            entity.type = item.type
        if item.origin == Origin.MANUAL:
            entity.origin = Origin.MANUAL  # a hand-made entity stays until deleted, wherever it lands
        if not entity.summary and item.summary:
            entity.summary = item.summary
        if item.first_seen_at is not None and (fresh or item.first_seen_at < entity.first_seen_at):
            entity.first_seen_at = item.first_seen_at
        if item.last_seen_at is not None and (fresh or item.last_seen_at > entity.last_seen_at):
            entity.last_seen_at = item.last_seen_at
        changed[entity.pk] = entity
    _update_columns(
        tenant,
        list(changed.values()),
        ["aliases", "alias_keys", "type", "origin", "summary", "first_seen_at", "last_seen_at"],
    )
    return mapping


def _import_relations(
    tenant: Tenant, items: list[RelationImport], entities: dict[int, Entity], outcome: GraphImportOutcome
) -> dict[int, Relation]:
    """Create the imported relations with their four times; one that the tenant already holds (the
    same current fact, or the same fact with the same interval) is merged into instead."""
    sources = sorted({entities[item.source].pk for item in items})
    before: list[Relation] = []
    for chunk in _chunks(sources):
        before += list(scoped(Relation, tenant).filter(source_id__in=chunk).order_by("id"))
    current: dict[tuple[int, int, str], Relation] = {}
    exact: dict[tuple[Any, ...], Relation] = {}

    def remember(rel: Relation) -> None:
        if rel.invalid_at is None and rel.expired_at is None:
            current.setdefault((rel.source_id, rel.target_id, rel.predicate), rel)
        exact.setdefault(
            (rel.source_id, rel.target_id, rel.predicate, rel.valid_at, rel.invalid_at, rel.expired_at), rel
        )

    for rel in before:
        remember(rel)
    mapping: dict[int, Relation] = {}
    created: list[tuple[RelationImport, Relation]] = []
    raised: dict[int, Relation] = {}
    for item in items:
        source, target = entities[item.source], entities[item.target]
        if source.pk == target.pk:
            outcome.dropped += 1  # two imported entities resolved to one: the fact would be a self-loop
            continue
        predicate = normalise_predicate(item.predicate)
        is_current = item.invalid_at is None and item.expired_at is None
        match = (current.get((source.pk, target.pk, predicate)) if is_current else None) or exact.get(
            (source.pk, target.pk, predicate, item.valid_at, item.invalid_at, item.expired_at)
        )
        if match is not None:
            mapping[item.ref] = match
            outcome.relations_merged += 1
            if item.confidence > match.confidence:
                match.confidence = item.confidence
                raised[match.pk] = match
            continue
        relation = Relation(
            tenant=tenant, source=source, target=target, predicate=predicate, fact=item.fact,
            confidence=item.confidence, origin=item.origin, valid_at=item.valid_at, invalid_at=item.invalid_at,
            expired_at=item.expired_at,
        )  # fmt: skip
        mapping[item.ref] = relation
        created.append((item, relation))  # not matched by later records: the file's own rows stay distinct
    Relation.objects.bulk_create([rel for _, rel in created], batch_size=IMPORT_CHUNK)
    outcome.relations_created = len(created)
    for item, rel in created:
        # auto_now_add ignored the exported time on insert: put it back.
        rel.created_at = item.created_at or rel.created_at
        link = mapping.get(item.invalidated_by) if item.invalidated_by is not None else None
        rel.invalidated_by = link if link is not None and link.pk != rel.pk else None
    _update_columns(tenant, [rel for _, rel in created], ["created_at", "invalidated_by"])
    _update_columns(tenant, list(raised.values()), ["confidence"])
    # Facts the tenant held before: a single-valued one contradicted by an imported current fact is
    # closed as extraction would close it. The imported facts keep the intervals they came with.
    for _, rel in created:
        if rel.invalid_at is None and rel.expired_at is None and rel.predicate in SINGLE_VALUED_PREDICATES:
            rivals = [
                other.pk for other in before
                if other.source_id == rel.source_id and other.predicate == rel.predicate
                and other.target_id != rel.target_id and other.invalid_at is None and other.expired_at is None
            ]  # fmt: skip
            if rivals:
                _close_contradicted(rel, among=rivals)
    return mapping


@transaction.atomic
def graph_import(
    *, principal: Principal, section: GraphImport, memory_map: dict[uuid.UUID, uuid.UUID]
) -> GraphImportOutcome:
    """Bring an exported graph into the principal's tenant, all-or-nothing.

    `memory_map` maps the export's memory ids to the memories this import stored (or found as
    duplicates) in the tenant; mentions and supports of other memories are dropped and counted.
    Entities merge with the tenant's by name key or alias; a memory whose extraction came along is
    marked extracted, so enrichment does not redo (and replace) it.
    """
    graph_import_validate(section)
    tenant = principal.tenant
    outcome = GraphImportOutcome()
    entities = _import_entities(tenant, section.entities, outcome)
    relations = _import_relations(tenant, section.relations, entities, outcome)
    targets = sorted({memory_map[item.memory] for item in section.memories if item.memory in memory_map})
    present: dict[uuid.UUID, str] = {}
    for chunk in _chunks(targets):
        present.update(scoped(Memory, tenant).filter(pk__in=chunk).values_list("id", "content_hash"))
    mentions: dict[tuple[int, uuid.UUID], Mention] = {}
    supports: dict[tuple[int, uuid.UUID], RelationSource] = {}
    extracted: list[GraphExtraction] = []
    names = {item.ref: clean_name(item.name) for item in section.entities}
    for item in section.memories:
        memory_id = memory_map.get(item.memory)
        if memory_id is None or memory_id not in present:
            outcome.dropped += len(item.mentions) + len(item.supports)
            continue
        for ref, text in item.mentions:
            entity = entities[ref]
            mentions.setdefault(
                (entity.pk, memory_id),
                Mention(tenant=tenant, entity=entity, memory_id=memory_id, text=text or names[ref]),
            )
        for ref in item.supports:
            relation = relations.get(ref)
            if relation is None:
                outcome.dropped += 1
                continue
            supports.setdefault(
                (relation.pk, memory_id), RelationSource(tenant=tenant, relation=relation, memory_id=memory_id)
            )
        if item.provider:
            extracted.append(
                GraphExtraction(
                    tenant=tenant, memory_id=memory_id, content_hash=present[memory_id], provider=item.provider,
                    model=item.model, entities=len({entities[ref].pk for ref, _ in item.mentions}),
                    relations=len(item.supports),
                )  # fmt: skip
            )
    Mention.objects.bulk_create(list(mentions.values()), ignore_conflicts=True, batch_size=IMPORT_CHUNK)
    RelationSource.objects.bulk_create(list(supports.values()), ignore_conflicts=True, batch_size=IMPORT_CHUNK)
    # A memory the worker extracted meanwhile keeps its own record (its mentions are merged above).
    GraphExtraction.objects.bulk_create(extracted, ignore_conflicts=True, batch_size=IMPORT_CHUNK)
    outcome.mentions, outcome.supports = len(mentions), len(supports)
    touched = sorted({entity.pk for entity in entities.values()})
    for chunk in _chunks(touched):
        _refresh_mention_counts(tenant, list(chunk))
    audit_record(
        principal=principal, action="graph.import", target_type="tenant", target_id=str(tenant.pk),
        detail={
            "entities_created": outcome.entities_created, "entities_merged": outcome.entities_merged,
            "relations_created": outcome.relations_created, "relations_merged": outcome.relations_merged,
            "mentions": outcome.mentions, "supports": outcome.supports, "dropped": outcome.dropped,
        },
    )  # fmt: skip
    return outcome

"""Every change to memories goes through these functions.

Contract of each write: validate first (nothing is written when any part is
invalid), change rows and history in one transaction, record the audit event
in the same transaction, and enqueue enrichment only after commit.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.contrib.postgres.search import SearchVector
from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, QuerySet, TextField, Value, When
from django.utils import timezone

from accounts.principal import Principal
from accounts.scoping import scoped
from audit.services import audit_record
from core.errors import InvalidInput, PayloadTooLarge
from core.events import publish_event
from core.inputs import json_check, text_check
from memory import embeddings
from memory.dispatch import dispatch_enrichment, enrichment_enqueue
from memory.enrichment import run_deletion_hooks
from memory.models import EnrichmentState, HistoryEvent, Kind, Memory, MemoryEmbedding, MemoryHistory
from memory.policy import apply_policy
from memory.redaction import redact_secrets
from memory.rows import HistoryRow, NewRow, memory_rows_store
from memory.term_stats import term_stats_discard
from memory.text import content_hash, fulltext_input

logger = logging.getLogger(__name__)

MAX_TAGS = 50
MAX_TAG_LENGTH = 100
MAX_SCOPE_LENGTH = 200
SCOPE_FIELDS = ("user_ref", "agent_id", "session_id")
UPDATABLE_FIELDS = {"content", "kind", "metadata", "tags", "occurred_at", "expires_at", "importance"}


@dataclass(frozen=True)
class MemoryInput:
    content: str
    kind: str = Kind.NOTE.value
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    user_ref: str = ""
    agent_id: str = ""
    session_id: str = ""
    occurred_at: datetime | None = None
    expires_at: datetime | None = None
    importance: float = 0.5


@dataclass(frozen=True)
class CreateResult:
    memory: Memory | None  # None when the memory policy declined to store the item
    created: bool
    skipped: str = ""  # why the policy declined it


def search_vector_for(content: str) -> SearchVector:
    return SearchVector(Value(fulltext_input(content)), config="english")


def _clean_tags(tags: Sequence[str], prefix: str) -> list[str]:
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"{prefix}tags", f"at most {MAX_TAGS} tags")
    cleaned: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise InvalidInput(f"{prefix}tags", "tags must be non-empty strings")
        tag = tag.strip()
        text_check(f"{prefix}tags", tag)
        if len(tag) > MAX_TAG_LENGTH:
            raise InvalidInput(f"{prefix}tags", f"a tag is longer than {MAX_TAG_LENGTH} characters")
        if tag not in cleaned:
            cleaned.append(tag)
    return cleaned


def validate_input(data: MemoryInput, prefix: str = "") -> MemoryInput:
    """Check one memory against the rules; raise InvalidInput naming the field."""
    content = data.content
    if not isinstance(content, str) or not content.strip():
        raise InvalidInput(f"{prefix}content", "content must be a non-empty string")
    text_check(f"{prefix}content", content)
    limit = settings.EASYMEMORY_MAX_CONTENT_BYTES
    if len(content.encode("utf-8")) > limit:
        raise PayloadTooLarge(f"{prefix}content", f"content is over the {limit}-byte limit")
    if data.kind not in Kind.values:
        raise InvalidInput(f"{prefix}kind", f"kind must be one of {', '.join(Kind.values)}")
    if not isinstance(data.metadata, dict):
        raise InvalidInput(f"{prefix}metadata", "metadata must be a JSON object")
    json_check(f"{prefix}metadata", data.metadata)
    if not 0.0 <= float(data.importance) <= 1.0:
        raise InvalidInput(f"{prefix}importance", "importance must be between 0 and 1")
    for name in SCOPE_FIELDS:
        value = getattr(data, name)
        if not isinstance(value, str) or len(value) > MAX_SCOPE_LENGTH:
            raise InvalidInput(f"{prefix}{name}", f"{name} must be a string of at most {MAX_SCOPE_LENGTH} characters")
        text_check(f"{prefix}{name}", value)
    if data.expires_at is not None and data.expires_at <= timezone.now():
        raise InvalidInput(f"{prefix}expires_at", "expires_at must be in the future")
    content, metadata = content.strip(), data.metadata
    if settings.EASYMEMORY_REDACT_SECRETS:
        content, redacted = redact_secrets(content)
        if redacted:
            metadata = {**metadata, "redacted_secrets": redacted}
    return replace(data, tags=_clean_tags(data.tags, prefix), content=content, metadata=metadata)


def _row_of(data: MemoryInput, *, history: list[HistoryRow], **stored: Any) -> NewRow:
    """The row to store for validated input; `stored`: id, and for a restore its version and times."""
    return NewRow(
        kind=data.kind,
        content=data.content,
        content_hash=content_hash(data.content),
        metadata=data.metadata,
        tags=data.tags,
        user_ref=data.user_ref,
        agent_id=data.agent_id,
        session_id=data.session_id,
        importance=data.importance,
        occurred_at=data.occurred_at,
        expires_at=data.expires_at,
        history=history,
        **stored,
    )


def _new_row(principal: Principal, data: MemoryInput) -> NewRow:
    added = HistoryRow(
        event=HistoryEvent.ADD, version=1, actor=principal.actor, new_content=data.content, new_metadata=data.metadata
    )
    return _row_of(data, history=[added], id=uuid.uuid4())


def memory_create_many(
    *, principal: Principal, items: Sequence[MemoryInput], policy: str | None = None
) -> list[CreateResult]:
    """Store a batch all-or-nothing. Duplicates (same content in the same scope) return the existing id.

    `policy` (default: EASYMEMORY_MEMORY_POLICY) decides about kind=message items; importers of
    archives pass "all". Declined items come back with `memory=None` and the reason.
    """
    if not items:
        raise InvalidInput("items", "at least one memory is required")
    if len(items) > settings.EASYMEMORY_MAX_BATCH:
        raise PayloadTooLarge("items", f"at most {settings.EASYMEMORY_MAX_BATCH} memories per request")
    many = len(items) > 1
    cleaned = [validate_input(item, f"[{index}]." if many else "") for index, item in enumerate(items)]
    decisions = [apply_policy(item, policy or settings.EASYMEMORY_MEMORY_POLICY) for item in cleaned]
    accepted = [d.item for d in decisions if d.item is not None]
    with transaction.atomic():
        # The whole batch in a few statements (memory/rows.py); duplicates come back as the stored row.
        stored = iter(memory_rows_store(tenant=principal.tenant, rows=[_new_row(principal, d) for d in accepted]))
        results = [
            CreateResult(*next(stored)) if d.item is not None else CreateResult(None, False, d.reason)
            for d in decisions
        ]
        new_ids = [str(result.memory.id) for result in results if result.created and result.memory is not None]
        declined = sum(1 for result in results if result.memory is None)
        audit_record(
            principal=principal,
            action="memory.create",
            target_type="memory",
            target_id=new_ids[0] if len(new_ids) == 1 else "",
            detail={
                "created": len(new_ids),
                "duplicates": len(results) - len(new_ids) - declined,
                "declined": declined,
            },
        )
        if new_ids:
            transaction.on_commit(lambda: dispatch_enrichment(new_ids))
            publish_event(principal.tenant.pk, "memory.created", {"ids": new_ids})
    return results


def memory_create(*, principal: Principal, data: MemoryInput) -> CreateResult:
    return memory_create_many(principal=principal, items=[data])[0]


# --- restoring exported memories (imports of an EasyMemory export) ----------------------

MAX_VERSION = 1_000_000
MAX_HISTORY_ENTRIES = 1_000


@dataclass(frozen=True)
class HistoryInput:
    event: str
    version: int
    old_content: str | None = None
    new_content: str | None = None
    old_metadata: dict[str, Any] | None = None
    new_metadata: dict[str, Any] | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class RestoredMemory:
    """A memory as an export holds it: its id, times, version and history besides its data."""

    id: uuid.UUID
    data: MemoryInput
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None
    history: list[HistoryInput] = field(default_factory=list)


def _version(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise InvalidInput(name, f"{name} must be a whole number from 1 to {MAX_VERSION}")
    return value


def _history_text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise InvalidInput(name, f"{name} must be a string without NUL characters")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInput(name, f"{name} is not valid Unicode (a lone surrogate)") from exc
    if size > settings.EASYMEMORY_MAX_CONTENT_BYTES:
        raise PayloadTooLarge(name, f"{name} is over the {settings.EASYMEMORY_MAX_CONTENT_BYTES}-byte limit")
    if settings.EASYMEMORY_REDACT_SECRETS:
        value, _ = redact_secrets(value)
    return value


def validate_restored(item: RestoredMemory, prefix: str = "") -> RestoredMemory:
    """The rules of validate_input plus those of the exported extras (version, history)."""
    data = validate_input(item.data, prefix)
    _version(item.version, f"{prefix}version")
    if len(item.history) > MAX_HISTORY_ENTRIES:
        raise PayloadTooLarge(f"{prefix}history", f"at most {MAX_HISTORY_ENTRIES} history entries")
    history = []
    for index, entry in enumerate(item.history):
        name = f"{prefix}history[{index}]"
        if entry.event not in HistoryEvent.values:
            raise InvalidInput(f"{name}.event", f"event must be one of {', '.join(HistoryEvent.values)}")
        for meta in (entry.old_metadata, entry.new_metadata):
            if meta is not None and not isinstance(meta, dict):
                raise InvalidInput(f"{name}.metadata", "history metadata must be a JSON object")
        history.append(
            replace(
                entry,
                version=_version(entry.version, f"{name}.version"),
                old_content=_history_text(entry.old_content, f"{name}.old_content"),
                new_content=_history_text(entry.new_content, f"{name}.new_content"),
            )
        )
    return replace(item, data=data, history=history)


def _restored_row(item: RestoredMemory, actor: str) -> NewRow:
    data = item.data
    history = item.history or [
        HistoryInput(event=HistoryEvent.ADD, version=1, new_content=data.content, new_metadata=data.metadata)
    ]
    return _row_of(
        data,
        id=item.id,
        version=item.version,
        created_at=item.created_at,
        updated_at=item.updated_at,
        history=[
            HistoryRow(
                event=entry.event,
                version=entry.version,
                # The file's actor labels name principals of the exporting installation (perhaps
                # another tenant's users): the history records who imported it instead.
                actor=actor,
                old_content=entry.old_content,
                new_content=entry.new_content,
                old_metadata=entry.old_metadata,
                new_metadata=entry.new_metadata,
                created_at=entry.created_at,
            )
            for entry in history
        ],
    )


def memory_restore_many(
    *, principal: Principal, items: Sequence[RestoredMemory], actor: str | None = None
) -> list[CreateResult]:
    """Recreate exported memories with their ids, times, versions and history, all-or-nothing.

    The same contract as memory_create_many: validated first, de-duplicated (by id, then by
    content in the scope), audited, `memory.created` published and enrichment queued on commit.
    Every history row names `actor` (who started the import; default the principal).
    """
    if not items:
        raise InvalidInput("items", "at least one memory is required")
    if len(items) > settings.EASYMEMORY_MAX_BATCH:
        raise PayloadTooLarge("items", f"at most {settings.EASYMEMORY_MAX_BATCH} memories per request")
    many = len(items) > 1
    cleaned = [validate_restored(item, f"[{index}]." if many else "") for index, item in enumerate(items)]
    with transaction.atomic():
        label = (actor or principal.actor)[:200]
        # Present means the same id in the tenant, else the same content in the scope; an id that
        # another tenant owns is replaced by a stable derived one, so a re-run finds it again.
        stored = memory_rows_store(
            tenant=principal.tenant, rows=[_restored_row(item, label) for item in cleaned], match_ids=True
        )
        results = [CreateResult(memory, created) for memory, created in stored]
        new_ids = [str(r.memory.id) for r in results if r.created and r.memory is not None]
        audit_record(
            principal=principal,
            action="memory.import",
            target_type="memory",
            target_id=new_ids[0] if len(new_ids) == 1 else "",
            detail={"created": len(new_ids), "duplicates": len(results) - len(new_ids)},
        )
        if new_ids:
            transaction.on_commit(lambda: dispatch_enrichment(new_ids))
            publish_event(principal.tenant.pk, "memory.created", {"ids": new_ids})
    return results


@transaction.atomic
def memory_update(*, principal: Principal, memory: Memory, changes: dict[str, Any]) -> Memory:
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise InvalidInput(sorted(unknown)[0], "this field cannot be changed")
    if not changes:
        raise InvalidInput("body", "nothing to change")
    memory = scoped(Memory, principal.tenant).select_for_update().get(pk=memory.pk)
    current = MemoryInput(
        content=memory.content,
        kind=memory.kind,
        metadata=memory.metadata,
        tags=list(memory.tags),
        user_ref=memory.user_ref,
        agent_id=memory.agent_id,
        session_id=memory.session_id,
        occurred_at=memory.occurred_at,
        expires_at=None,
        importance=memory.importance,
    )
    proposed = validate_input(replace(current, **{k: v for k, v in changes.items() if k != "expires_at"}))
    if "expires_at" in changes and changes["expires_at"] is not None:
        validate_input(replace(current, expires_at=changes["expires_at"]))
    old_content, old_metadata = memory.content, memory.metadata
    content_changed = proposed.content != memory.content
    fields = ["kind", "metadata", "tags", "occurred_at", "importance", "updated_at", "version"]
    memory.kind = proposed.kind
    memory.metadata = proposed.metadata
    memory.tags = proposed.tags
    memory.occurred_at = proposed.occurred_at
    memory.importance = proposed.importance
    if "expires_at" in changes:
        memory.expires_at = changes["expires_at"]
        fields.append("expires_at")
    if content_changed:
        digest = content_hash(proposed.content)
        clash = (
            scoped(Memory, principal.tenant)
            .filter(content_hash=digest, user_ref=memory.user_ref, agent_id=memory.agent_id)
            .filter(session_id=memory.session_id)
            .exclude(pk=memory.pk)
            .exists()
        )
        if clash:
            raise InvalidInput("content", "another memory in this scope already has this content")
        memory.content = proposed.content
        memory.content_hash = digest
        memory.search_vector = search_vector_for(proposed.content)
        memory.enrichment_state = EnrichmentState.PENDING
        memory.enrichment_error = ""
        fields += ["content", "content_hash", "search_vector", "enrichment_state", "enrichment_error"]
    memory.version += 1
    memory.save(update_fields=fields)
    MemoryHistory.objects.create(
        tenant=principal.tenant,
        memory_id=memory.id,
        event=HistoryEvent.UPDATE,
        old_content=old_content,
        new_content=memory.content,
        old_metadata=old_metadata,
        new_metadata=memory.metadata,
        user_ref=memory.user_ref,
        actor=principal.actor,
        version=memory.version,
    )
    if content_changed:
        scoped(MemoryEmbedding, principal.tenant).filter(memory=memory).delete()
        memory_id = str(memory.id)
        transaction.on_commit(lambda: dispatch_enrichment([memory_id]))
        _windows_reset_after(principal=principal, memories=[memory])
    audit_record(principal=principal, action="memory.update", target_type="memory", target_id=str(memory.id))
    publish_event(
        principal.tenant.pk,
        "memory.updated",
        {"ids": [str(memory.id)], "version": memory.version, "content_changed": content_changed},
    )
    memory.refresh_from_db()
    return memory


def _windows_reset_after(*, principal: Principal, memories: Sequence[Memory]) -> None:
    """The later turns whose window vector was made with the text of `memories` (edited or about
    to be deleted) lose it and are queued again: a window never keeps words its memory no longer
    has, nor those of a deleted memory. Per session, every turn after the earliest of them (a
    bounded over-approximation for many memories; exact for one: the next
    EASYMEMORY_SEARCH_WINDOW_TURNS)."""
    turns = settings.EASYMEMORY_SEARCH_WINDOW_TURNS
    earliest: dict[str, datetime] = {}
    for memory in memories:
        if memory.session_id:
            start = earliest.get(memory.session_id)
            earliest[memory.session_id] = memory.created_at if start is None else min(start, memory.created_at)
    if not turns or not earliest:
        return
    gone = [memory.pk for memory in memories]
    later: list[str] = []
    for session_id, start in earliest.items():
        after = (
            scoped(Memory, principal.tenant)
            .filter(session_id=session_id, created_at__gt=start)
            .exclude(pk__in=gone)
            .order_by("created_at", "id")
            .values_list("id", flat=True)
        )
        later += [str(mid) for mid in (after[:turns] if len(memories) == 1 else after)]
    if later:
        scoped(MemoryEmbedding, principal.tenant).filter(memory_id__in=later).update(window_embedding=None)
        transaction.on_commit(lambda: dispatch_enrichment(later))


def _lock_for_delete(memories: QuerySet[Memory]) -> list[Any]:
    """Lock the rows before Django collects what cascades from them: the worker writes derived rows
    (embeddings, graph extraction) under the same row lock, so they are either committed and
    collected, or written after the delete, when the worker finds the memory gone. Without it a
    derived row committed between the collection and the DELETE fails the foreign key at commit."""
    return list(memories.select_for_update().order_by("pk").values_list("pk", flat=True))


@transaction.atomic
def memory_delete(*, principal: Principal, memory: Memory) -> None:
    if not _lock_for_delete(scoped(Memory, principal.tenant).filter(pk=memory.pk)):
        return  # deleted meanwhile by another request
    MemoryHistory.objects.create(
        tenant=principal.tenant,
        memory_id=memory.id,
        event=HistoryEvent.DELETE,
        old_content=memory.content,
        old_metadata=memory.metadata,
        user_ref=memory.user_ref,
        actor=principal.actor,
        version=memory.version + 1,
    )
    run_deletion_hooks(tenant=principal.tenant, memory_ids=[memory.pk])
    _windows_reset_after(principal=principal, memories=[memory])
    scoped(Memory, principal.tenant).filter(pk=memory.pk).delete()
    audit_record(principal=principal, action="memory.delete", target_type="memory", target_id=str(memory.id))
    publish_event(principal.tenant.pk, "memory.deleted", {"ids": [str(memory.id)]})


@transaction.atomic
def memory_forget_user(*, principal: Principal, user_ref: str) -> int:
    """Really delete everything remembered about one end user, history included."""
    if not user_ref:
        raise InvalidInput("user_ref", "user_ref is required")
    memories = scoped(Memory, principal.tenant).filter(user_ref=user_ref)
    ids = _lock_for_delete(memories)
    count = len(ids)
    run_deletion_hooks(tenant=principal.tenant, memory_ids=ids)
    _windows_reset_after(
        principal=principal, memories=list(memories.exclude(session_id="").only("session_id", "created_at"))
    )
    memories.delete()
    scoped(MemoryHistory, principal.tenant).filter(user_ref=user_ref).delete()
    if count:
        term_stats_discard(principal.tenant)
    audit_record(principal=principal, action="memory.forget_user", target_type="user_ref", detail={"rows": count})
    publish_event(principal.tenant.pk, "memory.deleted", {"user_ref": user_ref, "count": count})
    return count


def memory_tables_analyze() -> None:
    """Refresh the planner's statistics of the memory tables now, rather than when autovacuum
    gets to it (migration 0006): after a large import, a tenant the statistics have not seen is
    estimated at one row and gets plans made for one row."""
    with connection.cursor() as cursor:
        # unscoped: planner statistics of the whole tables, no rows read back
        cursor.execute("ANALYZE memory_memory")
        cursor.execute("ANALYZE memory_memoryembedding")  # unscoped: as above


@dataclass(frozen=True)
class EmbedItem:
    """A memory to embed, as fetched: the content hash pins the text the vector is made from."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    content: str
    content_hash: str
    # The memory with the turns before it in its session, for the window vector; "" when it has none.
    window: str = ""


@dataclass
class EmbedFetch:
    todo: list[EmbedItem]
    # Memories already embedded under the model and marked done: announced again on a re-run.
    done: list[tuple[str, str]] = field(default_factory=list)  # (tenant id, memory id)


def memory_embed_fetch(*, memory_ids: Sequence[str], model: str | None = None) -> EmbedFetch:
    """The given memories that still need an embedding under `model`, in one query.

    Gone ids drop out; already embedded ones come back without their text, so a re-run
    (redelivery, reconcile) costs one query and no inference. A memory embedded before window
    vectors existed (or with them turned off) that now has earlier turns in its session comes
    back as to do, for its window vector.
    """
    name = model or embeddings.model_name()
    turns = settings.EASYMEMORY_SEARCH_WINDOW_TURNS
    vectors = MemoryEmbedding.objects.filter(memory_id=OuterRef("pk"), model=name)  # unscoped: of the rows below
    has_vector = Exists(vectors)
    # The turns before each memory in its session, newest first (index memory_tenant_session).
    earlier = (
        Memory.objects.filter(  # unscoped: the same tenant as the outer row, matched on tenant_id
            tenant_id=OuterRef("tenant_id"), session_id=OuterRef("session_id"), created_at__lt=OuterRef("created_at")
        )
        .exclude(session_id="")
        .order_by("-created_at", "-id")
    )
    rows = Memory.objects.filter(pk__in=list(memory_ids))  # unscoped: the worker acts on ids it was given
    if turns:
        has_window = Exists(vectors.filter(window_embedding__isnull=False))
        rows = rows.annotate(embedded=has_vector & (has_window | ~Exists(earlier)))
    else:
        rows = rows.annotate(embedded=has_vector)
    rows = rows.annotate(text=Case(When(embedded=True, then=Value("")), default=F("content"), output_field=TextField()))
    fields = ["id", "tenant_id", "text", "content_hash", "embedded", "enrichment_state"]
    fetched = EmbedFetch(todo=[])
    if not turns:
        for mid, tenant_id, text, digest, embedded, state in rows.values_list(*fields):
            if not embedded:
                fetched.todo.append(EmbedItem(mid, tenant_id, text, digest))
            elif state == EnrichmentState.DONE:
                fetched.done.append((str(tenant_id), str(mid)))
        return fetched
    # Only rows still to embed read their earlier turns.
    before = ArraySubquery(earlier.values("content")[:turns])
    rows = rows.annotate(before=Case(When(embedded=True, then=Value([])), default=before))
    for mid, tenant_id, text, digest, embedded, state, prior in rows.values_list(*fields, "before"):
        if not embedded:
            window = "\n".join([*reversed(prior), text]) if prior else ""
            fetched.todo.append(EmbedItem(mid, tenant_id, text, digest, window))
        elif state == EnrichmentState.DONE:
            fetched.done.append((str(tenant_id), str(mid)))
    return fetched


def memory_embed_vectors(items: Sequence[EmbedItem], name: str) -> tuple[list[list[float]], list[list[float] | None]]:
    """The vectors of `items` and their window vectors (None where an item has no window), from
    one batch through the model: a memory with earlier turns costs two embeddings."""
    windowed = [index for index, item in enumerate(items) if item.window]
    texts = [item.content for item in items] + [items[index].window for index in windowed]
    vectors = embeddings.embed_texts(texts, name) if texts else []
    windows: list[list[float] | None] = [None] * len(items)
    for offset, index in enumerate(windowed):
        windows[index] = vectors[len(items) + offset]
    return vectors[: len(items)], windows


def _vector_text(vector: Sequence[float]) -> str:
    # pgvector's text form; float32 needs at most 9 significant digits to round-trip.
    return "[" + ",".join(format(x, ".9g") for x in vector) + "]"


# One statement: store the vectors of the memories that still exist with the same text (locked
# against a concurrent delete or edit: FOR KEY SHARE re-checks the row once that commits), and
# mark those memories done. Returns the memories marked done, for the announcement.
_STORE_SQL = """
WITH given AS (
    SELECT * FROM unnest(%(ids)s::uuid[], %(hashes)s::text[], %(vectors)s::text[], %(windows)s::text[])
        AS g(id, content_hash, vector, win)
), alive AS (
    SELECT m.id, m.tenant_id, g.vector, g.win FROM memory_memory m
    JOIN given g ON g.id = m.id AND g.content_hash = m.content_hash
    FOR KEY SHARE OF m
), stored AS (
    INSERT INTO memory_memoryembedding (tenant_id, memory_id, model, dims, embedding, window_embedding, created_at)
    SELECT a.tenant_id, a.id, %(model)s, %(dims)s, a.vector::vector, a.win::vector, now() FROM alive a
    ON CONFLICT (memory_id, model) DO UPDATE SET window_embedding = EXCLUDED.window_embedding
        WHERE memory_memoryembedding.window_embedding IS NULL AND EXCLUDED.window_embedding IS NOT NULL
    RETURNING memory_id
)
UPDATE memory_memory m SET enrichment_state = %(done)s, enrichment_error = ''
FROM alive a WHERE m.id = a.id AND m.enrichment_state = %(pending)s
RETURNING m.tenant_id, m.id
"""


def memory_embed_store(
    *,
    items: Sequence[EmbedItem],
    vectors: Sequence[Sequence[float]],
    model: str,
    windows: Sequence[Sequence[float] | None] | None = None,
) -> list[tuple[str, str]]:
    """Store the vectors of `items` (and their window vectors, where given) and mark them done,
    in one statement (see _STORE_SQL).

    Memories deleted or edited since they were fetched are skipped (an edit queues its own
    embedding). Idempotent; a row stored without a window vector gets it added. Returns
    (tenant id, memory id) of the memories marked done.
    """
    if not items:
        return []
    window_vectors = windows if windows is not None else [None] * len(items)
    params: dict[str, Any] = {
        "ids": [item.id for item in items],
        "hashes": [item.content_hash for item in items],
        "vectors": [_vector_text(vector) for vector in vectors],
        "windows": [None if window is None else _vector_text(window) for window in window_vectors],
        "model": model,
        "dims": len(vectors[0]),
        "done": EnrichmentState.DONE.value,
        "pending": EnrichmentState.PENDING.value,
    }
    with connection.cursor() as cursor:
        cursor.execute(_STORE_SQL, params)  # unscoped: the worker stores vectors of ids it was given
        return [(str(tenant_id), str(mid)) for tenant_id, mid in cursor.fetchall()]


def memory_embed_batch(*, memory_ids: Sequence[str]) -> int:
    """Embed the given memories under the current model, skipping those done or gone, and
    announce them: one query to fetch, the model, one statement to store.

    Idempotent: safe to run twice for the same ids. Returns how many it embedded. (The worker
    runs the same steps through memory/embed_pipeline.py, overlapping them across batches.)
    """
    name = embeddings.model_name()
    fetched = memory_embed_fetch(memory_ids=memory_ids, model=name)
    done = list(fetched.done)
    if fetched.todo:
        vectors, windows = memory_embed_vectors(fetched.todo, name)
        done += memory_embed_store(items=fetched.todo, vectors=vectors, model=name, windows=windows)
    memory_announce_enriched(done)
    return len(done) - len(fetched.done)


def memory_announce_enriched(done: Sequence[tuple[str, str]]) -> None:
    """Tell each tenant's subscribers which memories finished enrichment ((tenant id, memory id) pairs)."""
    by_tenant: dict[str, list[str]] = {}
    for tenant_id, memory_id in done:
        by_tenant.setdefault(tenant_id, []).append(memory_id)
    for tenant_id, ids in by_tenant.items():
        publish_event(tenant_id, "memory.enriched", {"ids": ids})


def memory_mark_failed(*, memory_ids: Sequence[str], error: str) -> None:
    Memory.objects.filter(pk__in=list(memory_ids)).update(  # unscoped: worker acts on ids it was given
        enrichment_state=EnrichmentState.FAILED, enrichment_error=error[:2000]
    )


def memory_reconcile(*, limit: int = 10_000) -> int:
    """Re-queue memories whose embedding under the current model is missing, or lacks the window
    vector it should have (stored before window vectors existed). Returns the count."""
    name = embeddings.model_name()
    ids = [
        str(mid)
        for mid in Memory.objects.exclude(embeddings__model=name)  # unscoped: maintenance over all tenants
        .order_by("created_at")
        .values_list("id", flat=True)[:limit]
    ]
    if settings.EASYMEMORY_SEARCH_WINDOW_TURNS and len(ids) < limit:
        earlier = Memory.objects.filter(  # unscoped: the outer row's tenant, matched on tenant_id
            tenant_id=OuterRef("tenant_id"), session_id=OuterRef("session_id"), created_at__lt=OuterRef("created_at")
        )
        windowless = (
            Memory.objects.filter(  # unscoped: maintenance over all tenants
                embeddings__model=name, embeddings__window_embedding__isnull=True
            )
            .exclude(session_id="")
            .filter(Exists(earlier))
            .order_by("created_at")
            .values_list("id", flat=True)[: limit - len(ids)]
        )
        ids += [str(mid) for mid in windowless]
    if ids:
        Memory.objects.filter(pk__in=ids, enrichment_state=EnrichmentState.DONE).update(  # unscoped: ids from above
            enrichment_state=EnrichmentState.PENDING
        )
        enrichment_enqueue(ids)
    return len(ids)


@transaction.atomic
def memory_rescope(*, principal: Principal, memory: Memory, scope: dict[str, str]) -> Memory:
    """Move a memory to another scope (end user, agent, session), e.g. from a bulk action.

    Refused when the target scope already holds the same content (the per-scope uniqueness
    that de-duplication relies on). Recorded in the memory's history as an update.
    """
    unknown = set(scope) - set(SCOPE_FIELDS)
    if unknown:
        raise InvalidInput(sorted(unknown)[0], "not a scope field")
    for name, value in scope.items():
        if not isinstance(value, str) or len(value) > MAX_SCOPE_LENGTH or "\x00" in value:
            raise InvalidInput(name, f"{name} must be a string of at most {MAX_SCOPE_LENGTH} characters")
    memory = scoped(Memory, principal.tenant).select_for_update().get(pk=memory.pk)
    old = {name: getattr(memory, name) for name in SCOPE_FIELDS}
    new = {**old, **scope}
    if new == old:
        return memory
    clash = scoped(Memory, principal.tenant).filter(content_hash=memory.content_hash, **new).exclude(pk=memory.pk)
    if clash.exists():
        raise InvalidInput("scope", "the target scope already holds a memory with this content")
    for name, value in new.items():
        setattr(memory, name, value)
    memory.version += 1
    memory.save(update_fields=[*SCOPE_FIELDS, "version", "updated_at"])
    MemoryHistory.objects.create(
        tenant=principal.tenant,
        memory_id=memory.id,
        event=HistoryEvent.UPDATE,
        old_content=memory.content,
        new_content=memory.content,
        old_metadata=memory.metadata,
        new_metadata=memory.metadata,
        user_ref=memory.user_ref,
        actor=principal.actor,
        version=memory.version,
    )
    changed = sorted(name for name in SCOPE_FIELDS if old[name] != new[name])
    audit_record(
        principal=principal, action="memory.rescope", target_type="memory", target_id=str(memory.id),
        detail={"fields": changed},
    )  # fmt: skip
    publish_event(principal.tenant.pk, "memory.updated", {"ids": [str(memory.id)], "version": memory.version})
    return memory

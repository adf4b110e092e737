"""The statements that store a batch of memories: the storing half of memory.services.

Only `memory_create_many` and `memory_restore_many` call `memory_rows_store`; they validate,
apply the policy, audit, publish and enqueue. Here a batch becomes a few statements in the
caller's transaction, whatever its size:

1. one SELECT finds the rows already present (same content hash in the same scope, or, for
   a restore, the same id in the tenant);
2. one INSERT ... SELECT FROM json_to_recordset(...) ON CONFLICT DO NOTHING stores the rest,
   computing each full-text vector in the statement;
3. one INSERT stores the history rows of the memories that statement created;
4. only when a concurrent writer stored some of the same content between 1 and 2 (its rows
   are skipped by ON CONFLICT, after waiting for its commit), one more SELECT finds them.

The whole batch travels as one JSON parameter: no value is ever spliced into SQL text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from accounts.models import Tenant
from memory.models import EnrichmentState, Memory
from memory.text import fulltext_input

# How often to look again for rows that were neither inserted nor found: each round needs
# another writer to commit and then delete (or, for a restore, take the id) in between.
MAX_ROUNDS = 5

# All statements are constant text; every value (the batch as one JSON document, the tenant) is a
# parameter. The full-text vector is the expression memory.services.search_vector_for compiles to
# (Django's SearchVector of one value, config "english"), so a bulk-written vector equals it.
_FIND_BY_KEY = (
    "SELECT m.* FROM json_to_recordset(%s::json) AS k(u text, a text, s text, h text)"
    " JOIN memory_memory m ON m.tenant_id = %s AND m.user_ref = k.u AND m.agent_id = k.a"
    " AND m.session_id = k.s AND m.content_hash = k.h"
)
_FIND_BY_ID = "SELECT m.* FROM memory_memory m WHERE m.tenant_id = %s AND m.id = ANY(%s::uuid[])"
_FOREIGN_IDS = "SELECT id FROM memory_memory WHERE id = ANY(%s::uuid[]) AND tenant_id <> %s"
# Rows go in sorted by their scope key (column n): two writers with overlapping batches take the
# unique index's entries in the same order, so one waits for the other instead of deadlocking.
_INSERT = (
    "INSERT INTO memory_memory (id, tenant_id, kind, content, metadata, tags, user_ref, agent_id, session_id,"
    " content_hash, importance, occurred_at, created_at, updated_at, expires_at, search_vector,"
    " enrichment_state, enrichment_error, version)"
    " SELECT r.id, %s, r.kind, r.content, r.metadata, r.tags, r.user_ref, r.agent_id, r.session_id,"
    " r.content_hash, r.importance, r.occurred_at, r.created_at, r.updated_at, r.expires_at,"
    " to_tsvector('english'::regconfig, COALESCE(r.ft, '')), %s, '', r.version"
    " FROM json_to_recordset(%s::json) AS r(n int, id uuid, kind text, content text, ft text, metadata jsonb,"
    " tags varchar(100)[], user_ref text, agent_id text, session_id text, content_hash text,"
    " importance double precision, occurred_at timestamptz, expires_at timestamptz, created_at timestamptz,"
    " updated_at timestamptz, version int)"
    " ORDER BY r.n"
    " ON CONFLICT DO NOTHING RETURNING id, search_vector::text"
)
_INSERT_HISTORY = (
    "INSERT INTO memory_memoryhistory (tenant_id, memory_id, event, old_content, new_content, old_metadata,"
    " new_metadata, user_ref, actor, version, created_at)"
    " SELECT %s, h.memory_id, h.event, h.old_content, h.new_content, h.old_metadata, h.new_metadata, h.user_ref,"
    " h.actor, h.version, h.created_at"
    " FROM json_to_recordset(%s::json) AS h(memory_id uuid, event text, old_content text, new_content text,"
    " old_metadata jsonb, new_metadata jsonb, user_ref text, actor text, version int, created_at timestamptz)"
)

Key = tuple[str, str, str, str]  # user_ref, agent_id, session_id, content_hash


@dataclass(frozen=True)
class HistoryRow:
    event: str
    version: int
    actor: str
    old_content: str | None = None
    new_content: str | None = None
    old_metadata: dict[str, Any] | None = None
    new_metadata: dict[str, Any] | None = None
    created_at: datetime | None = None  # None: when stored


@dataclass(frozen=True)
class NewRow:
    """One validated memory to store, with the history it starts with."""

    id: uuid.UUID
    kind: str
    content: str
    content_hash: str
    metadata: dict[str, Any]
    tags: list[str]
    user_ref: str
    agent_id: str
    session_id: str
    importance: float
    occurred_at: datetime | None
    expires_at: datetime | None
    history: list[HistoryRow]
    version: int = 1
    created_at: datetime | None = None  # None: when stored
    updated_at: datetime | None = None  # None: when stored

    @property
    def key(self) -> Key:
        return (self.user_ref, self.agent_id, self.session_id, self.content_hash)


def _when(value: datetime | None) -> str | None:
    if value is None:
        return None
    if timezone.is_naive(value):  # as Django's DateTimeField takes it: in the default time zone
        value = timezone.make_aware(value)
    return value.isoformat()


def _json(rows: list[dict[str, Any]]) -> str:
    # Content was checked for NUL and lone surrogates (core.inputs), which JSON text would not carry.
    return json.dumps(rows, ensure_ascii=False, allow_nan=False)


def _find(tenant: Tenant, keys: Sequence[Key], ids: Sequence[uuid.UUID]) -> tuple[dict[Key, Memory], dict[Any, Memory]]:
    """The tenant's memories holding any of `keys`, and those with any of `ids`."""
    by_key: dict[Key, Memory] = {}
    by_id: dict[Any, Memory] = {}
    if keys:
        keys_json = _json([{"u": u, "a": a, "s": s, "h": h} for u, a, s, h in keys])
        for memory in Memory.objects.raw(_FIND_BY_KEY, [keys_json, tenant.pk]):  # unscoped: tenant_id in the SQL
            by_key[_key_of(memory)] = memory
    if ids:
        for memory in Memory.objects.raw(_FIND_BY_ID, [tenant.pk, [str(i) for i in ids]]):  # unscoped: as above
            by_id[memory.pk] = memory
            by_key.setdefault(_key_of(memory), memory)
    return by_key, by_id


def _key_of(memory: Memory) -> Key:
    return (memory.user_ref, memory.agent_id, memory.session_id, memory.content_hash)


def _foreign_ids(tenant: Tenant, ids: Sequence[uuid.UUID]) -> set[Any]:
    with connection.cursor() as cursor:
        # unscoped: learns only which of the given ids another tenant owns, to derive fresh ones
        cursor.execute(_FOREIGN_IDS, [[str(i) for i in ids], tenant.pk])
        return {row[0] for row in cursor.fetchall()}


def _tenant_id(tenant: Tenant, memory_id: uuid.UUID) -> uuid.UUID:
    """A stable id for a restored memory whose id another tenant owns: a re-run finds it again."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"easymemory:{tenant.pk}:{memory_id}")


def _stamped(row: NewRow, now: datetime) -> NewRow:
    """`row` with its missing times (and those of its history) set to `now`."""
    return replace(
        row,
        created_at=row.created_at or now,
        updated_at=row.updated_at or now,
        history=[replace(entry, created_at=entry.created_at or now) for entry in row.history],
    )


def _insert(tenant: Tenant, rows: list[NewRow]) -> dict[uuid.UUID, tuple[NewRow, str]]:
    """INSERT what does not conflict; returns the stored rows by id with their full-text vector."""
    ordered = sorted(rows, key=lambda row: row.key)
    payload = [
        {
            "n": n,
            "id": str(row.id),
            "kind": row.kind,
            "content": row.content,
            "ft": fulltext_input(row.content),
            "metadata": row.metadata,
            "tags": row.tags,
            "user_ref": row.user_ref,
            "agent_id": row.agent_id,
            "session_id": row.session_id,
            "content_hash": row.content_hash,
            "importance": float(row.importance),
            "occurred_at": _when(row.occurred_at),
            "expires_at": _when(row.expires_at),
            "created_at": _when(row.created_at),
            "updated_at": _when(row.updated_at),
            "version": row.version,
        }
        for n, row in enumerate(ordered)
    ]
    by_id = {row.id: row for row in rows}
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, [tenant.pk, EnrichmentState.PENDING.value, _json(payload)])  # scoped: tenant_id is %s
        stored = {uuid.UUID(str(mid)): (by_id[uuid.UUID(str(mid))], vector) for mid, vector in cursor.fetchall()}
    return stored


def _insert_history(tenant: Tenant, rows: Sequence[NewRow]) -> None:
    payload = [
        {
            "memory_id": str(row.id),
            "event": entry.event,
            "old_content": entry.old_content,
            "new_content": entry.new_content,
            "old_metadata": entry.old_metadata,
            "new_metadata": entry.new_metadata,
            "user_ref": row.user_ref,
            "actor": entry.actor,
            "version": entry.version,
            "created_at": _when(entry.created_at),
        }
        for row in rows
        for entry in row.history
    ]
    if payload:
        with connection.cursor() as cursor:
            cursor.execute(_INSERT_HISTORY, [tenant.pk, _json(payload)])  # scoped: tenant_id is %s


def _instance(tenant: Tenant, row: NewRow, vector: str) -> Memory:
    """The stored row as a model instance, without reading it back."""
    assert row.created_at is not None and row.updated_at is not None  # stamped before the INSERT
    memory = Memory(
        id=row.id,
        tenant=tenant,
        kind=row.kind,
        content=row.content,
        metadata=row.metadata,
        tags=row.tags,
        user_ref=row.user_ref,
        agent_id=row.agent_id,
        session_id=row.session_id,
        content_hash=row.content_hash,
        importance=float(row.importance),
        occurred_at=row.occurred_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        search_vector=vector,
        enrichment_state=EnrichmentState.PENDING,
        enrichment_error="",
        version=row.version,
    )
    memory._state.adding = False
    memory._state.db = connection.alias
    return memory


def memory_rows_store(*, tenant: Tenant, rows: Sequence[NewRow], match_ids: bool = False) -> list[tuple[Memory, bool]]:
    """Store the rows not already present, in the caller's transaction; (memory, created) per row.

    Present means: the same content hash in the same scope (within the batch too: a later
    duplicate gets the earlier one's memory), or with `match_ids` (restores) the same id in the
    tenant, looked up first. With `match_ids`, an id another tenant owns is replaced by a stable
    derived one. Races with concurrent writers end in their row, never in an IntegrityError.
    """
    if not rows:
        return []
    # Within the batch: the first row with an id or key stands for the later ones.
    first_by_key: dict[Key, int] = {}
    first_by_id: dict[uuid.UUID, int] = {}
    stands_for: list[int] = []
    for index, row in enumerate(rows):
        earlier = first_by_id.get(row.id) if match_ids else None
        if earlier is None:
            earlier = first_by_key.get(row.key)
        if earlier is None:
            earlier = index
            first_by_key[row.key] = index
            first_by_id[row.id] = index
        stands_for.append(earlier)
    # Each new row its own time, increasing in the order given (as one-by-one writes had): lists
    # and a conversation's neighbours are ordered by created_at.
    now = timezone.now()
    todo = {
        index: _stamped(rows[index], now + timedelta(microseconds=position))
        for position, index in enumerate(dict.fromkeys(stands_for))
    }

    found: dict[int, Memory] = {}  # row index -> the memory already present
    stored: dict[int, tuple[NewRow, str]] = {}
    for _ in range(MAX_ROUNDS):
        if match_ids:
            foreign = _foreign_ids(tenant, [row.id for row in todo.values()])
            for index, row in todo.items():
                if row.id in foreign:
                    todo[index] = replace(row, id=_tenant_id(tenant, row.id))
        by_key, by_id = _find(
            tenant, [row.key for row in todo.values()], [row.id for row in todo.values()] if match_ids else []
        )
        for index, row in list(todo.items()):
            present = by_id.get(row.id) if match_ids else None
            present = present or by_key.get(row.key)
            if present is not None:
                found[index] = present
                del todo[index]
        if not todo:
            break
        inserted = _insert(tenant, list(todo.values()))
        for index, row in list(todo.items()):
            if row.id in inserted:
                stored[index] = inserted[row.id]
                del todo[index]
        if not todo:
            break
        # Skipped by ON CONFLICT: a concurrent writer committed the same content (or id)
        # after the lookup above. The next round finds its row.
    if todo:
        raise RuntimeError(f"{len(todo)} memories were neither stored nor found after {MAX_ROUNDS} attempts")

    _insert_history(tenant, [row for row, _ in stored.values()])
    memories: dict[int, Memory] = dict(found)
    memories.update({index: _instance(tenant, row, vector) for index, (row, vector) in stored.items()})
    return [(memories[earlier], index == earlier and earlier in stored) for index, earlier in enumerate(stands_for)]

"""Export and re-import of a tenant's memories (JSON Lines), and Mem0-style JSON import.

Export format: one JSON object per line, each with a "type":
  {"type": "header", "format": "easymemory-export", "version": 1, ...}
  {"type": "memory", "id": ..., "content": ..., ..., "history": [...]}
Later record types (entities, relations, mentions from the graph app) are
added as new "type" values; an importer skips types it does not know and
counts them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils.dateparse import parse_datetime

from accounts.models import Tenant
from accounts.principal import Principal
from accounts.scoping import scoped
from audit.services import audit_record
from config.errors import InvalidInput
from ingest.services import SourceItem, chunked
from memory.models import HistoryEvent, Memory, MemoryHistory
from memory.services import MemoryInput, search_vector_for, validate_input
from memory.text import content_hash

FORMAT = "easymemory-export"
VERSION = 1
MEMORY_FIELDS = ("kind", "content", "metadata", "tags", "user_ref", "agent_id", "session_id", "importance")
TIME_FIELDS = ("occurred_at", "created_at", "updated_at", "expires_at")
HISTORY_FIELDS = ("event", "version", "old_content", "new_content", "old_metadata", "new_metadata", "actor")
EXPORT_BATCH = 500


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_lines(tenant: Tenant, memory_ids: list[uuid.UUID] | None = None) -> Iterator[str]:
    """The tenant's export (or of the memories `memory_ids` only), line by line (streamed:
    memory use stays flat)."""
    yield json.dumps({"type": "header", "format": FORMAT, "version": VERSION, "tenant": tenant.slug}) + "\n"
    memories = scoped(Memory, tenant).order_by("created_at", "content_hash", "id")
    if memory_ids is not None:
        memories = memories.filter(pk__in=memory_ids)
    # A server-side cursor (iterator) streams the rows; history is fetched per batch.
    for batch in chunked(memories.iterator(chunk_size=EXPORT_BATCH), EXPORT_BATCH):
        history: dict[uuid.UUID, list[dict[str, Any]]] = {}
        rows = scoped(MemoryHistory, tenant).filter(memory_id__in=[m.id for m in batch]).order_by("created_at", "id")
        for row in rows:
            entry = {name: getattr(row, name) for name in HISTORY_FIELDS}
            entry["created_at"] = _iso(row.created_at)
            history.setdefault(row.memory_id, []).append(entry)
        for memory in batch:
            record: dict[str, Any] = {"type": "memory", "id": str(memory.id)}
            record.update({name: getattr(memory, name) for name in MEMORY_FIELDS})
            record["tags"] = list(memory.tags)
            record.update({name: _iso(getattr(memory, name)) for name in TIME_FIELDS})
            record["version"] = memory.version
            record["history"] = history.get(memory.id, [])
            yield json.dumps(record, ensure_ascii=False) + "\n"


# --- import ----------------------------------------------------------------------------------


def _when(value: Any, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    parsed = parse_datetime(str(value)) if isinstance(value, str) else None
    if parsed is None:
        raise ValueError(f"{field} is not an ISO 8601 date-time: {value!r}")
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def import_exported_memory(principal: Principal, record: dict[str, Any]) -> tuple[Memory, bool]:
    """Recreate one exported memory with its times and history. Keeps the exported id when it
    is free; otherwise derives a stable one from (tenant, id), so a re-run finds it again."""
    source_id = str(record.get("id") or "")
    try:
        exported_id = uuid.UUID(source_id)
    except ValueError as exc:
        raise InvalidInput("id", f"not a UUID: {source_id!r}") from exc
    data = validate_input(
        MemoryInput(
            content=record.get("content"),  # type: ignore[arg-type]
            kind=record.get("kind", "note"),
            metadata=record.get("metadata") or {},
            tags=list(record.get("tags") or []),
            user_ref=record.get("user_ref") or "",
            agent_id=record.get("agent_id") or "",
            session_id=record.get("session_id") or "",
            occurred_at=_when(record.get("occurred_at"), "occurred_at"),
            importance=float(record.get("importance", 0.5)),
        )
    )
    memories = scoped(Memory, principal.tenant)
    target = exported_id
    if Memory.objects.filter(pk=target).exclude(tenant=principal.tenant).exists():  # unscoped: id collision check
        target = uuid.uuid5(uuid.NAMESPACE_URL, f"easymemory:{principal.tenant.id}:{exported_id}")
    existing = memories.filter(pk=target).first()
    if existing is not None:
        return existing, False
    scope = {"user_ref": data.user_ref, "agent_id": data.agent_id, "session_id": data.session_id}
    digest = content_hash(data.content)
    duplicate = memories.filter(content_hash=digest, **scope).first()
    if duplicate is not None:
        return duplicate, False
    expires = _when(record.get("expires_at"), "expires_at")
    created = _when(record.get("created_at"), "created_at")
    updated = _when(record.get("updated_at"), "updated_at")
    with transaction.atomic():
        memory = Memory.objects.create(
            id=target,
            tenant=principal.tenant,
            kind=data.kind,
            content=data.content,
            metadata=data.metadata,
            tags=data.tags,
            occurred_at=data.occurred_at,
            expires_at=expires,
            importance=data.importance,
            content_hash=digest,
            search_vector=search_vector_for(data.content),
            version=int(record.get("version", 1)),
            **scope,
        )
        # auto_now(_add) ignore given values: put the exported times back with an update.
        times = {k: v for k, v in (("created_at", created), ("updated_at", updated)) if v is not None}
        if times:
            scoped(Memory, principal.tenant).filter(pk=memory.pk).update(**times)
        history = record.get("history") or []
        if not isinstance(history, list):
            raise InvalidInput("history", "history must be a list")
        if not history:
            history = [
                {
                    "event": HistoryEvent.ADD,
                    "version": 1,
                    "new_content": data.content,
                    "new_metadata": data.metadata,
                    "actor": principal.actor,
                }
            ]
        for entry in history:
            if not isinstance(entry, dict) or entry.get("event") not in HistoryEvent.values:
                raise InvalidInput("history", "a history entry has no valid event")
            row = MemoryHistory.objects.create(
                tenant=principal.tenant,
                memory_id=memory.id,
                user_ref=data.user_ref,
                **{name: entry.get(name) for name in HISTORY_FIELDS if name not in ("version", "actor")},
                version=int(entry.get("version") or 1),
                actor=str(entry.get("actor") or principal.actor)[:200],
            )
            when = _when(entry.get("created_at"), "history.created_at")
            if when is not None:
                scoped(MemoryHistory, principal.tenant).filter(pk=row.pk).update(created_at=when)
        audit_record(principal=principal, action="memory.import", target_type="memory", target_id=str(memory.id))
    memory.refresh_from_db()
    return memory, True


def mem0_item(record: Any, index: int) -> SourceItem:
    label = f"record {index}"
    if not isinstance(record, dict):
        return SourceItem(key=f"json:{index}", label=label, error="a record is not a JSON object")
    content = record.get("memory") or record.get("content") or record.get("text") or record.get("data")
    if not isinstance(content, str) or not content.strip():
        return SourceItem(key=f"json:{index}", label=label, error="no 'memory' or 'content' text")
    rid = str(record.get("id") or "")
    user = str(record.get("user_id") or record.get("user_ref") or "")
    key = f"mem0:{rid}" if rid else "mem0:" + hashlib.sha256(f"{user}\x00{content}".encode()).hexdigest()
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    metadata = {**metadata, "source": "mem0", "source_key": key}
    for name in ("created_at", "updated_at", "hash"):
        if record.get(name):
            metadata[f"mem0_{name}"] = str(record[name])
    categories = record.get("categories") or []
    try:
        occurred = _when(record.get("created_at"), "created_at")
    except ValueError as exc:
        return SourceItem(key=key, label=label, error=str(exc))
    return SourceItem(
        key=key,
        label=label,
        inputs=[
            MemoryInput(
                content=content,
                kind="fact",
                metadata=metadata,
                tags=[str(c) for c in categories if str(c).strip()][:50] if isinstance(categories, list) else [],
                user_ref=user[:200],
                agent_id=str(record.get("agent_id") or "")[:200],
                session_id=str(record.get("run_id") or "")[:200],
                occurred_at=occurred,
            )
        ],
    )


def mem0_records(text: str) -> list[Any]:
    data = json.loads(text)
    if isinstance(data, dict):
        for name in ("results", "memories", "items", "data"):
            if isinstance(data.get(name), list):
                return data[name]
        raise ValueError("expected a list of memories (or an object with 'results' / 'memories')")
    if not isinstance(data, list):
        raise ValueError("expected a list of memories")
    return data

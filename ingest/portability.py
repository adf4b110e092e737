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

from django.utils.dateparse import parse_datetime

from accounts.models import Tenant
from accounts.scoping import scoped
from core.errors import InvalidInput
from ingest.items import SourceItem, chunked
from memory.models import Memory, MemoryHistory
from memory.services import MAX_HISTORY_ENTRIES, HistoryInput, MemoryInput, RestoredMemory

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


def _text(record: dict[str, Any], name: str, default: str = "") -> str:
    value = record.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidInput(name, f"{name} must be a string")
    return value


def _whole(value: Any, name: str) -> int:
    # A JSON number; the service checks the range (a negative version is refused there).
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(name, f"{name} must be a whole number")
    return value


def _dated(value: Any, name: str) -> datetime | None:
    try:
        return _when(value, name)
    except ValueError as exc:
        raise InvalidInput(name, str(exc)) from exc


def _history_entry(entry: Any, index: int) -> HistoryInput:
    name = f"history[{index}]"
    if not isinstance(entry, dict):
        raise InvalidInput(name, "a history entry must be a JSON object")
    return HistoryInput(
        event=str(entry.get("event")),
        version=_whole(entry.get("version", 1), f"{name}.version"),
        old_content=entry.get("old_content"),
        new_content=entry.get("new_content"),
        old_metadata=entry.get("old_metadata"),
        new_metadata=entry.get("new_metadata"),
        created_at=_dated(entry.get("created_at"), f"{name}.created_at"),
    )  # the file's `actor` is not carried over (memory.services records the importer)


def exported_memory_parse(record: dict[str, Any]) -> RestoredMemory:
    """One `memory` record of an export, read into the service's input (InvalidInput naming
    the field when a value has the wrong type; memory_restore_many checks the rest)."""
    source_id = str(record.get("id") or "")
    try:
        exported_id = uuid.UUID(source_id)
    except ValueError as exc:
        raise InvalidInput("id", f"not a UUID: {source_id[:64]!r}") from exc
    tags = record.get("tags") or []
    if not isinstance(tags, list):
        raise InvalidInput("tags", "tags must be a list of strings")
    importance = record.get("importance", 0.5)
    if isinstance(importance, bool) or not isinstance(importance, int | float):
        raise InvalidInput("importance", "importance must be a number between 0 and 1")
    history = record.get("history") or []
    if not isinstance(history, list):
        raise InvalidInput("history", "history must be a list")
    return RestoredMemory(
        id=exported_id,
        data=MemoryInput(
            content=record.get("content"),  # type: ignore[arg-type]  # validate_input checks it
            kind=_text(record, "kind", "note"),
            metadata=record.get("metadata") or {},
            tags=tags,
            user_ref=_text(record, "user_ref"),
            agent_id=_text(record, "agent_id"),
            session_id=_text(record, "session_id"),
            occurred_at=_dated(record.get("occurred_at"), "occurred_at"),
            expires_at=_dated(record.get("expires_at"), "expires_at"),
            importance=float(importance),
        ),
        version=_whole(record.get("version", 1), "version"),
        created_at=_dated(record.get("created_at"), "created_at"),
        updated_at=_dated(record.get("updated_at"), "updated_at"),
        history=[_history_entry(entry, index) for index, entry in enumerate(history[: MAX_HISTORY_ENTRIES + 1])],
    )


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
    given = record.get("metadata")
    metadata = given if isinstance(given, dict) else {}
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

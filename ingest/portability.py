"""Export and re-import of a tenant's memories and graph (JSON Lines), and Mem0-style JSON import.

Export format (version 2): one JSON object per line, each with a "type":
  {"type": "header", "format": "easymemory-export", "version": 2, ...}
  {"type": "entity", "id": ..., "name": ..., "entity_type": ..., "aliases": [...], ...}
  {"type": "relation", "id": ..., "source": <entity id>, "target": <entity id>, "predicate": ...,
   "valid_at", "invalid_at", "created_at", "expired_at", "invalidated_by": <relation id>, ...}
  {"type": "memory", "id": ..., "content": ..., ..., "history": [...],
   "graph": {"mentions": [[entity id], [entity id, text]], "supports": [relation ids],
             "provider": ..., "model": ...}}
An entity or relation is written before the first record that refers to it; the ones no memory
refers to (added by hand) come at the end; their empty values (null, "", []) are left out.
"history" is left out when it is only the memory's creation, and "graph" when the memory has
none. Ids are the exporting tenant's; an import maps them. Version 1 files (memories only,
history always present) are still read; an importer skips record types it does not know and
counts them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils.dateparse import parse_datetime

from accounts.models import Tenant
from accounts.scoping import scoped
from core.errors import InvalidInput
from graph.models import Entity, GraphExtraction, Mention, Relation, RelationSource
from graph.services import (
    MAX_IMPORT_ALIASES,
    MAX_IMPORT_REFS,
    EntityImport,
    GraphImport,
    MemoryGraphImport,
    RelationImport,
    graph_import_validate,
)
from ingest.items import SourceItem, chunked
from memory.models import HistoryEvent, Memory, MemoryHistory
from memory.services import MAX_HISTORY_ENTRIES, HistoryInput, MemoryInput, RestoredMemory

FORMAT = "easymemory-export"
VERSION = 2
READABLE_VERSIONS = (1, 2)
GRAPH_TYPES = ("entity", "relation")
MEMORY_FIELDS = ("kind", "content", "metadata", "tags", "user_ref", "agent_id", "session_id", "importance")
TIME_FIELDS = ("occurred_at", "created_at", "updated_at", "expires_at")
HISTORY_FIELDS = ("event", "version", "old_content", "new_content", "old_metadata", "new_metadata", "actor")
EXPORT_BATCH = 500
# A creation entry written this close to its memory is the memory's own creation, nothing more.
TRIVIAL_HISTORY_SKEW = timedelta(seconds=1)

Progress = Callable[[int, int | None], None]  # (done, total)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _compact(record: dict[str, Any]) -> str:
    """A graph record without its empty values (absent reads as empty: null, "" or [])."""
    return json.dumps({k: v for k, v in record.items() if v not in (None, "", [])}, ensure_ascii=False) + "\n"


def _trivial_history(memory: Memory, entries: list[dict[str, Any]], created: list[datetime]) -> bool:
    """Only the ADD that created the memory as it still is: an import rebuilds it from the memory."""
    if len(entries) != 1 or memory.version != 1:
        return False
    entry = entries[0]
    return (
        entry["event"] == HistoryEvent.ADD
        and entry["version"] == 1
        and entry["old_content"] is None
        and entry["old_metadata"] is None
        and entry["new_content"] == memory.content
        and entry["new_metadata"] == memory.metadata
        and abs(created[0] - memory.created_at) < TRIVIAL_HISTORY_SKEW
    )


class _GraphWriter:
    """Writes each entity and relation once, before the first record that refers to it."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.entities: dict[int, str] = {}  # written id -> name (a mention with the same text omits it)
        self.relations: set[int] = set()

    def entity_lines(self, ids: Iterable[int]) -> Iterator[str]:
        todo = sorted(set(ids) - set(self.entities))
        for chunk in chunked(todo, EXPORT_BATCH):
            for entity in scoped(Entity, self.tenant).filter(pk__in=chunk).order_by("id"):
                self.entities[entity.pk] = entity.name
                record = {
                    "type": "entity", "id": entity.pk, "name": entity.name, "entity_type": entity.type,
                    "aliases": list(entity.aliases), "summary": entity.summary, "origin": entity.origin,
                    "first_seen_at": _iso(entity.first_seen_at), "last_seen_at": _iso(entity.last_seen_at),
                }  # fmt: skip
                yield _compact(record)

    def relation_lines(self, ids: Iterable[int]) -> Iterator[str]:
        todo = set(ids) - self.relations
        while todo:
            rows = []
            for chunk in chunked(sorted(todo), EXPORT_BATCH):
                rows += list(scoped(Relation, self.tenant).filter(pk__in=chunk).order_by("id"))
            yield from self.entity_lines([end for rel in rows for end in (rel.source_id, rel.target_id)])
            self.relations |= todo  # a relation gone meanwhile is not looked for again
            for rel in rows:
                record = {
                    "type": "relation", "id": rel.pk, "source": rel.source_id, "target": rel.target_id,
                    "predicate": rel.predicate, "fact": rel.fact, "confidence": rel.confidence,
                    "origin": rel.origin, "valid_at": _iso(rel.valid_at), "invalid_at": _iso(rel.invalid_at),
                    "created_at": _iso(rel.created_at), "expired_at": _iso(rel.expired_at),
                    "invalidated_by": rel.invalidated_by_id,
                }  # fmt: skip
                yield _compact(record)
            # The relation that closed one of these comes next, so every reference resolves.
            todo = {rel.invalidated_by_id for rel in rows if rel.invalidated_by_id} - self.relations

    def memory_graphs(self, memories: list[Memory]) -> tuple[list[str], dict[uuid.UUID, dict[str, Any]]]:
        """The entity/relation lines a batch of memories needs, and each memory's "graph" value."""
        ids = [m.id for m in memories]
        mentions: dict[uuid.UUID, list[tuple[int, str]]] = {}
        for memory_id, entity_id, text in (
            scoped(Mention, self.tenant).filter(memory_id__in=ids).order_by("id").values_list(
                "memory_id", "entity_id", "text"
            )
        ):  # fmt: skip
            mentions.setdefault(memory_id, []).append((entity_id, text))
        supports: dict[uuid.UUID, list[int]] = {}
        rows = scoped(RelationSource, self.tenant).filter(memory_id__in=ids).order_by("relation_id")
        for memory_id, relation_id in rows.values_list("memory_id", "relation_id"):
            supports.setdefault(memory_id, []).append(relation_id)
        digests = {m.id: m.content_hash for m in memories}
        extracted = {
            memory_id: (provider, model)
            for memory_id, provider, model, digest in scoped(GraphExtraction, self.tenant)
            .filter(memory_id__in=ids)
            .values_list("memory_id", "provider", "model", "content_hash")
            if digests.get(memory_id) == digest  # only an extraction of the content as it is now
        }
        lines = list(self.relation_lines(rid for rids in supports.values() for rid in rids))
        lines += list(self.entity_lines(eid for pairs in mentions.values() for eid, _ in pairs))
        graphs: dict[uuid.UUID, dict[str, Any]] = {}
        for memory_id in ids:
            graph: dict[str, Any] = {}
            written = [
                [eid] if text == self.entities[eid] else [eid, text]
                for eid, text in mentions.get(memory_id, [])
                if eid in self.entities
            ]
            if written:
                graph["mentions"] = written
            held = [rid for rid in supports.get(memory_id, []) if rid in self.relations]
            if held:
                graph["supports"] = held
            if memory_id in extracted:
                graph["provider"], graph["model"] = extracted[memory_id]
            if graph:
                graphs[memory_id] = graph
        return lines, graphs

    def remaining_lines(self) -> Iterator[str]:
        """Entities and relations no exported memory refers to (added by hand, or left by merges)."""
        relation_ids = scoped(Relation, self.tenant).order_by("id").values_list("id", flat=True)
        for chunk in chunked(relation_ids.iterator(chunk_size=EXPORT_BATCH), EXPORT_BATCH):
            yield from self.relation_lines(chunk)
        entity_ids = scoped(Entity, self.tenant).order_by("id").values_list("id", flat=True)
        for chunk in chunked(entity_ids.iterator(chunk_size=EXPORT_BATCH), EXPORT_BATCH):
            yield from self.entity_lines(chunk)


def export_lines(
    tenant: Tenant,
    memory_ids: list[uuid.UUID] | None = None,
    *,
    graph: bool = True,
    progress: Progress | None = None,
) -> Iterator[str]:
    """The tenant's export (or of the memories `memory_ids` only, with the part of the graph they
    support), line by line; without the graph when `graph` is false (a credential without
    graph:read). Streamed: memory use grows only with the number of graph nodes and edges.
    `progress` is called with (memories written, total) after each batch."""
    yield json.dumps({"type": "header", "format": FORMAT, "version": VERSION, "tenant": tenant.slug}) + "\n"
    memories = scoped(Memory, tenant).order_by("created_at", "content_hash", "id")
    if memory_ids is not None:
        memories = memories.filter(pk__in=memory_ids)
    total = memories.count() if progress is not None else None
    done = 0
    writer = _GraphWriter(tenant) if graph else None
    # A server-side cursor (iterator) streams the rows; history and graph are fetched per batch.
    for batch in chunked(memories.iterator(chunk_size=EXPORT_BATCH), EXPORT_BATCH):
        history: dict[uuid.UUID, list[dict[str, Any]]] = {}
        created: dict[uuid.UUID, list[datetime]] = {}
        rows = scoped(MemoryHistory, tenant).filter(memory_id__in=[m.id for m in batch]).order_by("created_at", "id")
        for row in rows:
            entry = {name: getattr(row, name) for name in HISTORY_FIELDS}
            entry["created_at"] = _iso(row.created_at)
            history.setdefault(row.memory_id, []).append(entry)
            created.setdefault(row.memory_id, []).append(row.created_at)
        lines, graphs = writer.memory_graphs(batch) if writer is not None else ([], {})
        yield from lines
        for memory in batch:
            record: dict[str, Any] = {"type": "memory", "id": str(memory.id)}
            record.update({name: getattr(memory, name) for name in MEMORY_FIELDS})
            record["tags"] = list(memory.tags)
            record.update({name: _iso(getattr(memory, name)) for name in TIME_FIELDS})
            record["version"] = memory.version
            entries = history.get(memory.id, [])
            if not _trivial_history(memory, entries, created.get(memory.id, [])):
                record["history"] = entries
            if memory.id in graphs:
                record["graph"] = graphs[memory.id]
            yield json.dumps(record, ensure_ascii=False) + "\n"
        done += len(batch)
        if progress is not None:
            progress(done, total)
    if memory_ids is None and writer is not None:
        yield from writer.remaining_lines()


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
    created_at = _dated(record.get("created_at"), "created_at")
    entries = [_history_entry(entry, index) for index, entry in enumerate(history[: MAX_HISTORY_ENTRIES + 1])]
    if not entries and isinstance(record.get("content"), str):
        # Left out as trivial (version 2): the memory's creation, when the memory was created.
        entries = [
            HistoryInput(
                event=HistoryEvent.ADD, version=1, new_content=record["content"],
                new_metadata=record.get("metadata") or {}, created_at=created_at,
            )  # fmt: skip
        ]
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
        created_at=created_at,
        updated_at=_dated(record.get("updated_at"), "updated_at"),
        history=entries,
    )


# --- the graph section -----------------------------------------------------------------------


def _ref(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise InvalidInput(name, f"{name} must be a positive whole number (an id of the file)")
    return value


def _string(record: dict[str, Any], key: str, name: str, default: str = "") -> str:
    value = record.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidInput(f"{name}.{key}", f"{key} must be a string")
    return value


def _strings(value: Any, name: str, limit: int) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(name, "must be a list of strings")
    if len(value) > limit:
        raise InvalidInput(name, f"at most {limit} items")
    return tuple(value)


def exported_graph_parse(record: dict[str, Any]) -> EntityImport | RelationImport:
    """One `entity` or `relation` record, read into the graph service's input (InvalidInput naming
    the record and field when a value has the wrong type; graph_import_validate checks the rest)."""
    kind = record.get("type")
    ref = _ref(record.get("id"), f"{kind}.id")
    name = f"{kind} {ref}"
    if kind == "entity":
        return EntityImport(
            ref=ref,
            name=_string(record, "name", name),
            type=_string(record, "entity_type", name, "entity"),
            aliases=_strings(record.get("aliases"), f"{name}.aliases", MAX_IMPORT_ALIASES),
            summary=_string(record, "summary", name),
            origin=_string(record, "origin", name, "extracted"),
            first_seen_at=_dated(record.get("first_seen_at"), f"{name}.first_seen_at"),
            last_seen_at=_dated(record.get("last_seen_at"), f"{name}.last_seen_at"),
        )
    confidence = record.get("confidence", 1.0)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise InvalidInput(f"{name}.confidence", "confidence must be a number between 0 and 1")
    closed_by = record.get("invalidated_by")
    return RelationImport(
        ref=ref,
        source=_ref(record.get("source"), f"{name}.source"),
        target=_ref(record.get("target"), f"{name}.target"),
        predicate=_string(record, "predicate", name),
        fact=_string(record, "fact", name),
        confidence=float(confidence),
        origin=_string(record, "origin", name, "extracted"),
        valid_at=_dated(record.get("valid_at"), f"{name}.valid_at"),
        invalid_at=_dated(record.get("invalid_at"), f"{name}.invalid_at"),
        created_at=_dated(record.get("created_at"), f"{name}.created_at"),
        expired_at=_dated(record.get("expired_at"), f"{name}.expired_at"),
        invalidated_by=None if closed_by is None else _ref(closed_by, f"{name}.invalidated_by"),
    )


def memory_graph_parse(record: dict[str, Any]) -> MemoryGraphImport | None:
    """The `graph` value of a memory record (None when it has none)."""
    graph = record.get("graph")
    if graph is None:
        return None
    memory = uuid.UUID(str(record.get("id")))
    name = f"memory {memory}.graph"
    if not isinstance(graph, dict):
        raise InvalidInput(name, "graph must be a JSON object")
    mentions = graph.get("mentions") or []
    supports = graph.get("supports") or []
    if not isinstance(mentions, list) or not isinstance(supports, list):
        raise InvalidInput(name, "mentions and supports must be lists")
    if len(mentions) > MAX_IMPORT_REFS or len(supports) > MAX_IMPORT_REFS:
        raise InvalidInput(name, f"at most {MAX_IMPORT_REFS} mentions and supported relations")
    pairs: list[tuple[int, str]] = []
    for item in mentions:
        if not isinstance(item, list) or not 1 <= len(item) <= 2 or (len(item) == 2 and not isinstance(item[1], str)):
            raise InvalidInput(f"{name}.mentions", "each mention is [entity id] or [entity id, text]")
        pairs.append((_ref(item[0], f"{name}.mentions"), item[1] if len(item) == 2 else ""))
    return MemoryGraphImport(
        memory=memory,
        mentions=tuple(pairs),
        supports=tuple(_ref(item, f"{name}.supports") for item in supports),
        provider=_string(graph, "provider", name),
        model=_string(graph, "model", name),
    )


@dataclass
class ExportFile:
    """An EasyMemory export read once through: its version, the ids of its memories and its graph."""

    version: int
    memory_ids: set[uuid.UUID] = field(default_factory=set)
    graph_lines: int = 0  # entity and relation records
    graph: GraphImport = field(default_factory=GraphImport)


def export_file_read(lines: list[str]) -> ExportFile:
    """First pass over an export: the header's version and the whole graph section, checked for
    consistency before anything is stored (InvalidInput naming the line; a bad memory record is
    left for the second pass, which reports it alone)."""
    try:
        header = json.loads(lines[0])
        version = header.get("version", 1)
    except (ValueError, IndexError, AttributeError) as exc:
        raise InvalidInput("header", "the first line is not an export header") from exc
    if version not in READABLE_VERSIONS:
        raise InvalidInput("header.version", f"format version {str(version)[:20]} is not one this version reads")
    out = ExportFile(version=version)
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # reported by the second pass
        if not isinstance(record, dict):
            continue
        kind = record.get("type")
        try:
            if kind == "memory":
                try:
                    memory_id = uuid.UUID(str(record.get("id")))
                except ValueError:
                    continue
                out.memory_ids.add(memory_id)
                if version >= 2 and (graph := memory_graph_parse(record)) is not None:
                    out.graph.memories.append(graph)
            elif version >= 2 and kind in GRAPH_TYPES:
                out.graph_lines += 1
                parsed = exported_graph_parse(record)
                if isinstance(parsed, EntityImport):
                    out.graph.entities.append(parsed)
                else:
                    out.graph.relations.append(parsed)
        except InvalidInput as exc:
            raise InvalidInput(f"line {number}", f"{exc.field}: {exc.message}") from exc
    graph_import_validate(out.graph, out.memory_ids)
    return out


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

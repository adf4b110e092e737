"""Typed views of the server's JSON. Each model keeps the full JSON in `raw`, so fields a newer
server adds stay reachable without a client upgrade."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value)
    if text.endswith("Z"):  # fromisoformat before 3.11 does not read "Z"
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class Memory:
    id: str
    kind: str
    content: str
    metadata: dict[str, Any]
    tags: list[str]
    user_ref: str
    agent_id: str
    session_id: str
    importance: float
    occurred_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    expires_at: datetime | None
    enrichment_state: str
    enrichment_error: str
    version: int
    created: bool | None = None  # set on a create: False when an identical memory already existed
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Memory:
        return cls(
            id=str(data["id"]),
            kind=data.get("kind", "note"),
            content=data.get("content", ""),
            metadata=data.get("metadata") or {},
            tags=list(data.get("tags") or []),
            user_ref=data.get("user_ref", ""),
            agent_id=data.get("agent_id", ""),
            session_id=data.get("session_id", ""),
            importance=float(data.get("importance", 0.5)),
            occurred_at=_time(data.get("occurred_at")),
            created_at=_time(data.get("created_at")),
            updated_at=_time(data.get("updated_at")),
            expires_at=_time(data.get("expires_at")),
            enrichment_state=data.get("enrichment_state", ""),
            enrichment_error=data.get("enrichment_error", ""),
            version=int(data.get("version", 1)),
            created=data.get("created"),
            raw=data,
        )


@dataclass(frozen=True)
class SkippedMemory:
    """An item of a batch add that the memory policy did not store; `reason` says why."""

    reason: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Hit:
    """A search result: the memory, its fused score, and the evidence for its rank
    (which signals found it, e.g. {"vector": {"rank": 1, ...}, "fulltext": {...}, "graph": {...}})."""

    memory: Memory
    score: float
    evidence: dict[str, Any]
    # False while the memory waits for its embedding (just written): found by words or the graph only.
    embedded: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hit:
        return cls(
            memory=Memory.from_dict(data["memory"]),
            score=float(data["score"]),
            evidence=data.get("evidence") or {},
            embedded=bool(data.get("embedded", True)),
        )


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    took_ms: float

    def __iter__(self) -> Any:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, index: int) -> Hit:
        return self.hits[index]


@dataclass(frozen=True)
class HistoryEntry:
    memory_id: str
    event: str
    version: int
    old_content: str | None
    new_content: str | None
    old_metadata: dict[str, Any] | None
    new_metadata: dict[str, Any] | None
    actor: str
    created_at: datetime | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryEntry:
        return cls(
            memory_id=str(data.get("memory_id", "")),
            event=data.get("event", ""),
            version=int(data.get("version") or 0),
            old_content=data.get("old_content"),
            new_content=data.get("new_content"),
            old_metadata=data.get("old_metadata"),
            new_metadata=data.get("new_metadata"),
            actor=data.get("actor", ""),
            created_at=_time(data.get("created_at")),
        )


@dataclass(frozen=True)
class Entity:
    id: int
    name: str
    type: str
    aliases: list[str]
    summary: str
    mention_count: int
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entity:
        return cls(
            id=int(data["id"]),
            name=data.get("name", ""),
            type=data.get("type", ""),
            aliases=list(data.get("aliases") or []),
            summary=data.get("summary") or "",
            mention_count=int(data.get("mention_count") or 0),
            first_seen_at=_time(data.get("first_seen_at")),
            last_seen_at=_time(data.get("last_seen_at")),
            raw=data,
        )


@dataclass(frozen=True)
class EntityRef:
    id: int
    name: str
    type: str


@dataclass(frozen=True)
class Relation:
    id: int
    source: EntityRef
    target: EntityRef
    predicate: str
    fact: str
    confidence: float
    valid_at: datetime | None
    invalid_at: datetime | None
    expired_at: datetime | None  # set when the relation was retired (deleted); it stays for history
    current: bool
    memories: list[str]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Relation:
        def ref(value: dict[str, Any]) -> EntityRef:
            return EntityRef(id=int(value["id"]), name=value.get("name", ""), type=value.get("type", ""))

        return cls(
            id=int(data["id"]),
            source=ref(data["source"]),
            target=ref(data["target"]),
            predicate=data.get("predicate", ""),
            fact=data.get("fact", ""),
            confidence=float(data.get("confidence", 1.0)),
            valid_at=_time(data.get("valid_at")),
            invalid_at=_time(data.get("invalid_at")),
            expired_at=_time(data.get("expired_at")),
            current=bool(data.get("current", True)),
            memories=[str(m) for m in data.get("memories") or []],
            raw=data,
        )


@dataclass(frozen=True)
class EntityDetail:
    """An entity with its current and past relations and the memories that mention it."""

    entity: Entity
    current: list[Relation]
    past: list[Relation]
    memories: list[dict[str, Any]]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EntityDetail:
        relations = data.get("relations") or {}
        return cls(
            entity=Entity.from_dict(data),
            current=[Relation.from_dict(r) for r in relations.get("current", [])],
            past=[Relation.from_dict(r) for r in relations.get("past", [])],
            memories=list(data.get("memories") or []),
            raw=data,
        )


@dataclass(frozen=True)
class Subgraph:
    """Nodes (entities with `distance` and `centrality`) and edges of a neighbourhood or an export."""

    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Subgraph:
        return cls(nodes=list(data.get("nodes") or []), edges=list(data.get("edges") or []), raw=data)


@dataclass(frozen=True)
class GraphPath:
    """The shortest path between two entities; `entities` is empty when none exists within the depth."""

    entities: list[Entity]
    edges: list[dict[str, Any]]
    length: int | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphPath:
        path = data.get("path") or []
        return cls(
            entities=[Entity.from_dict(e) for e in path],
            edges=list(data.get("edges") or []),
            length=data.get("length"),
            raw=data,
        )


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    status: str  # queued | running | done | failed
    params: dict[str, Any]
    total: int | None
    done: int
    skipped: int
    failed: int
    memories_created: int
    error: str
    errors: list[Any]
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    @property
    def progress(self) -> float | None:
        """Fraction of the items handled (0..1), or None while the total is unknown."""
        if not self.total:
            return 1.0 if self.status == "done" else None
        return min(1.0, (self.done + self.skipped + self.failed) / self.total)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(
            id=str(data["id"]),
            kind=data.get("kind", ""),
            status=data.get("status", ""),
            params=data.get("params") or {},
            total=data.get("total"),
            done=int(data.get("done") or 0),
            skipped=int(data.get("skipped") or 0),
            failed=int(data.get("failed") or 0),
            memories_created=int(data.get("memories_created") or 0),
            error=data.get("error") or "",
            errors=list(data.get("errors") or []),
            created_at=_time(data.get("created_at")),
            started_at=_time(data.get("started_at")),
            finished_at=_time(data.get("finished_at")),
            raw=data,
        )

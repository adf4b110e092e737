"""Every REST operation as a request plus a parser; the sync and async clients run them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, TypedDict

import httpx

from easymemory_client._core import Call, Op, clean, jsonable
from easymemory_client.models import (
    Entity,
    EntityDetail,
    GraphPath,
    HistoryEntry,
    Hit,
    Job,
    Memory,
    Relation,
    SearchResult,
    SkippedMemory,
    Subgraph,
)


class MemoryInput(TypedDict, total=False):
    """One memory to add (only `content` is required)."""

    content: str
    kind: str  # note | message | document | fact
    metadata: dict[str, Any]
    tags: list[str]
    user_ref: str
    agent_id: str
    session_id: str
    occurred_at: datetime | str | None
    expires_at: datetime | str | None
    importance: float


class Filters(TypedDict, total=False):
    """Filters for lists and search; all optional and combined with AND."""

    kind: list[str]
    tags: list[str]  # any of
    tags_all: list[str]
    user_ref: str
    agent_id: str
    session_id: str
    metadata: dict[str, Any]  # JSON containment
    occurred_after: datetime | str
    occurred_before: datetime | str
    created_after: datetime | str
    created_before: datetime | str
    include_expired: bool
    include_ephemeral: bool
    as_of: datetime | str


Upload = str | Path | tuple[str, bytes | BinaryIO]


def _json(response: httpx.Response) -> Any:
    return response.json()


def _none(response: httpx.Response) -> None:
    return None


def _created(data: dict[str, Any]) -> Memory | SkippedMemory:
    if data.get("id") is None:
        return SkippedMemory(reason=str(data.get("skipped") or ""), raw=data)
    return Memory.from_dict(data)


def add(item: MemoryInput) -> Op[Memory | SkippedMemory]:
    return Op(Call("POST", "/v1/memories", json=jsonable(dict(item))), lambda r: _created(r.json()))


def add_many(items: list[MemoryInput]) -> Op[list[Memory | SkippedMemory]]:
    body = [jsonable(dict(item)) for item in items]
    return Op(Call("POST", "/v1/memories", json=body), lambda r: [_created(d) for d in r.json()])


def get(memory_id: str) -> Op[Memory]:
    return Op(Call("GET", f"/v1/memories/{memory_id}"), lambda r: Memory.from_dict(r.json()))


def update(memory_id: str, changes: dict[str, Any]) -> Op[Memory]:
    return Op(Call("PATCH", f"/v1/memories/{memory_id}", json=jsonable(changes)), lambda r: Memory.from_dict(r.json()))


def delete(memory_id: str) -> Op[None]:
    return Op(Call("DELETE", f"/v1/memories/{memory_id}"), _none)


def history(memory_id: str) -> Op[list[HistoryEntry]]:
    call = Call("GET", f"/v1/memories/{memory_id}/history")
    return Op(call, lambda r: [HistoryEntry.from_dict(d) for d in r.json()["results"]])


def forget_user(user_ref: str) -> Op[int]:
    return Op(Call("DELETE", "/v1/memories", params={"user_ref": user_ref}), lambda r: int(r.json()["deleted"]))


def memory_page(filters: Filters, params: dict[str, Any]) -> Op[tuple[list[Memory], str | None]]:
    call = Call("GET", "/v1/memories", params=clean({**filters, **params}))
    return Op(call, lambda r: ([Memory.from_dict(d) for d in r.json()["results"]], r.json().get("next")))


def search(
    query: str,
    *,
    k: int,
    filters: Filters | None,
    weights: dict[str, float] | None,
    as_of: datetime | str | None,
) -> Op[SearchResult]:
    merged: dict[str, Any] = dict(filters or {})
    if as_of is not None:
        merged["as_of"] = as_of
    body = {"query": query, "k": k, "filters": jsonable(merged), "weights": dict(weights or {})}

    def parse(response: httpx.Response) -> SearchResult:
        data = response.json()
        return SearchResult(hits=[Hit.from_dict(h) for h in data["results"]], took_ms=float(data.get("took_ms", 0)))

    return Op(Call("POST", "/v1/search", json=body), parse)


def stats() -> Op[dict[str, Any]]:
    return Op(Call("GET", "/v1/stats"), _json)


# --- graph -------------------------------------------------------------------------------------


def entity_page(params: dict[str, Any]) -> Op[tuple[list[Entity], str | None]]:
    call = Call("GET", "/v1/entities", params=clean(params))
    return Op(call, lambda r: ([Entity.from_dict(d) for d in r.json()["results"]], r.json().get("next")))


def entity(entity_id: int) -> Op[EntityDetail]:
    return Op(Call("GET", f"/v1/entities/{entity_id}"), lambda r: EntityDetail.from_dict(r.json()))


def entity_delete(entity_id: int) -> Op[None]:
    return Op(Call("DELETE", f"/v1/entities/{entity_id}"), _none)


def entity_merge(target: int, sources: list[int]) -> Op[EntityDetail]:
    call = Call("POST", "/v1/entities/merge", json={"target": target, "sources": list(sources)})
    return Op(call, lambda r: EntityDetail.from_dict(r.json()))


def neighbors(entity_id: int, depth: int, as_of: datetime | str | None) -> Op[Subgraph]:
    call = Call("GET", f"/v1/entities/{entity_id}/neighbors", params=clean({"depth": depth, "as_of": as_of}))
    return Op(call, lambda r: Subgraph.from_dict(r.json()))


def path(source: int, target: int, max_depth: int, as_of: datetime | str | None) -> Op[GraphPath]:
    params = clean({"from": source, "to": target, "max_depth": max_depth, "as_of": as_of})
    return Op(Call("GET", "/v1/graph/path", params=params), lambda r: GraphPath.from_dict(r.json()))


def graph_export(as_of: datetime | str | None) -> Op[Subgraph]:
    call = Call("GET", "/v1/graph/export", params=clean({"format": "json", "as_of": as_of}))
    return Op(call, lambda r: Subgraph.from_dict(r.json()))


def graph_export_graphml(as_of: datetime | str | None) -> Op[str]:
    call = Call("GET", "/v1/graph/export", params=clean({"format": "graphml", "as_of": as_of}))
    return Op(call, lambda r: r.text)


EntityArg = int | str | dict[str, str]


def _entity_ref(value: EntityArg) -> Any:
    # A bare name is the common case when adding a fact by hand: find or create the entity by it.
    if isinstance(value, str) and not value.isdigit():
        return {"name": value}
    return value


def relation_add(
    source: EntityArg,
    target: EntityArg,
    predicate: str,
    *,
    fact: str,
    confidence: float,
    valid_at: datetime | str | None,
    invalid_at: datetime | str | None,
) -> Op[Relation]:
    body = jsonable(
        {
            "source": _entity_ref(source),
            "target": _entity_ref(target),
            "predicate": predicate,
            "fact": fact,
            "confidence": confidence,
            "valid_at": valid_at,
            "invalid_at": invalid_at,
        }
    )
    return Op(Call("POST", "/v1/relations", json=body), lambda r: Relation.from_dict(r.json()))


def relation(relation_id: int) -> Op[Relation]:
    return Op(Call("GET", f"/v1/relations/{relation_id}"), lambda r: Relation.from_dict(r.json()))


def relation_delete(relation_id: int) -> Op[None]:
    return Op(Call("DELETE", f"/v1/relations/{relation_id}"), _none)


# --- imports and jobs --------------------------------------------------------------------------

UPLOAD_PATHS = {
    "file": "/v1/files",
    "json": "/v1/import",
    "slack": "/v1/integrations/slack/import",
    "mbox": "/v1/integrations/mbox/import",
}


def _file_field(upload: Upload) -> tuple[str, bytes | BinaryIO]:
    if isinstance(upload, tuple):
        return upload
    source = Path(upload)
    return source.name, source.read_bytes()


def upload(kind: str, source: Upload) -> Op[Job]:
    call = Call("POST", UPLOAD_PATHS[kind], files={"file": _file_field(source)})
    return Op(call, lambda r: Job.from_dict(r.json()))


def index_directory(directory: str, pattern: str, recursive: bool) -> Op[Job]:
    body = {"path": directory, "pattern": pattern, "recursive": recursive}
    return Op(Call("POST", "/v1/index", json=body), lambda r: Job.from_dict(r.json()))


def job(job_id: str) -> Op[Job]:
    return Op(Call("GET", f"/v1/jobs/{job_id}"), lambda r: Job.from_dict(r.json()))


def job_page(params: dict[str, Any]) -> Op[tuple[list[Job], str | None]]:
    call = Call("GET", "/v1/jobs", params=clean(params))
    return Op(call, lambda r: ([Job.from_dict(d) for d in r.json()["results"]], r.json().get("next")))


EXPORT = Call("GET", "/v1/export", stream=True)


# --- admin and audit (plain JSON objects) ------------------------------------------------------


def admin(method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Op[Any]:
    call = Call(method, f"/v1/admin/{path}", json=body, params=clean(params or {}) or None)
    return Op(call, lambda r: None if r.status_code == 204 else r.json())


def api_key_create(
    name: str,
    role: str,
    expires_at: datetime | str | None,
    rate_limit_per_min: int | None,
    rate_limit_burst: int | None,
) -> Op[dict[str, Any]]:
    body = {
        "name": name,
        "role": role,
        "expires_at": expires_at.isoformat() if isinstance(expires_at, datetime) else expires_at,
        "rate_limit_per_min": rate_limit_per_min,
        "rate_limit_burst": rate_limit_burst,
    }
    return admin("POST", "api-keys", body)


def audit(params: dict[str, Any]) -> Op[dict[str, Any]]:
    return Op(Call("GET", "/v1/audit", params=clean(params)), _json)

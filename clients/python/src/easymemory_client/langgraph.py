"""A LangGraph long-term memory store (`BaseStore`) kept in EasyMemory.

Install with the `langgraph` extra. Each item is one memory:

- its text (what search embeds and ranks) is the value's `content`/`text`/`memory` field when it has
  one, else the value as JSON;
- metadata["langgraph"] holds the namespace, the key and the whole value, so `get` returns exactly what
  `put` stored;
- namespace labels map onto EasyMemory's scope fields (by default the second label is the `user_ref`, as
  in LangGraph's `("memories", user_id)` convention), so the server's per-user filters, per-user
  forgetting and the dashboard see LangGraph memories like any other.

Semantic `search(prefix, query=...)` goes through the server's hybrid search (`/v1/search`);
`filter` matches the stored value like LangGraph's own stores (exact values, `$eq`, `$ne`, `$gt`,
`$gte`, `$lt`, `$lte`). TTLs are not supported (`supports_ttl = False`); `index=False` is accepted but
every memory is indexed by the server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from easymemory_client.client import EasyMemory
from easymemory_client.errors import BadRequest
from easymemory_client.models import Memory

META = "langgraph"
TEXT_FIELDS = ("content", "text", "memory")
MAX_K = 100  # the server's largest k
SCOPE_FIELDS = ("user_ref", "agent_id", "session_id")


def _path(namespace: tuple[str, ...]) -> str:
    # LangGraph forbids "." inside labels, so joining on it is unambiguous.
    return ".".join(namespace)


def _prefixes(namespace: tuple[str, ...]) -> list[str]:
    return [_path(namespace[: n + 1]) for n in range(len(namespace))]


def _text_of(value: Mapping[str, Any]) -> str:
    for name in TEXT_FIELDS:
        text = value.get(name)
        if isinstance(text, str) and text.strip():
            return text
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _compare(item_value: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        if any(str(k).startswith("$") for k in wanted):
            return all(_operator(item_value, op, operand) for op, operand in wanted.items())
        return isinstance(item_value, dict) and all(_compare(item_value.get(k), v) for k, v in wanted.items())
    return item_value == wanted


def _operator(value: Any, operator: str, operand: Any) -> bool:
    if operator == "$eq":
        return bool(value == operand)
    if operator == "$ne":
        return bool(value != operand)
    if value is None:
        return False
    if operator == "$gt":
        return float(value) > float(operand)
    if operator == "$gte":
        return float(value) >= float(operand)
    if operator == "$lt":
        return float(value) < float(operand)
    if operator == "$lte":
        return float(value) <= float(operand)
    raise ValueError(f"unsupported filter operator {operator}")


def _matches(value: dict[str, Any], filters: dict[str, Any] | None) -> bool:
    return not filters or all(_compare(value.get(k), v) for k, v in filters.items())


def _namespace_matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path, strict=False)
    else:
        pairs = zip(reversed(namespace), reversed(path), strict=False)
    return all(want == "*" or have == want for have, want in pairs)


class EasyMemoryStore(BaseStore):
    """LangGraph's BaseStore over an EasyMemory server.

    `namespace_scope` maps scope fields to namespace positions, e.g. {"user_ref": 1} puts the second
    label of ("memories", "alice") into user_ref; positions the namespace lacks leave the field empty.
    """

    supports_ttl = False

    def __init__(
        self,
        client: EasyMemory,
        *,
        namespace_scope: Mapping[str, int] | None = None,
        agent_id: str = "",
        kind: str = "note",
    ) -> None:
        scope = dict({"user_ref": 1} if namespace_scope is None else namespace_scope)
        unknown = set(scope) - set(SCOPE_FIELDS)
        if unknown:
            raise ValueError(f"namespace_scope keys must be among {SCOPE_FIELDS}, not {sorted(unknown)}")
        if agent_id and "agent_id" in scope:
            raise ValueError("give agent_id or map it from the namespace, not both")
        self.client = client
        self.namespace_scope = scope
        self.agent_id = agent_id
        self.kind = kind

    # --- mapping ---------------------------------------------------------------------------------
    def _scope_of(self, namespace: tuple[str, ...]) -> dict[str, str]:
        scope = {
            name: namespace[i] if -len(namespace) <= i < len(namespace) else ""
            for name, i in self.namespace_scope.items()
        }
        if self.agent_id:
            scope["agent_id"] = self.agent_id
        return scope

    def _known_scope(self, prefix: tuple[str, ...]) -> dict[str, str]:
        """The scope fields a namespace prefix fixes (used to narrow lists and searches on the server)."""
        scope = {name: prefix[i] for name, i in self.namespace_scope.items() if 0 <= i < len(prefix)}
        if self.agent_id:
            scope["agent_id"] = self.agent_id
        return scope

    @staticmethod
    def _item_parts(memory: Memory) -> tuple[tuple[str, ...], str, dict[str, Any]] | None:
        meta = memory.metadata.get(META)
        if not isinstance(meta, dict) or not isinstance(meta.get("namespace"), list):
            return None
        return tuple(meta["namespace"]), str(meta.get("key", "")), dict(meta.get("value") or {})

    def _item(self, memory: Memory, score: float | None = None, searched: bool = False) -> Item | None:
        parts = self._item_parts(memory)
        if parts is None:
            return None
        namespace, key, value = parts
        created = memory.created_at or datetime.now(UTC)
        updated = memory.updated_at or created
        if searched:
            return SearchItem(namespace, key, value, created, updated, score)
        return Item(value=value, key=key, namespace=namespace, created_at=created, updated_at=updated)

    def _find(self, namespace: tuple[str, ...], key: str) -> Memory | None:
        filters: dict[str, Any] = {"metadata": {META: {"path": _path(namespace), "key": key}}}
        filters.update(self._known_scope(namespace))
        return next(iter(self.client.list(page_size=1, **filters)), None)

    # --- operations ------------------------------------------------------------------------------
    def _get(self, op: GetOp) -> Item | None:
        memory = self._find(op.namespace, str(op.key))
        return None if memory is None else self._item(memory)

    def _put(self, op: PutOp) -> None:
        existing = self._find(op.namespace, str(op.key))
        if op.value is None:
            if existing is not None:
                self.client.delete(existing.id)
            return
        value = dict(op.value)
        meta = {"namespace": list(op.namespace), "path": _path(op.namespace), "prefixes": _prefixes(op.namespace)}
        meta |= {"key": str(op.key), "value": value}
        text = _text_of(value)
        if existing is not None:
            metadata = {**existing.metadata, META: meta}
            try:
                self.client.update(existing.id, content=text, metadata=metadata)
            except BadRequest as exc:
                if exc.field != "content":
                    raise
                # Another item of this scope holds the same text: keep both apart by naming the key.
                self.client.update(existing.id, content=f"{text}\n[{op.key}]", metadata=metadata)
            return
        created = self.client.add(text, kind=self.kind, metadata={META: meta}, **self._scope_of(op.namespace))
        if isinstance(created, Memory) and not created.created:
            # The server de-duplicates identical text in a scope; an item is one memory per key.
            self.client.add(
                f"{text}\n[{op.key}]", kind=self.kind, metadata={META: meta}, **self._scope_of(op.namespace)
            )

    def _search(self, op: SearchOp) -> list[SearchItem]:
        meta_filter: dict[str, Any] = {"prefixes": [_path(op.namespace_prefix)]} if op.namespace_prefix else {}
        exact = {k: v for k, v in (op.filter or {}).items() if not isinstance(v, dict | list)}
        if exact:
            meta_filter["value"] = exact  # narrowed by the server; operators are checked below
        filters: dict[str, Any] = {"metadata": {META: meta_filter}, **self._known_scope(op.namespace_prefix)}
        wanted = op.offset + op.limit
        found: list[SearchItem] = []
        if op.query:
            result = self.client.search(op.query, k=min(MAX_K, max(wanted, 1) * 2), filters=filters)  # type: ignore[arg-type]
            for hit in result:
                item = self._item(hit.memory, hit.score, searched=True)
                if isinstance(item, SearchItem) and _matches(item.value, op.filter):
                    found.append(item)
        else:
            for memory in self.client.list(page_size=min(500, max(wanted, 10)), **filters):
                item = self._item(memory, searched=True)
                if isinstance(item, SearchItem) and _matches(item.value, op.filter):
                    found.append(item)
                    if len(found) >= wanted:
                        break
        return found[op.offset : wanted]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        prefix: tuple[str, ...] = ()
        for condition in op.match_conditions or ():
            if condition.match_type == "prefix" and "*" not in condition.path:
                prefix = tuple(condition.path)
        meta_filter = {"prefixes": [_path(prefix)]} if prefix else {}
        filters: dict[str, Any] = {"metadata": {META: meta_filter}, **self._known_scope(prefix)}
        namespaces: set[tuple[str, ...]] = set()
        for memory in self.client.list(page_size=500, **filters):
            parts = self._item_parts(memory)
            if parts is None:
                continue
            namespace = parts[0]
            if all(_namespace_matches(c, namespace) for c in op.match_conditions or ()):
                namespaces.add(namespace[: op.max_depth] if op.max_depth is not None else namespace)
        return sorted(namespaces)[op.offset : op.offset + op.limit]

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, PutOp):
                results.append(self._put(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            else:
                raise TypeError(f"unknown store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        # The sync client in a worker thread: one code path, and the event loop stays free.
        return await asyncio.to_thread(self.batch, list(ops))

"""MCP tools for memories: thin wrappers over the services, selectors and search
the REST API uses, with the same validation (the REST serializers), the same
access helpers (404 for foreign ids) and the same audit events.

Descriptions and schemas are written for a model to read: say what the tool is
for, when to use it, and what each argument means.
"""

from __future__ import annotations

import base64
import binascii
import time
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError

from accounts.principal import Principal
from core.errors import InvalidInput
from mcp_server.registry import NULLABLE_TIME_OUT, TIME_OUT, out_object, tool, validated
from memory import services
from memory.models import Kind
from memory.search import MAX_K, memory_search_for
from memory.selectors import memory_get_for, memory_history_for, memory_list_for, memory_read_for, memory_stats_for
from memory.serializers import (
    FiltersSerializer,
    HitSerializer,
    MemoryHistorySerializer,
    MemoryInputSerializer,
    MemorySerializer,
    MemoryUpdateSerializer,
)

READ = "memory:read"
WRITE = "memory:write"
MAX_LIST_LIMIT = 100

# --- schema fragments ---------------------------------------------------------------

_ID = {"type": "string", "description": "The memory's id (a UUID, as returned by memory_add or memory_search)."}
_KIND = {
    "type": "string",
    "enum": list(Kind.values),
    "description": "What the memory is: note (default; something worth remembering), message (a chat turn), "
    "document (a longer text or file excerpt), fact (a short statement about the world or the user).",
}
_TAGS = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 100},
    "maxItems": 50,
    "description": 'Short labels for grouping and filtering, e.g. ["preferences", "project-x"].',
}
_METADATA = {
    "type": "object",
    "description": 'Any JSON object stored with the memory (e.g. {"source": "chat", "url": "..."}); '
    "filterable by containment.",
}
_DATETIME = {"type": "string", "format": "date-time"}
_SCOPE = {
    "type": "object",
    "additionalProperties": False,
    "description": "Whose memory this is. Leave out for memory shared by the whole workspace. The same content "
    "is stored once per scope (adding it again returns the existing memory).",
    "properties": {
        "user_ref": {"type": "string", "maxLength": 200, "description": "The end user it is about, e.g. 'alice'."},
        "agent_id": {"type": "string", "maxLength": 200, "description": "The agent that owns it."},
        "session_id": {"type": "string", "maxLength": 200, "description": "The conversation it belongs to."},
    },
}
_FILTERS = {
    "type": "object",
    "additionalProperties": False,
    "description": "Optional narrowing; all given conditions must hold.",
    "properties": {
        "kind": {"type": "array", "items": {"type": "string", "enum": list(Kind.values)}, "description": "Any of."},
        "tags": {"type": "array", "items": {"type": "string"}, "description": "Has at least one of these tags."},
        "tags_all": {"type": "array", "items": {"type": "string"}, "description": "Has all of these tags."},
        "user_ref": {"type": "string", "description": "Only memories about this end user."},
        "agent_id": {"type": "string", "description": "Only memories of this agent."},
        "session_id": {"type": "string", "description": "Only memories of this conversation."},
        "metadata": {"type": "object", "description": "Metadata contains this JSON object."},
        "occurred_after": {**_DATETIME, "description": "occurred_at ≥ this (ISO 8601)."},
        "occurred_before": {**_DATETIME, "description": "occurred_at < this (ISO 8601)."},
        "created_after": {**_DATETIME, "description": "Stored at or after this time (ISO 8601)."},
        "created_before": {**_DATETIME, "description": "Stored before this time (ISO 8601)."},
        "include_expired": {"type": "boolean", "description": "Also return memories past their expires_at."},
        "as_of": {
            **_DATETIME,
            "description": "The world as of then: memories of what had happened by then (occurred_at, else"
            " created_at) and not expired then, graph relations valid then (ISO 8601).",
        },
        "include_ephemeral": {
            "type": "boolean",
            "description": 'Also return trivial chat turns ("ok thanks") the memory policy marked ephemeral.',
        },
    },
}
SEARCH_TYPES = {
    "all": None,
    "notes": Kind.NOTE,
    "messages": Kind.MESSAGE,
    "documents": Kind.DOCUMENT,
    "facts": Kind.FACT,
}


# --- output schemas (MCP outputSchema: clients validate structured results against them) ---

MEMORY_OUT: dict[str, Any] = {
    "type": "object",
    "description": "A stored memory.",
    "required": ["id", "kind", "content", "tags", "metadata", "created_at", "version"],
    "properties": {
        "id": {"type": "string", "description": "UUID"},
        "kind": {"type": "string", "enum": list(Kind.values)},
        "content": {"type": "string"},
        "metadata": {"type": "object"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "user_ref": {"type": "string"},
        "agent_id": {"type": "string"},
        "session_id": {"type": "string"},
        "importance": {"type": "number"},
        "occurred_at": NULLABLE_TIME_OUT,
        "created_at": TIME_OUT,
        "updated_at": TIME_OUT,
        "expires_at": NULLABLE_TIME_OUT,
        "enrichment_state": {"type": "string"},
        "enrichment_error": {"type": "string"},
        "version": {"type": "integer"},
    },
}
HIT_OUT: dict[str, Any] = {
    "type": "object",
    "required": ["memory", "score", "evidence", "embedded"],
    "properties": {
        "memory": MEMORY_OUT,
        "score": {"type": "number"},
        "evidence": {"type": "object", "description": "Which signals found it and at what rank."},
        "embedded": {
            "type": "boolean",
            "description": "false while the memory waits for its embedding (just written): found by words "
            "or the graph only, for now.",
        },
    },
}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def _filters(raw: dict[str, Any] | None) -> Any:
    serializer = FiltersSerializer(data=raw or {})
    if not serializer.is_valid():
        raise ValidationError({"filters": serializer.errors})  # the path names the argument
    return serializer.to_filters()


def _memory(memory: Any) -> dict[str, Any]:
    return dict(MemorySerializer(memory).data)


# --- writes ----------------------------------------------------------------------------


@tool(
    "memory_add",
    idempotent=True,
    title="Remember",
    output_schema=out_object(
        {
            "created": {"type": "boolean"},
            "memory": {"oneOf": [MEMORY_OUT, {"type": "null"}]},
            "skipped": {"type": "string"},
        },
        ["created", "memory"],
    ),
    scope=WRITE,
    read_only=False,
    description=(
        "Store something worth remembering in long-term memory: a user's preference, a decision, a fact, a "
        "summary of a conversation. Write it as a self-contained statement (who, what, when) so it makes sense "
        "when found later without context. Returns the stored memory and `created`: false when the same content "
        "was already stored in the same scope (then the existing memory is returned and nothing changes). "
        "A kind=message item may be declined by the server's conversation memory policy (`memory`: null and "
        "`skipped` says why); start its content with 'remember:' to keep it as a note. "
        "The memory is searchable by keyword at once and by meaning within seconds."
    ),
    schema=_object(
        {
            "content": {"type": "string", "description": "The text to remember (UTF-8, at most 100 kB by default)."},
            "kind": _KIND,
            "tags": _TAGS,
            "metadata": _METADATA,
            "scope": _SCOPE,
            "occurred_at": {**_DATETIME, "description": "When the remembered thing happened (ISO 8601), if known."},
            "importance": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "0–1, default 0.5; higher ranks slightly higher in search.",
            },
            "expires_at": {**_DATETIME, "description": "Forget after this time (ISO 8601, in the future)."},
        },
        required=["content"],
    ),
)
def memory_add(principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
    data = {key: value for key, value in args.items() if key != "scope"}
    data.update(args.get("scope") or {})
    serializer = MemoryInputSerializer(data=data)
    validated(serializer)
    result = services.memory_create(principal=principal, data=serializer.to_input())
    if result.memory is None:  # the conversation memory policy declined a kind=message item
        return {"created": False, "memory": None, "skipped": result.skipped}
    return {"created": result.created, "memory": _memory(result.memory)}


@tool(
    "memory_update",
    idempotent=True,
    output_schema=out_object({"memory": MEMORY_OUT}, ["memory"]),
    scope=WRITE,
    read_only=False,
    description=(
        "Change a stored memory: correct its content, or replace its tags, metadata, kind, occurred_at, importance "
        "or expires_at. Give only the fields to change; tags and metadata are replaced as a whole. Every change "
        "is kept in the memory's history (see memory_history). Use this instead of adding a contradicting memory "
        "when a fact changed."
    ),
    schema=_object(
        {
            "id": _ID,
            "content": {"type": "string", "description": "The new text."},
            "kind": _KIND,
            "tags": _TAGS,
            "metadata": _METADATA,
            "occurred_at": {"type": ["string", "null"], "format": "date-time", "description": "ISO 8601 or null."},
            "importance": {"type": "number", "minimum": 0, "maximum": 1},
            "expires_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "ISO 8601 in the future, or null to keep forever.",
            },
        },
        required=["id"],
    ),
)
def memory_update(principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
    memory = memory_get_for(principal, args["id"])
    changes = validated(MemoryUpdateSerializer(data={k: v for k, v in args.items() if k != "id"}))
    updated = services.memory_update(principal=principal, memory=memory, changes=changes)
    return {"memory": _memory(updated)}


@tool(
    "memory_delete",
    idempotent=True,
    output_schema=out_object({"deleted": {"type": "string"}}, ["deleted"]),
    scope=WRITE,
    read_only=False,
    destructive=True,
    description=(
        "Delete one memory by id, e.g. when the user asks to forget something or it is wrong and should not be "
        "corrected. The deletion is recorded in the memory's history."
    ),
    schema=_object({"id": _ID}, required=["id"]),
)
def memory_delete(principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
    memory = memory_get_for(principal, args["id"])
    services.memory_delete(principal=principal, memory=memory)
    return {"deleted": str(memory.id)}


# --- reads -----------------------------------------------------------------------------


@tool(
    "memory_search",
    title="Recall",
    output_schema=out_object(
        {"results": {"type": "array", "items": HIT_OUT}, "took_ms": {"type": "number"}}, ["results"]
    ),
    scope=READ,
    description=(
        "Find memories relevant to a question or topic, by meaning and by keyword at once (hybrid search). "
        "Use it before answering anything that may depend on what you were told earlier: the user's preferences, "
        "past decisions, people, projects. Write the query as a natural question or a few keywords; put a phrase "
        'in "double quotes" to require it and prefix a word with - to exclude it. Returns the best `k` memories, '
        "best first, each with a score and the evidence for its rank."
    ),
    schema=_object(
        {
            "query": {"type": "string", "minLength": 1, "description": "What to look for."},
            "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "description": "How many results (default 10)."},
            "search_type": {
                "type": "string",
                "enum": list(SEARCH_TYPES),
                "description": "Limit to one kind of memory: notes, messages, documents or facts (default all).",
            },
            "filters": _FILTERS,
        },
        required=["query"],
    ),
)
def memory_search(principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
    raw_filters = dict(args.get("filters") or {})
    only = SEARCH_TYPES[args.get("search_type", "all")]
    if only is not None:
        given = raw_filters.get("kind")
        if given and given != [only.value]:
            raise InvalidInput("search_type", "conflicts with filters.kind; give one or the other")
        raw_filters["kind"] = [only.value]
    filters = _filters(raw_filters)
    started = time.perf_counter()
    hits = memory_search_for(principal, args["query"], k=args.get("k", 10), filters=filters)
    took_ms = round((time.perf_counter() - started) * 1000, 2)
    return {"results": HitSerializer.of(hits), "took_ms": took_ms}


@tool(
    "memory_get",
    output_schema=out_object({"memory": MEMORY_OUT}, ["memory"]),
    scope=READ,
    description="Read one memory in full by its id (content, kind, tags, metadata, scope, timestamps, version).",
    schema=_object({"id": _ID}, required=["id"]),
)
def memory_get(principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
    return {"memory": _memory(memory_read_for(principal, args["id"]))}


def _encode_cursor(created_at: datetime, memory_id: object) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{memory_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, memory_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        when = parse_datetime(stamp)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor", "not a cursor returned by memory_list") from exc
    if when is None:
        raise InvalidInput("cursor", "not a cursor returned by memory_list")
    return when, memory_id


@tool(
    "memory_list",
    output_schema=out_object(
        {"results": {"type": "array", "items": MEMORY_OUT}, "next_cursor": {"type": ["string", "null"]}},
        ["results", "next_cursor"],
    ),
    scope=READ,
    description=(
        "List memories newest first, optionally filtered (kind, tags, scope, metadata, time ranges). Use it to "
        "browse recent memories or everything about one user; use memory_search to find memories about a topic. "
        "When `next_cursor` is returned, pass it as `cursor` to get the next page."
    ),
    schema=_object(
        {
            "filters": _FILTERS,
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT, "description": "Page size (20)."},
            "cursor": {"type": "string", "description": "The next_cursor of the previous page."},
        }
    ),
)
def memory_list(principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
    queryset = memory_list_for(principal, _filters(args.get("filters")))
    if args.get("cursor"):
        when, memory_id = _decode_cursor(args["cursor"])
        try:
            queryset = queryset.filter(Q(created_at__lt=when) | Q(created_at=when, id__lt=memory_id))
        except ValueError as exc:  # a malformed uuid inside the cursor
            raise InvalidInput("cursor", "not a cursor returned by memory_list") from exc
    limit = args.get("limit", 20)
    page = list(queryset[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    body: dict[str, Any] = {"results": MemorySerializer(page, many=True).data}
    body["next_cursor"] = _encode_cursor(page[-1].created_at, page[-1].id) if more else None
    return body


@tool(
    "memory_history",
    output_schema=out_object(
        {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["memory_id", "event", "version", "created_at"],
                    "properties": {
                        "memory_id": {"type": "string"},
                        "event": {"type": "string"},
                        "version": {"type": "integer"},
                        "actor": {"type": "string"},
                        "created_at": {"type": "string"},
                    },
                },
            }
        },
        ["results"],
    ),
    scope=READ,
    description=(
        "Every version of one memory, oldest first: when it was added, each update (old and new content) and its "
        "deletion, with who made each change. Works for deleted memories too."
    ),
    schema=_object({"id": _ID}, required=["id"]),
)
def memory_history(principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
    history = memory_history_for(principal, args["id"])
    return {"results": MemoryHistorySerializer(history, many=True).data}


@tool(
    "memory_stats",
    output_schema=out_object(
        {
            "memories": {"type": "integer"},
            "by_kind": {"type": "object"},
            "enrichment": {"type": "object"},
            "pending_embeddings": {"type": "integer"},
            "embedding_model": {"type": "string"},
            "database_bytes": {"type": ["integer", "null"]},
        },
        ["memories", "by_kind"],
    ),
    scope=READ,
    description=(
        "Counts for this memory space: memories in total and by kind, how many are still waiting for their "
        "embedding, the embedding model in use and the database size."
    ),
    schema=_object({}),
)
def memory_stats(principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
    return memory_stats_for(principal.tenant)

"""MCP tools for the knowledge graph: thin wrappers over graph.selectors / graph.services,
validated by the REST serializers (see mcp_server/registry.py for how tools are served)."""

from __future__ import annotations

from typing import Any

from accounts.principal import Principal
from audit.services import audit_record
from graph import selectors, services
from graph.models import Origin
from graph.serializers import NeighborParams, RelationCreateSerializer
from mcp_server.registry import NULLABLE_TIME_OUT, TIME_OUT, out_object, tool, validated
from memory.models import Kind

READ = "graph:read"
WRITE = "graph:write"
MAX_ENTITIES = 100

_ENTITY_ID = {"type": "integer", "minimum": 1, "description": "An entity id (from entity_search or a relation)."}
_ENTITY_REF = {
    "description": 'An entity id, or {"name": ..., "type": ...} to use the entity of that name (created if new).',
    "oneOf": [
        {"type": "integer", "minimum": 1},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 300},
                "type": {"type": "string", "maxLength": 60, "description": "e.g. person, organization, place"},
            },
        },
    ],
}
_AS_OF = {
    "type": "string",
    "format": "date-time",
    "description": "Look at the graph as it was at this time (ISO 8601); default now.",
}

# --- output schemas (graph.selectors' entity_data, relation_data, entity_detail, graph_neighbors) ---

_INT = {"type": "integer"}
_STR = {"type": "string"}
_ORIGIN = {"type": "string", "enum": list(Origin.values)}
ENTITY_OUT = out_object(
    {
        "id": _INT,
        "name": _STR,
        "type": _STR,
        "aliases": {"type": "array", "items": _STR},
        "summary": _STR,
        "origin": _ORIGIN,
        "mention_count": _INT,
        "first_seen_at": TIME_OUT,
        "last_seen_at": TIME_OUT,
    },
    ["id", "name", "type", "aliases", "summary", "origin", "mention_count", "first_seen_at", "last_seen_at"],
)
_END = out_object({"id": _INT, "name": _STR, "type": _STR}, ["id", "name", "type"])
RELATION_OUT = out_object(
    {
        "id": _INT,
        "source": _END,
        "target": _END,
        "predicate": _STR,
        "fact": _STR,
        "confidence": {"type": "number"},
        "origin": _ORIGIN,
        "valid_at": NULLABLE_TIME_OUT,
        "invalid_at": NULLABLE_TIME_OUT,
        "created_at": TIME_OUT,
        "expired_at": NULLABLE_TIME_OUT,
        "invalidated_by": {"type": ["integer", "null"], "description": "The relation that closed this one."},
        "current": {"type": "boolean", "description": "True now."},
        "memories": {"type": "array", "items": _STR, "description": "Ids of the memories it was found in."},
    },
    ["id", "source", "target", "predicate", "fact", "confidence", "origin", "valid_at", "invalid_at",
     "created_at", "expired_at", "invalidated_by", "current", "memories"],
)  # fmt: skip
_RELATIONS = {"type": "array", "items": RELATION_OUT}
_MENTION = out_object(
    {
        "id": {"type": "string", "description": "The memory's id."},
        "matched": _STR,
        "kind": {"type": "string", "enum": list(Kind.values)},
        "content": {"type": "string", "description": "Its first 300 characters."},
        "created_at": TIME_OUT,
    },
    ["id", "matched", "kind", "content", "created_at"],
)
_MERGE = out_object(
    {
        "merged_entity_id": _INT,
        "merged_name": _STR,
        "merged_type": _STR,
        "reason": _STR,
        "actor": _STR,
        "created_at": TIME_OUT,
    },
    ["merged_entity_id", "merged_name", "merged_type", "reason", "actor", "created_at"],
)


def _entity_with(extra: dict[str, Any]) -> dict[str, Any]:
    """ENTITY_OUT plus these (required) keys."""
    return out_object({**ENTITY_OUT["properties"], **extra}, [*ENTITY_OUT["required"], *extra])


ENTITY_DETAIL_OUT = _entity_with(
    {
        "relations": out_object({"current": _RELATIONS, "past": _RELATIONS}, ["current", "past"]),
        "memories": {"type": "array", "items": _MENTION},
        "merges": {"type": "array", "items": _MERGE},
    }
)
_NODE = _entity_with({"distance": _INT, "centrality": {"type": "number"}})
_EDGE = out_object(
    {
        "id": _INT,
        "source": {"type": "integer", "description": "Entity id."},
        "target": {"type": "integer", "description": "Entity id."},
        "predicate": _STR,
        "fact": _STR,
        "valid_at": NULLABLE_TIME_OUT,
        "invalid_at": NULLABLE_TIME_OUT,
    },
    ["id", "source", "target", "predicate", "fact", "valid_at", "invalid_at"],
)
NEIGHBORS_OUT = out_object(
    {
        "entity": _INT,
        "depth": _INT,
        "as_of": NULLABLE_TIME_OUT,
        "nodes": {"type": "array", "items": _NODE},
        "edges": {"type": "array", "items": _EDGE},
    },
    ["entity", "depth", "as_of", "nodes", "edges"],
)


@tool(
    "entity_search",
    output_schema=out_object({"results": {"type": "array", "items": ENTITY_OUT}}, ["results"]),
    scope=READ,
    subject="entity",
    description=(
        "Find people, organizations, places, projects and other entities the memory knows about, by name or "
        "alias (exact matches first). Use the returned ids with entity_get and graph_neighbors."
    ),
    schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "query": {"type": "string", "maxLength": 300, "description": "Part of the name; empty lists all."},
            "type": {"type": "string", "maxLength": 60, "description": "Only entities of this type."},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_ENTITIES, "description": "Default 20."},
        },
    },
)
def entity_search(principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
    found = selectors.entity_search(principal, q=args.get("query", ""), type=args.get("type", ""))
    entities = list(found[: args.get("limit", 20)])
    audit_record(principal=principal, action="graph.entity.list", target_type="entity")
    return {"results": [selectors.entity_data(entity) for entity in entities]}


@tool(
    "entity_get",
    output_schema=ENTITY_DETAIL_OUT,
    scope=READ,
    subject="entity",
    description=(
        "Everything known about one entity: its names, its relations to other entities (current and past, with "
        "when each was true) and the memories that mention it."
    ),
    schema={"type": "object", "additionalProperties": False, "required": ["id"], "properties": {"id": _ENTITY_ID}},
)
def entity_get(principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
    entity = selectors.entity_get(principal, args["id"])
    audit_record(principal=principal, action="graph.entity.read", target_type="entity", target_id=str(entity.pk))
    return dict(selectors.entity_detail(principal, entity))


@tool(
    "graph_neighbors",
    output_schema=NEIGHBORS_OUT,
    scope=READ,
    subject="entity",
    description=(
        "The entities connected to one entity within `depth` relations (1-3), with the relations between them: "
        "who works with whom, what belongs to what. Only relations true at `as_of` (default now) are followed."
    ),
    schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["id"],
        "properties": {
            "id": _ENTITY_ID,
            "depth": {"type": "integer", "minimum": 1, "maximum": 3, "description": "Default 1."},
            "as_of": _AS_OF,
        },
    },
)
def graph_neighbors(principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
    entity = selectors.entity_get(principal, args["id"])
    params = validated(NeighborParams(data={k: v for k, v in args.items() if k != "id"}))
    data = selectors.graph_neighbors(principal, entity, depth=params["depth"], as_of=params["as_of"])
    audit_record(principal=principal, action="graph.neighbors", target_type="entity", target_id=str(entity.pk))
    return dict(data)


@tool(
    "relation_add",
    output_schema=RELATION_OUT,
    scope=WRITE,
    subject="entity",
    read_only=False,
    description=(
        'Record a fact as a relation between two entities, e.g. source {"name": "Alice", "type": "person"}, '
        'predicate "works_at", target {"name": "Acme", "type": "organization"}. A single-valued predicate '
        "(like works_at or lives_in) closes the previous value, which stays in the history."
    ),
    schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["source", "predicate", "target"],
        "properties": {
            "source": _ENTITY_REF,
            "predicate": {"type": "string", "minLength": 1, "maxLength": 100, "description": "e.g. works_at"},
            "target": _ENTITY_REF,
            "fact": {"type": "string", "maxLength": 2000, "description": "The fact in words."},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "valid_at": {"type": "string", "format": "date-time", "description": "Since when it is true."},
            "invalid_at": {"type": "string", "format": "date-time", "description": "Until when it was true."},
        },
    },
)
def relation_add(principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
    data = validated(RelationCreateSerializer(data=args))
    relation = services.relation_add(principal=principal, **data)
    return dict(selectors.relation_data(selectors.relation_get(principal, relation.pk)))

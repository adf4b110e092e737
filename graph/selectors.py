"""Reads on the graph: access helpers, entity lists and details, traversal with NetworkX,
export, stats, and the graph candidate list for hybrid search.

Traversal loads only the part of the tenant's graph it needs, level by level from
PostgreSQL, and refuses (GraphLimitExceeded → HTTP 400) beyond the node cap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import networkx as nx
from django.conf import settings
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone
from rest_framework import status

from accounts.models import Tenant
from accounts.principal import Principal
from accounts.scoping import get_scoped_or_404, scoped
from core.db_routing import read_connection
from core.errors import InvalidInput
from graph.models import Entity, EntityMerge, GraphExtraction, Mention, Relation
from graph.providers.base import normalise_key
from graph.providers.offline import LEADING_STOP
from graph.services import GRAPH_ERROR_PREFIX
from memory.models import EnrichmentState, Memory
from memory.selectors import MemoryFilters
from memory.text import CJK_RUN

MAX_DEPTH = 3
MAX_PATH_DEPTH = 6
DETAIL_RELATIONS = 200
DETAIL_MEMORIES = 50
SEARCH_SEEDS = 50
SEARCH_NEIGHBOURS = 200
MAX_NGRAMS = 3000
QUESTION_WORDS = frozenset(
    "what who whom whose where which why how does did do is are was were about tell me know".split()
)


class GraphLimitExceeded(InvalidInput):
    """The request would traverse more of the graph than the configured caps allow."""

    status_code = status.HTTP_400_BAD_REQUEST


def relations_valid_at(qs: QuerySet[Relation], as_of: datetime | None = None) -> QuerySet[Relation]:
    """Relations true in the world at `as_of` (default now) and not retired by the system."""
    moment = as_of or timezone.now()
    return qs.filter(expired_at__isnull=True).filter(
        Q(valid_at__isnull=True) | Q(valid_at__lte=moment), Q(invalid_at__isnull=True) | Q(invalid_at__gt=moment)
    )


# --- entities ---------------------------------------------------------------------------


def entity_search(principal: Principal, *, q: str = "", type: str = "") -> QuerySet[Entity]:  # noqa: A002
    """The tenant's entities whose name or an alias contains `q`; exact matches first."""
    qs = scoped(Entity, principal.tenant)
    if type:
        qs = qs.filter(type=type)
    key = normalise_key(q) if q else ""
    if key:
        qs = qs.filter(Q(key__contains=key) | Q(alias_keys__contains=[key])).annotate(
            exact=Case(When(Q(key=key) | Q(alias_keys__contains=[key]), then=Value(0)), default=1,
                       output_field=IntegerField())
        ).order_by("exact", "-mention_count", "id")  # fmt: skip
    else:
        qs = qs.order_by("-mention_count", "id")
    return qs


def entity_get(principal: Principal, entity_id: object) -> Entity:
    """The entity with this id in the principal's tenant; 404 for missing and foreign ids alike."""
    return get_scoped_or_404(Entity, principal.tenant, pk=entity_id)


def relation_get(principal: Principal, relation_id: object) -> Relation:
    return get_scoped_or_404(Relation, principal.tenant, pk=relation_id)


def relation_data(relation: Relation, as_of: datetime | None = None) -> dict[str, Any]:
    moment = as_of or timezone.now()
    current = (
        relation.expired_at is None
        and (relation.valid_at is None or relation.valid_at <= moment)
        and (relation.invalid_at is None or relation.invalid_at > moment)
    )
    return {
        "id": relation.pk,
        "source": {"id": relation.source_id, "name": relation.source.name, "type": relation.source.type},
        "target": {"id": relation.target_id, "name": relation.target.name, "type": relation.target.type},
        "predicate": relation.predicate,
        "fact": relation.fact,
        "confidence": relation.confidence,
        "origin": relation.origin,
        "valid_at": relation.valid_at,
        "invalid_at": relation.invalid_at,
        "created_at": relation.created_at,
        "expired_at": relation.expired_at,
        "invalidated_by": relation.invalidated_by_id,
        "current": current,
        "memories": [str(source.memory_id) for source in relation.sources.all()],
    }


def entity_data(entity: Entity) -> dict[str, Any]:
    return {
        "id": entity.pk,
        "name": entity.name,
        "type": entity.type,
        "aliases": entity.aliases,
        "summary": entity.summary,
        "origin": entity.origin,
        "mention_count": entity.mention_count,
        "first_seen_at": entity.first_seen_at,
        "last_seen_at": entity.last_seen_at,
    }


def entity_detail(principal: Principal, entity: Entity) -> dict[str, Any]:
    """An entity with its relations (current and past) and the memories that mention it."""
    tenant = principal.tenant
    involving = (
        scoped(Relation, tenant).filter(Q(source=entity) | Q(target=entity))
        .select_related("source", "target").prefetch_related("sources")
    )  # fmt: skip
    current_qs = relations_valid_at(involving)
    current = [relation_data(r) for r in current_qs.order_by("-valid_at", "-id")[:DETAIL_RELATIONS]]
    past_qs = involving.exclude(pk__in=current_qs.values("pk")).order_by("-invalid_at", "-created_at", "-id")
    past = [relation_data(r) for r in past_qs[:DETAIL_RELATIONS]]
    mentions = (scoped(Mention, tenant).filter(entity=entity).select_related("memory").order_by("-memory__created_at"))[
        :DETAIL_MEMORIES
    ]
    merges = scoped(EntityMerge, tenant).filter(target=entity).order_by("-created_at")[:50]
    return {
        **entity_data(entity),
        "relations": {"current": current, "past": past},
        "memories": [
            {
                "id": str(m.memory_id),
                "matched": m.text,
                "kind": m.memory.kind,
                "content": m.memory.content[:300],
                "created_at": m.memory.created_at,
            }
            for m in mentions
        ],
        "merges": [
            {
                "merged_entity_id": m.merged_entity_id,
                "merged_name": m.merged_name,
                "merged_type": m.merged_type,
                "reason": m.reason,
                "actor": m.actor,
                "created_at": m.created_at,
            }
            for m in merges
        ],  # fmt: skip
    }


# --- traversal --------------------------------------------------------------------------


def _edges_touching(
    tenant: Tenant, node_ids: Iterable[int], as_of: datetime | None, predicates: Sequence[str] = ()
) -> list[Relation]:
    ids = list(node_ids)
    qs = relations_valid_at(scoped(Relation, tenant), as_of).filter(Q(source_id__in=ids) | Q(target_id__in=ids))
    if predicates:
        qs = qs.filter(predicate__in=list(predicates))
    cap = settings.EASYMEMORY_GRAPH_MAX_NODES * 5
    edges = list(qs.only("id", "source_id", "target_id", "predicate", "fact", "valid_at", "invalid_at")[: cap + 1])
    if len(edges) > cap:
        raise GraphLimitExceeded("depth", f"the neighbourhood has more than {cap} relations; use a smaller depth")
    return edges


def _expand(
    tenant: Tenant,
    start: list[int],
    depth: int,
    as_of: datetime | None,
    stop_at: int | None = None,
    predicates: Sequence[str] = (),
) -> tuple[nx.MultiDiGraph, dict[int, int]]:
    """Breadth-first from `start` over relations valid at `as_of`; returns the graph and each node's distance."""
    cap = settings.EASYMEMORY_GRAPH_MAX_NODES
    graph = nx.MultiDiGraph()
    distance = {node: 0 for node in start}
    graph.add_nodes_from(start)
    frontier = set(start)
    for level in range(1, depth + 1):
        if not frontier:
            break
        next_frontier: set[int] = set()
        for edge in _edges_touching(tenant, frontier, as_of, predicates):
            if not graph.has_edge(edge.source_id, edge.target_id, key=edge.pk):
                graph.add_edge(edge.source_id, edge.target_id, key=edge.pk, relation=edge)
            for node in (edge.source_id, edge.target_id):
                if node not in distance:
                    distance[node] = level
                    next_frontier.add(node)
        if len(distance) > cap:
            raise GraphLimitExceeded(
                "depth", f"the neighbourhood at depth {level} has more than {cap} entities; use a smaller depth"
            )
        frontier = next_frontier
        if stop_at is not None and stop_at in distance:
            break
    return graph, distance


def _parse_depth(depth: Any, maximum: int) -> int:
    try:
        value = int(depth)
    except (TypeError, ValueError) as exc:
        raise GraphLimitExceeded("depth", f"depth must be an integer from 1 to {maximum}") from exc
    if not 1 <= value <= maximum:
        raise GraphLimitExceeded("depth", f"depth must be from 1 to {maximum}")
    return value


def _subgraph_data(tenant: Tenant, graph: nx.MultiDiGraph, distance: dict[int, int]) -> dict[str, Any]:
    entities = scoped(Entity, tenant).in_bulk(list(graph.nodes))
    centrality = nx.degree_centrality(graph) if graph.number_of_nodes() > 1 else dict.fromkeys(graph.nodes, 0.0)
    nodes = [
        {**entity_data(entities[n]), "distance": distance.get(n), "centrality": round(centrality.get(n, 0.0), 6)}
        for n in sorted(graph.nodes, key=lambda n: (distance.get(n, 0), n))
        if n in entities
    ]
    edges = [
        {
            "id": key,
            "source": u,
            "target": v,
            "predicate": data["relation"].predicate,
            "fact": data["relation"].fact,
            "valid_at": data["relation"].valid_at,
            "invalid_at": data["relation"].invalid_at,
        }  # fmt: skip
        for u, v, key, data in graph.edges(keys=True, data=True)
    ]
    return {"nodes": nodes, "edges": edges}


def graph_neighbors(
    principal: Principal,
    entity: Entity,
    *,
    depth: Any = 1,
    as_of: datetime | None = None,
    predicates: Sequence[str] = (),
) -> dict[str, Any]:
    """Entities within `depth` (1-3) relations of `entity`, over relations valid at `as_of`
    (of the given `predicates` only, when some are given), with each node's distance and
    degree centrality in the returned subgraph."""
    depth = _parse_depth(depth, MAX_DEPTH)
    graph, distance = _expand(principal.tenant, [entity.pk], depth, as_of, predicates=predicates)
    return {"entity": entity.pk, "depth": depth, "as_of": as_of, **_subgraph_data(principal.tenant, graph, distance)}


def graph_path(
    principal: Principal, source: Entity, target: Entity, *, as_of: datetime | None = None, max_depth: Any = 4
) -> dict[str, Any]:
    """The shortest chain of relations (either direction) between two entities, or `path: null`."""
    depth = _parse_depth(max_depth, MAX_PATH_DEPTH)
    graph, distance = _expand(principal.tenant, [source.pk], depth, as_of, stop_at=target.pk)
    undirected = nx.Graph(graph)
    try:
        node_path = nx.shortest_path(undirected, source.pk, target.pk)
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        return {"from": source.pk, "to": target.pk, "path": None, "edges": []}
    entities = scoped(Entity, principal.tenant).in_bulk(node_path)
    edges = []
    for u, v in zip(node_path, node_path[1:], strict=False):
        data = graph.get_edge_data(u, v) or graph.get_edge_data(v, u)
        relation = next(iter(data.values()))["relation"]
        edges.append(
            {"id": relation.pk, "source": relation.source_id, "target": relation.target_id,
             "predicate": relation.predicate, "fact": relation.fact}
        )  # fmt: skip
    return {
        "from": source.pk,
        "to": target.pk,
        "path": [entity_data(entities[n]) for n in node_path],
        "edges": edges,
        "length": len(node_path) - 1,
    }


def graph_export(principal: Principal, *, as_of: datetime | None = None, include_past: bool = True) -> nx.MultiDiGraph:
    """The tenant's whole graph (capped by EASYMEMORY_GRAPH_MAX_EXPORT_EDGES) as a NetworkX graph."""
    tenant = principal.tenant
    relations = scoped(Relation, tenant)
    relations = relations if include_past and as_of is None else relations_valid_at(relations, as_of)
    cap = settings.EASYMEMORY_GRAPH_MAX_EXPORT_EDGES
    rows = list(relations.order_by("id")[: cap + 1])
    if len(rows) > cap:
        raise GraphLimitExceeded("format", f"the graph has more than {cap} relations; export is capped")
    graph = nx.MultiDiGraph()
    for entity in scoped(Entity, tenant).order_by("id").iterator(chunk_size=2000):
        graph.add_node(
            entity.pk, name=entity.name, type=entity.type, aliases="|".join(entity.aliases),
            mention_count=entity.mention_count,
        )  # fmt: skip
    for r in rows:
        graph.add_edge(
            r.source_id, r.target_id, key=r.pk, predicate=r.predicate, fact=r.fact, confidence=r.confidence,
            origin=r.origin, valid_at=_iso(r.valid_at), invalid_at=_iso(r.invalid_at),
            created_at=_iso(r.created_at), expired_at=_iso(r.expired_at),
        )  # fmt: skip
    return graph


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


# --- stats ------------------------------------------------------------------------------


def graph_stats_for(tenant: Tenant) -> dict[str, Any]:
    relations = scoped(Relation, tenant)
    return {
        "provider": settings.EASYMEMORY_PROVIDER,
        "entities": scoped(Entity, tenant).count(),
        "relations": relations.count(),
        "current_relations": relations_valid_at(relations).count(),
        "mentions": scoped(Mention, tenant).count(),
        "extracted_memories": scoped(GraphExtraction, tenant).count(),
        "extraction_failures": scoped(Memory, tenant)
        .filter(enrichment_state=EnrichmentState.FAILED, enrichment_error__startswith=GRAPH_ERROR_PREFIX)
        .count(),
    }


# --- search -----------------------------------------------------------------------------

_WORD = re.compile(r"[^\s,;:!?()\[\]{}\"'“”‘’<>]+")


def query_ngrams(query: str) -> list[str]:
    """Candidate entity keys in a query: word n-grams (1-5 words) and, inside CJK runs,
    every substring of 2-8 characters (Chinese has no spaces to split on)."""
    key = normalise_key(query)
    words = [w.strip(".").lstrip("#").removesuffix("'s").removesuffix("’s") for w in _WORD.findall(key)]
    words = [w for w in words if not w.startswith("-")]
    words = [w for w in words if w]
    grams: set[str] = set()
    for size in range(1, 6):
        for start in range(len(words) - size + 1):
            gram = words[start : start + size]
            if size == 1 and (len(gram[0]) < 2 or gram[0] in LEADING_STOP or gram[0] in QUESTION_WORDS):
                continue
            grams.add(" ".join(gram))
    for run in CJK_RUN.findall(key):
        for size in range(2, min(8, len(run)) + 1):
            for start in range(len(run) - size + 1):
                grams.add(run[start : start + size])
    return sorted(grams)[:MAX_NGRAMS]


def _seed_entities(tenant: Tenant, grams: list[str]) -> list[int]:
    """Entities of the tenant whose key or an alias is one of `grams`. Raw SQL: the ORM spent
    more CPU compiling forty-odd `IN` parameters than the database spent answering (the unique
    (tenant, key) index and the alias GIN index answer it either way)."""
    with read_connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM graph_entity WHERE tenant_id = %s"  # scoped: WHERE tenant_id
            " AND (key = ANY(%s::varchar[]) OR alias_keys && %s::varchar[]) LIMIT %s",
            [tenant.pk, grams, grams, SEARCH_SEEDS],
        )
        return [row[0] for row in cursor.fetchall()]


def graph_candidates(
    principal: Principal, base: QuerySet[Memory], query: str, limit: int, filters: MemoryFilters
) -> list[tuple[Any, float]]:
    """Search's graph list: entities named in the query (found lexically, no LLM), their
    neighbours over the relations valid at `filters.as_of` (default now), then the memories in
    `base` that mention them.
    A memory scores 1 per named entity it mentions and 0.5 per neighbour."""
    grams = query_ngrams(query)
    if not grams:
        return []
    tenant = principal.tenant
    seeds = _seed_entities(tenant, grams)
    if not seeds:
        return []
    neighbours: set[int] = set()
    for source_id, target_id in (
        relations_valid_at(scoped(Relation, tenant), filters.as_of)
        .filter(Q(source_id__in=seeds) | Q(target_id__in=seeds))
        .values_list("source_id", "target_id")[:SEARCH_NEIGHBOURS]
    ):
        neighbours.update((source_id, target_id))
    neighbours -= set(seeds)
    weight = {**dict.fromkeys(neighbours, 0.5), **dict.fromkeys(seeds, 1.0)}
    rows = (
        scoped(Mention, tenant)
        .filter(entity_id__in=list(weight), memory_id__in=base.values("id"))
        .values_list("memory_id", "entity_id", "memory__created_at")
    )
    scores: dict[Any, float] = {}
    created: dict[Any, datetime] = {}
    for memory_id, entity_id, created_at in rows:
        scores[memory_id] = scores.get(memory_id, 0.0) + weight[entity_id]
        created[memory_id] = created_at
    ranked = sorted(scores, key=lambda mid: (scores[mid], created[mid]), reverse=True)[:limit]
    return [(mid, scores[mid]) for mid in ranked]


# --- the dashboard's graph viewer (issue 19) ---------------------------------------------


def neighbourhood_summary(
    principal: Principal, entity: Entity, *, as_of: datetime | None = None, predicates: Sequence[str] = ()
) -> dict[str, Any]:
    """Counts instead of a drawing, for a neighbourhood too large to draw: the entity's direct
    relations by predicate and its neighbours by type (two aggregate queries, no traversal)."""
    relations = relations_valid_at(scoped(Relation, principal.tenant), as_of).filter(
        Q(source=entity) | Q(target=entity)
    )
    if predicates:
        relations = relations.filter(predicate__in=list(predicates))
    by_predicate = relations.values("predicate").annotate(n=Count("id")).order_by("-n", "predicate")[:20]
    outgoing = relations.filter(source=entity).values("target__type").annotate(n=Count("target", distinct=True))
    incoming = relations.filter(target=entity).values("source__type").annotate(n=Count("source", distinct=True))
    by_type: dict[str, int] = {}
    for row in outgoing:
        by_type[row["target__type"]] = by_type.get(row["target__type"], 0) + row["n"]
    for row_in in incoming:
        by_type[row_in["source__type"]] = by_type.get(row_in["source__type"], 0) + row_in["n"]
    return {
        "relations": relations.count(),
        "by_predicate": [{"predicate": r["predicate"], "count": r["n"]} for r in by_predicate],
        "by_type": [{"type": t, "count": n} for t, n in sorted(by_type.items(), key=lambda item: -item[1])[:20]],
    }


def relation_history(principal: Principal, relation: Relation) -> dict[str, Any]:
    """A relation with its validity history (every relation of the same source and predicate,
    oldest first: what was held true, from when until when, and what replaced it) and the
    memories it was learned from."""
    tenant = principal.tenant
    same = (
        scoped(Relation, tenant).filter(source_id=relation.source_id, predicate=relation.predicate)
        .select_related("source", "target").prefetch_related("sources")
        .order_by(F("valid_at").asc(nulls_first=True), "created_at", "id")[:DETAIL_RELATIONS]
    )  # fmt: skip
    memory_ids = [source.memory_id for source in relation.sources.all()][:DETAIL_MEMORIES]
    memories = scoped(Memory, tenant).filter(pk__in=memory_ids).only("id", "content", "created_at", "occurred_at")
    return {
        **relation_data(relation),
        "history": [relation_data(r) | {"selected": r.pk == relation.pk} for r in same],
        "source_memories": [
            {"id": str(m.id), "content": m.content[:300], "created_at": m.created_at, "occurred_at": m.occurred_at}
            for m in memories.order_by("created_at")
        ],
    }

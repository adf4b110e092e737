"""Dashboard pages for the knowledge graph: entities, an entity's relations over time, the graph viewer."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date

from audit.services import audit_record
from core.errors import InvalidInput
from dashboard import presenters
from dashboard.access import DashboardRequest, dashboard_view, page
from dashboard.forms import EntitySearchForm, GraphControlsForm
from dashboard.selectors import entity_types_for, relation_predicates_for
from graph import selectors as graph_selectors

ENTITY_PAGE_SIZE = 30


@dashboard_view(get="graph:read")
def entity_list(request: DashboardRequest) -> HttpResponse:
    principal = request.principal
    form = EntitySearchForm(request.GET or None, types=entity_types_for(principal.tenant))
    q, kind = "", ""
    if form.is_bound and form.is_valid():
        q, kind = form.cleaned_data.get("q") or "", form.cleaned_data.get("type") or ""
    entities = graph_selectors.entity_search(principal, q=q, type=kind)
    page_obj = Paginator(entities, ENTITY_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    audit_record(principal=principal, action="graph.entity.list", target_type="entity")
    context: dict[str, Any] = {"form": form, "page_obj": page_obj, "query": query.urlencode(), "section": "entities"}
    return page(request, "dashboard/graph/entities.html", **context)


@dashboard_view(get="graph:read")
def entity_detail(request: DashboardRequest, entity_id: str) -> HttpResponse:
    principal = request.principal
    entity = graph_selectors.entity_get(principal, entity_id)
    detail = graph_selectors.entity_detail(principal, entity)
    relations = detail["relations"]["current"] + detail["relations"]["past"]
    audit_record(principal=principal, action="graph.entity.read", target_type="entity", target_id=str(entity.pk))
    return page(
        request,
        "dashboard/graph/entity.html",
        entity=entity,
        detail=detail,
        timeline=presenters.relation_timeline(relations, entity_id=entity.pk, now=timezone.now()),
        section="entities",
    )


# The viewer draws at most this many nodes; a larger neighbourhood is summarised as counts.
DRAW_MAX_NODES = 150


def _viewer_filters(request: HttpRequest) -> tuple[datetime | None, list[str]]:
    """?as_of=YYYY-MM-DD (the end of that day) and ?predicate= from the viewer's controls."""
    raw = request.GET.get("as_of", "")
    as_of = None
    if raw:
        day = parse_date(raw[:10]) if len(raw) <= 10 else None
        if day is None:
            raise InvalidInput("as_of", "as_of must be a date, YYYY-MM-DD")
        as_of = timezone.make_aware(datetime.combine(day, time.max))
    predicate = request.GET.get("predicate", "")[:100]
    return as_of, [predicate] if predicate else []


@dashboard_view(get="graph:read")
def entity_neighbors(request: DashboardRequest, entity_id: str) -> HttpResponse:
    """The neighbourhood as JSON for the graph viewer (the same data as the REST API's), or
    counts instead when it is too large to draw (the page never hangs on a hub)."""
    principal = request.principal
    entity = graph_selectors.entity_get(principal, entity_id)
    try:
        as_of, predicates = _viewer_filters(request)
        depth = request.GET.get("depth", "1")
        if depth not in {"1", "2", "3"}:
            raise InvalidInput("depth", "depth must be 1, 2 or 3")
        try:
            data = graph_selectors.graph_neighbors(
                principal, entity, depth=int(depth), as_of=as_of, predicates=predicates
            )
        except graph_selectors.GraphLimitExceeded:
            data = {"entity": entity.pk, "nodes": [], "edges": [], "too_large": True}
    except InvalidInput as exc:
        return JsonResponse({"error": exc.message, "field": exc.field}, status=400)
    if data.get("too_large") or len(data["nodes"]) > DRAW_MAX_NODES:
        summary = graph_selectors.neighbourhood_summary(principal, entity, as_of=as_of, predicates=predicates)
        root = graph_selectors.entity_data(entity)
        data = {**data, "nodes": [root], "edges": [], "summary": summary | {"nodes": len(data["nodes"]) or None}}
    audit_record(principal=principal, action="graph.neighbors", target_type="entity", target_id=str(entity.pk))
    return JsonResponse(data, encoder=DjangoJSONEncoder)


@dashboard_view(get="graph:read")
def relation_detail(request: DashboardRequest, relation_id: str) -> HttpResponse:
    """One relation with its validity history and source memories, for the viewer's side panel."""
    principal = request.principal
    relation = graph_selectors.relation_get(principal, relation_id)
    data = graph_selectors.relation_history(principal, relation)
    for memory in data["source_memories"]:
        memory["url"] = reverse("dashboard:memory-detail", args=[memory["id"]])
    audit_record(principal=principal, action="graph.relation.read", target_type="relation", target_id=str(relation.pk))
    return JsonResponse(data, encoder=DjangoJSONEncoder)


@dashboard_view(get="graph:read")
def graph_page(request: DashboardRequest) -> HttpResponse:
    """The graph viewer, starting at ?entity= or at the most-mentioned entity matching ?q=, with
    depth, as-of date and relation-type controls (plain GET parameters: they survive a reload)."""
    principal = request.principal
    controls = GraphControlsForm(request.GET or None)
    data = controls.cleaned_data if controls.is_bound and controls.is_valid() else {}
    q = (data.get("q") or "")[:300]
    matches = graph_selectors.entity_search(principal, q=q)[:12]
    start = None
    if data.get("entity"):
        start = graph_selectors.entity_get(principal, data["entity"])
    elif matches:
        start = matches[0]
    params = {"depth": data.get("depth") or 1}
    if data.get("as_of"):
        params["as_of"] = data["as_of"].isoformat()
    if data.get("predicate"):
        params["predicate"] = data["predicate"]
    return page(
        request,
        "dashboard/graph/graph.html",
        start=start,
        matches=matches,
        q=q,
        controls=controls,
        depth=params["depth"],
        predicates=relation_predicates_for(principal.tenant),
        neighbors_query=urlencode(params),
        section="graph",
    )

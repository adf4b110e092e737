"""Dashboard pages for the knowledge graph: entities, an entity's relations over time, the graph viewer."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from audit.services import audit_record
from config.errors import InvalidInput
from dashboard import presenters
from dashboard.access import dashboard_view, page
from dashboard.forms import EntitySearchForm
from dashboard.selectors import entity_types_for
from graph import selectors as graph_selectors

ENTITY_PAGE_SIZE = 30


@dashboard_view(get="graph:read")
def entity_list(request: HttpRequest) -> HttpResponse:
    principal = request.principal  # type: ignore[attr-defined]
    form = EntitySearchForm(request.GET or None, types=entity_types_for(principal.tenant))
    q, kind = "", ""
    if form.is_bound and form.is_valid():
        q, kind = form.cleaned_data.get("q") or "", form.cleaned_data.get("type") or ""
    entities = graph_selectors.entity_search(principal, q=q, type=kind)
    page_obj = Paginator(entities, ENTITY_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    audit_record(principal=principal, action="graph.entity.list", target_type="entity")
    context = {"form": form, "page_obj": page_obj, "query": query.urlencode(), "section": "entities"}
    return page(request, "dashboard/graph/entities.html", **context)


@dashboard_view(get="graph:read")
def entity_detail(request: HttpRequest, entity_id: str) -> HttpResponse:
    principal = request.principal  # type: ignore[attr-defined]
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


@dashboard_view(get="graph:read")
def entity_neighbors(request: HttpRequest, entity_id: str) -> HttpResponse:
    """The neighbourhood as JSON for the graph viewer (the same data as the REST API's)."""
    principal = request.principal  # type: ignore[attr-defined]
    entity = graph_selectors.entity_get(principal, entity_id)
    try:
        data = graph_selectors.graph_neighbors(principal, entity, depth=request.GET.get("depth", 1))
    except InvalidInput as exc:
        return JsonResponse({"error": exc.message, "field": exc.field}, status=400)
    audit_record(principal=principal, action="graph.neighbors", target_type="entity", target_id=str(entity.pk))
    return JsonResponse(data, encoder=DjangoJSONEncoder)


@dashboard_view(get="graph:read")
def graph_page(request: HttpRequest) -> HttpResponse:
    """The graph viewer, starting at ?entity= or at the most-mentioned entity matching ?q=."""
    principal = request.principal  # type: ignore[attr-defined]
    q = request.GET.get("q", "")[:300]
    matches = graph_selectors.entity_search(principal, q=q)[:12]
    start = None
    entity_id = request.GET.get("entity", "")
    if entity_id.isdigit():
        start = graph_selectors.entity_get(principal, int(entity_id))
    elif matches:
        start = matches[0]
    return page(request, "dashboard/graph/graph.html", start=start, matches=matches, q=q, section="graph")

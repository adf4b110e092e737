"""REST endpoints for the knowledge graph: validate, look up through access helpers, call one
service or selector, serialize. Tenant-scoped; scopes graph:read / graph:write."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import networkx as nx
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import principal_of
from audit.services import audit_record
from core.pagination import StrictLimitOffsetPagination
from graph import selectors, services
from graph.schema import (
    EntityDetailSerializer,
    EntityPageSerializer,
    GraphExportSerializer,
    GraphPathSerializer,
    NeighborsSerializer,
    RelationSerializer,
)
from graph.serializers import (
    EntityListParams,
    EntityMergeSerializer,
    ExportParams,
    NeighborParams,
    PathParams,
    RelationCreateSerializer,
)

READ = "graph:read"
WRITE = "graph:write"


def _params(serializer_class: type, request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class EntityPagination(StrictLimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class EntityListApi(APIView):
    required_scopes = {"GET": READ}

    @extend_schema(parameters=[EntityListParams], responses=EntityPageSerializer, operation_id="entities_list")
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        params = _params(EntityListParams, request)
        queryset = selectors.entity_search(principal, q=params["q"], type=params["type"])
        paginator = EntityPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        audit_record(principal=principal, action="graph.entity.list", target_type="entity")
        return paginator.get_paginated_response([selectors.entity_data(e) for e in page or []])


class EntityDetailApi(APIView):
    required_scopes = {"GET": READ, "DELETE": WRITE}

    @extend_schema(responses=EntityDetailSerializer, operation_id="entity_retrieve")
    def get(self, request: Request, entity_id: str) -> Response:
        principal = principal_of(request)
        entity = selectors.entity_get(principal, entity_id)
        audit_record(principal=principal, action="graph.entity.read", target_type="entity", target_id=str(entity.pk))
        return Response(selectors.entity_detail(principal, entity))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, entity_id: str) -> Response:
        principal = principal_of(request)
        entity = selectors.entity_get(principal, entity_id)
        services.entity_delete(principal=principal, entity=entity)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EntityNeighborsApi(APIView):
    required_scopes = {"GET": READ}

    @extend_schema(parameters=[NeighborParams], responses=NeighborsSerializer)
    def get(self, request: Request, entity_id: str) -> Response:
        principal = principal_of(request)
        entity = selectors.entity_get(principal, entity_id)
        params = _params(NeighborParams, request)
        data = selectors.graph_neighbors(principal, entity, depth=params["depth"], as_of=params["as_of"])
        audit_record(principal=principal, action="graph.neighbors", target_type="entity", target_id=str(entity.pk))
        return Response(data)


class EntityMergeApi(APIView):
    required_scopes = {"POST": WRITE}

    @extend_schema(request=EntityMergeSerializer, responses=EntityDetailSerializer)
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        serializer = EntityMergeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        target = selectors.entity_get(principal, serializer.validated_data["target"])
        sources = [selectors.entity_get(principal, pk) for pk in dict.fromkeys(serializer.validated_data["sources"])]
        merged = services.entity_merge(principal=principal, target=target, sources=sources)
        return Response(selectors.entity_detail(principal, merged))


class GraphPathApi(APIView):
    required_scopes = {"GET": READ}

    @extend_schema(parameters=[PathParams], responses=GraphPathSerializer)
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        params = _params(PathParams, request)
        source = selectors.entity_get(principal, params["from"])
        target = selectors.entity_get(principal, params["to"])
        data = selectors.graph_path(principal, source, target, as_of=params["as_of"], max_depth=params["max_depth"])
        audit_record(principal=principal, action="graph.path", target_type="entity", target_id=str(source.pk))
        return Response(data)


class RelationCollectionApi(APIView):
    required_scopes = {"POST": WRITE}

    @extend_schema(request=RelationCreateSerializer, responses={201: RelationSerializer})
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        serializer = RelationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        relation = services.relation_add(principal=principal, **serializer.validated_data)
        relation = selectors.relation_get(principal, relation.pk)
        return Response(selectors.relation_data(relation), status=status.HTTP_201_CREATED)


class RelationDetailApi(APIView):
    required_scopes = {"GET": READ, "DELETE": WRITE}

    @extend_schema(responses=RelationSerializer)
    def get(self, request: Request, relation_id: str) -> Response:
        principal = principal_of(request)
        relation = selectors.relation_get(principal, relation_id)
        return Response(selectors.relation_data(relation))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, relation_id: str) -> Response:
        principal = principal_of(request)
        relation = selectors.relation_get(principal, relation_id)
        services.relation_delete(principal=principal, relation=relation)
        return Response(status=status.HTTP_204_NO_CONTENT)


class _IgnoreFormatParam(DefaultContentNegotiation):
    """`?format=` here picks the export format, not a DRF renderer."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> Any:
        first = next(iter(renderers))
        return first, first.media_type


class GraphExportApi(APIView):
    required_scopes = {"GET": READ}
    content_negotiation_class = _IgnoreFormatParam

    @extend_schema(
        parameters=[ExportParams],
        responses={
            (200, "application/json"): GraphExportSerializer,
            (200, "application/graphml+xml"): OpenApiTypes.STR,
        },
    )
    def get(self, request: Request) -> Response | HttpResponse:
        principal = principal_of(request)
        params = _params(ExportParams, request)
        graph = selectors.graph_export(principal, as_of=params["as_of"])
        audit_record(
            principal=principal, action="graph.export", target_type="graph",
            detail={"format": params["format"], "nodes": graph.number_of_nodes(), "edges": graph.number_of_edges()},
        )  # fmt: skip
        if params["format"] == "graphml":
            body = "\n".join(nx.generate_graphml(graph, named_key_ids=True))
            response = HttpResponse(body, content_type="application/graphml+xml; charset=utf-8")
            response["Content-Disposition"] = 'attachment; filename="easymemory-graph.graphml"'
            return response
        data = nx.node_link_data(graph, edges="edges")
        return Response({"nodes": data["nodes"], "edges": data["edges"]})

"""REST endpoints for memories, search and stats: validate, look up, call one service, serialize."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import principal_of
from core.errors import InvalidInput, PayloadTooLarge
from core.pagination import StrictCursorPagination
from core.schema import paginated
from memory import services
from memory.search import memory_search_for
from memory.selectors import memory_get_for, memory_history_for, memory_list_for, memory_read_for, memory_stats_for
from memory.serializers import (
    FiltersSerializer,
    ForgetUserParams,
    HitSerializer,
    MemoryCreatedSerializer,
    MemoryHistorySerializer,
    MemoryInputSerializer,
    MemoryListParams,
    MemorySerializer,
    MemoryUpdateSerializer,
    SearchRequestSerializer,
    StatsSerializer,
)


class MemoryCursorPagination(StrictCursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


LIST_PARAMS = {"cursor", "limit"}


class MemoryCollectionApi(APIView):
    required_scopes = {"GET": "memory:read", "POST": "memory:write", "DELETE": "memory:write"}

    @extend_schema(
        request=MemoryInputSerializer,
        responses={201: MemoryCreatedSerializer, 200: MemoryCreatedSerializer},
        description="One memory, or a JSON array of them (a batch, all or nothing) answered by an array. "
        "200 when nothing new was stored (identical memory already present, or skipped by the memory policy).",
    )
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        payload: Any = request.data
        many = isinstance(payload, list)
        items = payload if many else [payload]
        if many and not items:
            raise InvalidInput("body", "the list of memories is empty")
        if len(items) > settings.EASYMEMORY_MAX_BATCH:
            raise PayloadTooLarge("body", f"at most {settings.EASYMEMORY_MAX_BATCH} memories per request")
        inputs = []
        for index, item in enumerate(items):
            serializer = MemoryInputSerializer(data=item)
            if not serializer.is_valid():
                raise ValidationError({f"[{index}]": serializer.errors} if many else serializer.errors)
            inputs.append(serializer.to_input())
        results = services.memory_create_many(principal=principal, items=inputs)
        body = [
            {**MemorySerializer(result.memory).data, "created": result.created}
            if result.memory is not None
            else {"id": None, "created": False, "skipped": result.skipped}
            for result in results
        ]
        any_created = any(result.created for result in results)
        code = status.HTTP_201_CREATED if any_created else status.HTTP_200_OK
        return Response(body if many else body[0], status=code)

    @extend_schema(
        parameters=[FiltersSerializer, MemoryListParams],
        responses=paginated(MemorySerializer(many=True), "PaginatedMemoryList"),
        operation_id="memories_list",
    )
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        params = {key: value for key, value in request.query_params.items() if key not in LIST_PARAMS}
        filters = FiltersSerializer(data=params)
        filters.is_valid(raise_exception=True)
        queryset = memory_list_for(principal, filters.to_filters())
        paginator = MemoryCursorPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(MemorySerializer(page, many=True).data)

    @extend_schema(
        parameters=[ForgetUserParams],
        responses=inline_serializer("ForgetUserResponse", {"deleted": serializers.IntegerField()}),
        operation_id="memories_forget_user",
    )
    def delete(self, request: Request) -> Response:
        principal = principal_of(request)
        user_ref = request.query_params.get("user_ref", "")
        if not user_ref:
            raise InvalidInput("user_ref", "DELETE /v1/memories needs ?user_ref=… (the end user to forget)")
        # Length and NUL characters (which PostgreSQL text cannot hold) are refused as a 400 naming the field.
        ForgetUserParams(data={"user_ref": user_ref}).is_valid(raise_exception=True)
        deleted = services.memory_forget_user(principal=principal, user_ref=user_ref)
        return Response({"deleted": deleted})


class MemoryDetailApi(APIView):
    required_scopes = {"GET": "memory:read", "PATCH": "memory:write", "DELETE": "memory:write"}

    @extend_schema(responses=MemorySerializer, operation_id="memory_retrieve")
    def get(self, request: Request, memory_id: str) -> Response:
        principal = principal_of(request)
        return Response(MemorySerializer(memory_read_for(principal, memory_id)).data)

    @extend_schema(request=MemoryUpdateSerializer, responses=MemorySerializer)
    def patch(self, request: Request, memory_id: str) -> Response:
        principal = principal_of(request)
        memory = memory_get_for(principal, memory_id)
        serializer = MemoryUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        updated = services.memory_update(principal=principal, memory=memory, changes=dict(serializer.validated_data))
        return Response(MemorySerializer(updated).data)

    @extend_schema(responses={204: None}, operation_id="memory_destroy")
    def delete(self, request: Request, memory_id: str) -> Response:
        principal = principal_of(request)
        memory = memory_get_for(principal, memory_id)
        services.memory_delete(principal=principal, memory=memory)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemoryHistoryApi(APIView):
    required_scopes = {"GET": "memory:read"}

    @extend_schema(
        responses=inline_serializer("MemoryHistoryResponse", {"results": MemoryHistorySerializer(many=True)})
    )
    def get(self, request: Request, memory_id: str) -> Response:
        principal = principal_of(request)
        history = memory_history_for(principal, memory_id)
        return Response({"results": MemoryHistorySerializer(history, many=True).data})


class SearchApi(APIView):
    required_scopes = {"POST": "memory:read"}

    @extend_schema(
        request=SearchRequestSerializer,
        responses=inline_serializer(
            "SearchResponse", {"results": HitSerializer(many=True), "took_ms": serializers.FloatField()}
        ),
    )
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        serializer = SearchRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        started = time.perf_counter()
        hits = memory_search_for(
            principal, data["query"], k=data["k"], filters=data["filters"], weights=data["weights"]
        )
        took_ms = round((time.perf_counter() - started) * 1000, 2)
        return Response({"results": HitSerializer.of(hits), "took_ms": took_ms})


class StatsApi(APIView):
    required_scopes = {"GET": "memory:read"}

    @extend_schema(responses=StatsSerializer)
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        return Response(memory_stats_for(principal.tenant))

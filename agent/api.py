"""POST /v1/chat/completions: the OpenAI-compatible memory proxy (agent/proxy.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import principal_of
from agent import proxy
from agent.llm import ChatMessage

MAX_MESSAGES = 200


def _next_chunk(source: Iterator[str]) -> str | None:
    return next(source, None)


async def _chunks(source: Iterator[str]) -> AsyncIterator[str]:
    # Under ASGI Django buffers a sync iterator whole before sending it; pulling each chunk through
    # sync_to_async streams it, on the thread that holds the request's database connection.
    while True:
        item = await sync_to_async(_next_chunk, thread_sensitive=True)(source)
        if item is None:
            return
        yield item


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    content = serializers.CharField(trim_whitespace=False, allow_blank=True)

    def validate_content(self, value: str) -> str:
        if len(value.encode("utf-8")) > settings.EASYMEMORY_MAX_CONTENT_BYTES:
            raise serializers.ValidationError(f"at most {settings.EASYMEMORY_MAX_CONTENT_BYTES} bytes")
        return value


class ChatCompletionRequestSerializer(serializers.Serializer):
    """OpenAI's request body; other OpenAI options (temperature, ...) are accepted and not forwarded."""

    model = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    # DRF hands max_length on to the list serializer that many=True makes; the stubs omit it.
    messages = ChatMessageSerializer(many=True, allow_empty=False, max_length=MAX_MESSAGES)  # type: ignore[call-arg]
    stream = serializers.BooleanField(required=False, default=False)
    user = serializers.CharField(max_length=200, required=False, allow_blank=True, default="",
                                 help_text="the end user (user_ref) whose memories are used and written")  # fmt: skip

    def validate_messages(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not any(m["role"] == "user" and m["content"].strip() for m in value):
            raise serializers.ValidationError("needs at least one non-empty user message")
        return value


class ChatCompletionsApi(APIView):
    # Reads memories and writes the exchange.
    required_scopes = {"POST": "memory:write"}

    @extend_schema(
        request=ChatCompletionRequestSerializer,
        responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/event-stream"): OpenApiTypes.STR},
        description="OpenAI-compatible chat completions with memory: point an OpenAI client's base URL at /v1.",
    )
    def post(self, request: Request) -> Response | StreamingHttpResponse:
        principal = principal_of(request)
        serializer = ChatCompletionRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        chat = proxy.ProxyRequest(
            messages=[ChatMessage(m["role"], m["content"]) for m in data["messages"]],
            model=data["model"], stream=data["stream"], user_ref=data["user"],
        )  # fmt: skip
        prepared = proxy.proxy_prepare(principal=principal, request=chat)
        if not chat.stream:
            return Response(proxy.proxy_complete(principal=principal, request=chat, prepared=prepared))
        chunks = proxy.proxy_stream(principal=principal, request=chat, prepared=prepared)
        response = StreamingHttpResponse(_chunks(chunks), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        return response

"""The OpenAI-compatible memory proxy behind POST /v1/chat/completions.

It adds the caller's relevant memories to the request as a system message, forwards the
conversation to the configured provider (Ollama, OpenAI-compatible or Anthropic, the graph
extractor's settings), answers in OpenAI's format (a JSON completion, or server-sent chunks when
`stream` is true), and stores the last user turn and the answer through the memory policy.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from accounts.principal import Principal
from agent.llm import ChatClient, ChatMessage, ChatProviderError
from audit.services import audit_record
from core.errors import InvalidInput
from memory.search import Hit, search
from memory.selectors import MemoryFilters
from memory.services import MemoryInput, memory_create_many

RECALL_K = 5
AGENT_ID = "openai-proxy"
PREAMBLE = (
    "Memories about the user that may be relevant, most relevant first. Use them when they help; "
    "do not invent others.\n"
)


@dataclass(frozen=True)
class ProxyRequest:
    messages: list[ChatMessage]
    model: str
    stream: bool
    user_ref: str


@dataclass(frozen=True)
class Prepared:
    client: ChatClient
    messages: list[ChatMessage]
    used: list[Hit]


def proxy_prepare(*, principal: Principal, request: ProxyRequest) -> Prepared:
    """Recall memories for the last user turn and build the provider's conversation."""
    from graph.providers.registry import config_from_settings

    config = config_from_settings()
    if config.provider == "offline":
        raise InvalidInput("model", "no chat model is configured on this server (EASYMEMORY_PROVIDER is offline)")
    if request.model:
        config = replace(config, model=request.model)
    query = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    used = search(principal, query, k=RECALL_K, filters=MemoryFilters(user_ref=request.user_ref), weights={})
    messages = list(request.messages)
    if used:
        notes = PREAMBLE + "\n".join(f"- {hit.memory.content}" for hit in used)
        messages.insert(0, ChatMessage("system", notes))
    return Prepared(client=ChatClient(config), messages=messages, used=used)


def proxy_store_exchange(*, principal: Principal, request: ProxyRequest, answer: str) -> None:
    last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    items = [
        MemoryInput(content=text, kind="message", metadata={"role": role}, user_ref=request.user_ref, agent_id=AGENT_ID)
        for role, text in (("user", last_user), ("assistant", answer))
        if text.strip()
    ]
    if items:
        memory_create_many(principal=principal, items=items)


def _audit(principal: Principal, prepared: Prepared, outcome: str = "ok") -> None:
    audit_record(
        principal=principal, action="proxy.chat", target_type="chat", outcome=outcome,
        detail={"memories": [str(hit.memory.id) for hit in prepared.used]},
    )  # fmt: skip


def proxy_complete(*, principal: Principal, request: ProxyRequest, prepared: Prepared) -> dict[str, Any]:
    try:
        answer = "".join(prepared.client.stream(prepared.messages))
    except ChatProviderError as exc:
        _audit(principal, prepared, "error")
        raise InvalidInput("model", f"the provider failed: {exc}") from exc
    proxy_store_exchange(principal=principal, request=request, answer=answer)
    _audit(principal, prepared)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": prepared.client.config.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "easymemory": {"memories": [str(hit.memory.id) for hit in prepared.used]},
    }


def proxy_stream(*, principal: Principal, request: ProxyRequest, prepared: Prepared) -> Iterator[str]:
    """Server-sent chunks in OpenAI's format; the exchange is stored once the answer is complete."""
    ident, created, model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), prepared.client.config.model

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model, **extra}
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant"}, easymemory={"memories": [str(hit.memory.id) for hit in prepared.used]})
    parts: list[str] = []
    try:
        for text in prepared.client.stream(prepared.messages):
            parts.append(text)
            yield chunk({"content": text})
    except ChatProviderError as exc:
        _audit(principal, prepared, "error")
        yield f"data: {json.dumps({'error': {'message': str(exc), 'type': 'provider_error'}})}\n\n"
        yield "data: [DONE]\n\n"
        return
    proxy_store_exchange(principal=principal, request=request, answer="".join(parts))
    _audit(principal, prepared)
    yield chunk({}, "stop")
    yield "data: [DONE]\n\n"

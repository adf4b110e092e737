"""Streaming chat completions from the graph extractor's providers (Ollama, OpenAI-compatible,
Anthropic), over plain httpx. Yields text as it arrives.

Connection failures, 429 and 5xx before the first byte are retried with backoff (honouring
Retry-After) like the extractor; once text has been shown, a broken stream is reported, not retried.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from graph.providers.base import ProviderConfig

DEFAULT_URLS = {
    "ollama": "http://localhost:11434",
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}
MAX_ERROR_BODY = 300


class ChatProviderError(Exception):
    """The provider could not give an answer (unreachable, refused, or a broken reply)."""


@dataclass(frozen=True)
class ChatMessage:
    role: str  # system | user | assistant
    content: str


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


class ChatClient:
    def __init__(self, config: ProviderConfig, *, client: httpx.Client | None = None) -> None:
        if config.provider not in DEFAULT_URLS:
            raise ValueError(f"chat needs an LLM provider (ollama, openai or anthropic), not {config.provider!r}")
        if not config.model:
            raise ValueError(f"a model is required for the {config.provider} provider (EASYMEMORY_MODEL or --model)")
        self.config = config
        self.base_url = (config.base_url or DEFAULT_URLS[config.provider]).rstrip("/")
        self.http = client or httpx.Client(timeout=httpx.Timeout(config.timeout, connect=10.0))

    def _request(self, messages: list[ChatMessage]) -> tuple[str, dict[str, Any], dict[str, str]]:
        provider, model = self.config.provider, self.config.model
        plain = [{"role": m.role, "content": m.content} for m in messages]
        if provider == "ollama":
            return f"{self.base_url}/api/chat", {"model": model, "messages": plain, "stream": True}, {}
        if provider == "openai":
            headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
            return f"{self.base_url}/chat/completions", {"model": model, "messages": plain, "stream": True}, headers
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        turns = [{"role": m.role, "content": m.content} for m in messages if m.role != "system"]
        payload = {"model": model, "max_tokens": 2048, "system": system, "messages": turns, "stream": True}
        headers = {"anthropic-version": "2023-06-01", "x-api-key": self.config.api_key}
        return f"{self.base_url}/v1/messages", payload, headers

    def stream(self, messages: list[ChatMessage]) -> Iterator[str]:
        url, payload, headers = self._request(messages)
        failures = 0
        while True:
            wait: float | None = None
            try:
                with self.http.stream("POST", url, json=payload, headers=headers) as response:
                    if response.status_code == 429 or response.status_code >= 500:
                        wait = _retry_after(response)
                        error = ChatProviderError(f"{self.config.provider}: HTTP {response.status_code}")
                    elif response.status_code >= 400:
                        body = response.read().decode("utf-8", "replace")[:MAX_ERROR_BODY]
                        raise ChatProviderError(f"{self.config.provider}: HTTP {response.status_code}: {body}")
                    else:
                        yield from self._chunks(response)
                        return
            except httpx.TransportError as exc:
                error = ChatProviderError(f"{self.config.provider}: cannot reach {self.base_url} ({exc!r})")
            if failures >= self.config.max_retries:
                raise error
            delay = min(self.config.max_backoff, self.config.backoff * 2**failures)
            delay += random.uniform(0, self.config.backoff)  # noqa: S311 - jitter, not security
            if wait is not None:
                delay = max(delay, min(wait, self.config.max_backoff))
            failures += 1
            time.sleep(delay)

    def _chunks(self, response: httpx.Response) -> Iterator[str]:
        provider = self.config.provider
        for line in response.iter_lines():
            line = line.strip()
            if not line:
                continue
            if provider == "ollama":
                event = json.loads(line)
                text = (event.get("message") or {}).get("content") or ""
                if text:
                    yield text
                if event.get("done"):
                    return
                continue
            if not line.startswith("data:"):
                continue  # SSE "event:" lines and comments
            data = line[len("data:") :].strip()
            if data == "[DONE]":
                return
            event = json.loads(data)
            if provider == "openai":
                for choice in event.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") or ""
                    if text:
                        yield text
            elif event.get("type") == "content_block_delta":
                text = (event.get("delta") or {}).get("text") or ""
                if text:
                    yield text
            elif event.get("type") == "message_stop":
                return
            elif event.get("type") == "error":
                raise ChatProviderError(f"anthropic: {event.get('error')}")

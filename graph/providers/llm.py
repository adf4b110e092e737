"""LLM extraction clients over plain HTTP (httpx): Ollama, OpenAI-compatible, Anthropic.

Each asks for JSON following EXTRACTION_SCHEMA (the provider's own structured-output
feature where it has one), repairs a damaged reply, and asks once more when the reply
still cannot be used. Rate limits, 5xx and timeouts are retried with exponential
backoff and jitter, at most `max_retries` times, honouring Retry-After.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from graph.providers.base import (
    EXTRACTION_SCHEMA,
    SYSTEM_PROMPT,
    Extraction,
    ExtractionError,
    ProviderConfig,
    TransientProviderError,
    parse_reply,
)

MAX_INPUT_CHARS = 12_000
MAX_ERROR_BODY = 300
Reply = str | dict[str, Any]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class LLMExtractor:
    name = "llm"
    remote = True
    default_base_url = ""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not config.model:
            raise ValueError(f"EASYMEMORY_MODEL is required for the {self.name} provider")
        self.config = config
        self.model = config.model
        self.base_url = (config.base_url or self.default_base_url).rstrip("/")
        self.client = client or httpx.Client(timeout=httpx.Timeout(config.timeout))
        self.sleep = sleep
        self.attempts = 0  # HTTP requests made, for observability and tests

    # --- provider specifics ---------------------------------------------------------
    def _request(self, prompt: str) -> tuple[str, dict[str, Any], dict[str, str]]:
        raise NotImplementedError

    def _reply(self, body: dict[str, Any]) -> Reply:
        raise NotImplementedError

    # --- shared behaviour -----------------------------------------------------------
    @staticmethod
    def _prompt(text: str) -> str:
        return (
            "JSON schema of the reply:\n"
            + json.dumps(EXTRACTION_SCHEMA, separators=(",", ":"))
            + "\n\nMemory:\n"
            + text[:MAX_INPUT_CHARS]
        )

    def extract(self, text: str) -> Extraction:
        prompt = self._prompt(text)
        reply = self._complete(prompt)
        try:
            return parse_reply(reply)
        except ValueError as first:
            # One more try, telling the model what was wrong with its reply.
            correction = (
                f"{prompt}\n\nYour previous reply could not be used: {first}. "
                "Reply with only the JSON object, no reasoning, no markdown."
            )
            try:
                return parse_reply(self._complete(correction))
            except ValueError as second:
                raise ExtractionError(f"{self.name}: malformed reply after one retry: {second}") from second

    def _complete(self, prompt: str) -> Reply:
        url, payload, headers = self._request(prompt)
        failures = 0
        while True:
            self.attempts += 1
            wait_hint: float | None = None
            try:
                response = self.client.post(url, json=payload, headers=headers, timeout=self.config.timeout)
            except httpx.TimeoutException as exc:
                error = TransientProviderError(f"{self.name}: timed out after {self.config.timeout}s ({exc!r})")
            except httpx.TransportError as exc:
                error = TransientProviderError(f"{self.name}: cannot reach {self.base_url} ({exc!r})")
            else:
                status = response.status_code
                if status == 429 or status >= 500:
                    wait_hint = _retry_after(response)
                    error = TransientProviderError(f"{self.name}: HTTP {status}: {response.text[:MAX_ERROR_BODY]}")
                elif status >= 400:
                    # 400/401/403/404: a configuration problem that retrying cannot fix.
                    raise ExtractionError(f"{self.name}: HTTP {status}: {response.text[:MAX_ERROR_BODY]}")
                else:
                    try:
                        body = response.json()
                    except ValueError as exc:
                        raise ExtractionError(f"{self.name}: response body is not JSON") from exc
                    return self._reply(body)
            if failures >= self.config.max_retries:
                raise error
            delay = min(self.config.max_backoff, self.config.backoff * 2**failures)
            delay += random.uniform(0, self.config.backoff)  # noqa: S311 - jitter, not security
            if wait_hint is not None:
                delay = max(delay, min(wait_hint, self.config.max_backoff))
            failures += 1
            self.sleep(delay)


class OllamaExtractor(LLMExtractor):
    """Ollama's /api/chat with `format` set to the JSON schema (structured outputs)."""

    name = "ollama"
    default_base_url = "http://localhost:11434"

    def _request(self, prompt: str) -> tuple[str, dict[str, Any], dict[str, str]]:
        payload = {
            "model": self.model,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
            "stream": False,
            "format": EXTRACTION_SCHEMA,
            "options": {"temperature": 0},
        }
        return f"{self.base_url}/api/chat", payload, {}

    def _reply(self, body: dict[str, Any]) -> Reply:
        message = body.get("message") or {}
        content = message.get("content")
        if not isinstance(content, str):
            raise ExtractionError("ollama: reply has no message content")
        return content


class OpenAIExtractor(LLMExtractor):
    """Any OpenAI-compatible /chat/completions (OpenAI, vLLM, llama.cpp server, LM Studio)
    with response_format json_schema."""

    name = "openai"
    default_base_url = "https://api.openai.com/v1"

    def _request(self, prompt: str) -> tuple[str, dict[str, Any], dict[str, str]]:
        payload = {
            "model": self.model,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
            "temperature": 0,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "extraction", "schema": EXTRACTION_SCHEMA},
            },
        }
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        return f"{self.base_url}/chat/completions", payload, headers

    def _reply(self, body: dict[str, Any]) -> Reply:
        try:
            content = body["choices"][0]["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ExtractionError("openai: reply has no choices[0].message") from exc
        if not isinstance(content, str):
            raise ExtractionError("openai: reply has no message content (refusal or tool call)")
        return content


class AnthropicExtractor(LLMExtractor):
    """Anthropic's Messages API; structured output through a forced tool call whose
    input_schema is the extraction schema."""

    name = "anthropic"
    default_base_url = "https://api.anthropic.com"
    tool_name = "record_extraction"

    def _request(self, prompt: str) -> tuple[str, dict[str, Any], dict[str, str]]:
        payload = {
            "model": self.model,
            "max_tokens": 4096,
            "system": SYSTEM_PROMPT,
            "messages": [{"role": "user", "content": prompt}],
            "tools": [
                {
                    "name": self.tool_name,
                    "description": "Record the entities and relations found in the memory.",
                    "input_schema": EXTRACTION_SCHEMA,
                }
            ],
            "tool_choice": {"type": "tool", "name": self.tool_name},
        }
        headers = {"anthropic-version": "2023-06-01", "x-api-key": self.config.api_key}
        return f"{self.base_url}/v1/messages", payload, headers

    def _reply(self, body: dict[str, Any]) -> Reply:
        blocks = body.get("content")
        if not isinstance(blocks, list):
            raise ExtractionError("anthropic: reply has no content blocks")
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("input"), dict):
                return block["input"]
        # No tool call (a proxy that drops tools, or the model ignored tool_choice): parse the text.
        return "".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict) and b.get("type") == "text")

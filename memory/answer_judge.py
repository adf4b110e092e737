"""The optional answer-and-judge step of `easymemory eval locomo` (`--answer-model`, `--judge-model`).

For each question, a model answers from the top k memories that search() retrieves, and a judge
model labels the answer CORRECT or WRONG against the gold answer, as the LoCoMo papers' LLM-judge
(J) score does: generous about wording, strict about the fact, dates compared as dates. The
accuracy is reported per category beside recall. It talks to the configured OpenAI-compatible or
Ollama server over plain HTTP (non-streaming chat, temperature 0), with the extractor's retry
rules: 429, 5xx, timeouts and connection errors are retried with backoff, other errors stop the run.

Memory holds no client of its own for the other providers: this is an evaluation tool for users
who have a model, not part of the query path.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings

from accounts.principal import Principal
from memory.search import search

PROVIDERS = ("openai", "ollama")
DEFAULT_URLS = {"openai": "https://api.openai.com/v1", "ollama": "http://localhost:11434"}
MAX_ERROR_BODY = 300
MAX_MEMORY_CHARS = 1_000

ANSWER_SYSTEM = (
    "You answer questions about a long conversation between two people, using only the memories "
    "given, each with the date it was said. Memories may contradict each other: prefer the most "
    'recent. Turn relative dates ("last year", "yesterday") into dates using the memory\'s date. '
    "Reply with the answer only, in at most one short sentence; if the memories do not say, reply "
    "with your best guess from them."
)
JUDGE_SYSTEM = (
    "You grade answers. Given a question, a gold (ground-truth) answer and a generated answer, label "
    "the generated answer CORRECT or WRONG. Be generous about wording: it is CORRECT when it states "
    "the same fact or topic as the gold answer, even if longer or phrased differently. For dates and "
    "time periods it is CORRECT when it refers to the same date or period, whatever the format "
    '("May 7th" and "7 May"). It is WRONG when it states something else, or nothing. '
    'Reply with JSON only: {"reasoning": "one short sentence", "label": "CORRECT" or "WRONG"}.'
)
_LABEL = re.compile(r"\b(CORRECT|WRONG)\b")


class JudgeError(Exception):
    """The model server could not be used (unreachable after retries, refused, or an unusable reply)."""


@dataclass(frozen=True)
class Endpoint:
    provider: str
    base_url: str
    api_key: str = ""
    timeout: float = 60.0
    max_retries: int = 3
    backoff: float = 1.0
    max_backoff: float = 30.0


def endpoint_from_settings(provider: str | None = None, base_url: str | None = None) -> Endpoint:
    """The configured model server (EASYMEMORY_PROVIDER, EASYMEMORY_LLM_BASE_URL, EASYMEMORY_LLM_API_KEY,
    timeout and retry settings), with `provider` / `base_url` given on the command line taking precedence."""
    chosen = provider or settings.EASYMEMORY_PROVIDER
    if chosen not in PROVIDERS:
        raise ValueError(
            f"the answer and judge models need an OpenAI-compatible or Ollama server: set EASYMEMORY_PROVIDER "
            f"or --llm-provider to one of {', '.join(PROVIDERS)} (not {chosen!r})"
        )
    url = base_url or (settings.EASYMEMORY_LLM_BASE_URL if chosen == settings.EASYMEMORY_PROVIDER else "")
    return Endpoint(
        provider=chosen,
        base_url=(url or DEFAULT_URLS[chosen]).rstrip("/"),
        api_key=settings.EASYMEMORY_LLM_API_KEY,
        timeout=settings.EASYMEMORY_LLM_TIMEOUT,
        max_retries=settings.EASYMEMORY_LLM_MAX_RETRIES,
        backoff=settings.EASYMEMORY_LLM_BACKOFF,
    )


class ChatModel:
    """One model on one server: `complete(system, user)` returns the reply's text."""

    def __init__(self, endpoint: Endpoint, model: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if not model:
            raise ValueError("a model name is required")
        self.endpoint = endpoint
        self.model = model
        self.http = httpx.Client(timeout=httpx.Timeout(endpoint.timeout, connect=10.0))
        self.sleep = sleep

    def _request(self, system: str, user: str) -> tuple[str, dict[str, Any], dict[str, str]]:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        if self.endpoint.provider == "ollama":
            payload = {"model": self.model, "messages": messages, "stream": False, "options": {"temperature": 0}}
            return f"{self.endpoint.base_url}/api/chat", payload, {}
        headers = {"Authorization": f"Bearer {self.endpoint.api_key}"} if self.endpoint.api_key else {}
        payload = {"model": self.model, "messages": messages, "temperature": 0}
        return f"{self.endpoint.base_url}/chat/completions", payload, headers

    def _text(self, body: Any) -> str:
        try:
            if self.endpoint.provider == "ollama":
                content = body["message"]["content"]
            else:
                content = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise JudgeError(f"{self.endpoint.provider}: the reply has no message content") from exc
        if not isinstance(content, str):
            raise JudgeError(f"{self.endpoint.provider}: the reply has no message content")
        return content.strip()

    def complete(self, system: str, user: str) -> str:
        url, payload, headers = self._request(system, user)
        failures = 0
        while True:
            wait: float | None = None
            try:
                response = self.http.post(url, json=payload, headers=headers)
            except httpx.TransportError as exc:
                error = JudgeError(f"{self.endpoint.provider}: cannot reach {self.endpoint.base_url} ({exc!r})")
            else:
                status = response.status_code
                if status == 429 or status >= 500:
                    error = JudgeError(f"{self.endpoint.provider}: HTTP {status}: {response.text[:MAX_ERROR_BODY]}")
                    try:
                        wait = max(0.0, float(response.headers.get("retry-after", "")))
                    except ValueError:
                        wait = None
                elif status >= 400:
                    raise JudgeError(f"{self.endpoint.provider}: HTTP {status}: {response.text[:MAX_ERROR_BODY]}")
                else:
                    try:
                        return self._text(response.json())
                    except ValueError as exc:
                        raise JudgeError(f"{self.endpoint.provider}: the response body is not JSON") from exc
            if failures >= self.endpoint.max_retries:
                raise error
            delay = min(self.endpoint.max_backoff, self.endpoint.backoff * 2**failures)
            delay += random.uniform(0, self.endpoint.backoff)  # noqa: S311 - jitter, not security
            if wait is not None:
                delay = max(delay, min(wait, self.endpoint.max_backoff))
            failures += 1
            self.sleep(delay)


def parse_label(reply: str) -> str | None:
    """CORRECT / WRONG from a judge's reply: the JSON's `label`, else the last of the two words in the text."""
    start, end = reply.find("{"), reply.rfind("}")
    if 0 <= start < end:
        try:
            data = json.loads(reply[start : end + 1])
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and str(data.get("label", "")).strip().upper() in {"CORRECT", "WRONG"}:
            return str(data["label"]).strip().upper()
    found = _LABEL.findall(reply.upper())
    return found[-1] if found else None


def answer_prompt(question: str, memories: Sequence[tuple[str, str]]) -> str:
    lines = [f"- [{when}] {text[:MAX_MEMORY_CHARS]}" for when, text in memories]
    return "Memories:\n" + "\n".join(lines) + f"\n\nQuestion: {question}\nAnswer:"


def judge_prompt(question: str, gold: str, generated: str) -> str:
    return f"Question: {question}\nGold answer: {gold}\nGenerated answer: {generated}\n\nLabel:"


@dataclass
class AnswerJudge:
    """Answers and judges the questions of a run; keeps each verdict with its category."""

    answerer: ChatModel
    judge: ChatModel
    k: int = 10
    verdicts: list[tuple[int, bool]] = field(default_factory=list)
    unparsed: int = 0

    def run(self, principal: Principal, question: str, gold: str, category: int) -> bool:
        hits = search(principal, question, k=self.k)
        memories = []
        for hit in hits:
            when = hit.memory.occurred_at or hit.memory.created_at
            memories.append((f"{when.day} {when:%B %Y}", hit.memory.content))
        generated = self.answerer.complete(ANSWER_SYSTEM, answer_prompt(question, memories))
        label = parse_label(self.judge.complete(JUDGE_SYSTEM, judge_prompt(question, gold, generated)))
        if label is None:
            self.unparsed += 1  # counted as WRONG, and reported
        correct = label == "CORRECT"
        self.verdicts.append((category, correct))
        return correct

    def report(self) -> dict[str, Any]:
        by_category: dict[str, float] = {}
        for category in sorted({c for c, _ in self.verdicts}):
            values = [ok for c, ok in self.verdicts if c == category]
            by_category[str(category)] = round(sum(values) / len(values), 4)
        total = len(self.verdicts)
        return {
            "answer_model": f"{self.answerer.endpoint.provider}:{self.answerer.model}",
            "judge_model": f"{self.judge.endpoint.provider}:{self.judge.model}",
            "k": self.k,
            "questions": total,
            "accuracy": round(sum(ok for _, ok in self.verdicts) / total, 4) if total else 0.0,
            "accuracy_by_category": by_category,
            "unparsed_judgements": self.unparsed,
        }

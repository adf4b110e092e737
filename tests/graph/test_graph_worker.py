"""End to end: a memory written through the API is extracted by a real Celery worker process,
with the provider configured through the environment as a user would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from graph.models import Entity, Relation
from memory.models import EnrichmentState, Memory
from tests.conftest import Persona
from tests.graph.fakes import MARCO, FakeLLMServer, Scripted, ollama_reply

DEADLINE = 180  # seconds: the worker loads the embedding model first, on a busy 2-core machine


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_extracts_through_ollama_and_records_a_failure(
    writer: Persona, fake_llm: FakeLLMServer, start_worker: Callable[..., object]
) -> None:
    thinking = "<think>The memory names a person and a company.</think>\n" + json.dumps(MARCO)
    fake_llm.queue(
        Scripted(429, {"error": "rate limited"}, {"Retry-After": "0"}),
        Scripted(body=ollama_reply(thinking)),
        Scripted(body=ollama_reply("I cannot help with that.")),
        Scripted(body=ollama_reply("Still no JSON, sorry.")),
    )
    start_worker(
        EASYMEMORY_PROVIDER="ollama",
        EASYMEMORY_MODEL="qwen3:8b",
        EASYMEMORY_LLM_BASE_URL=fake_llm.url,
        EASYMEMORY_LLM_BACKOFF="0.01",
    )
    client = writer.client()
    first = client.post("/v1/memories", {"content": "Marco Rossi works at Acme Robotics."}, format="json").json()
    wait_until(lambda: Relation.objects.filter(predicate="works_at").exists(), "the relation")
    assert Entity.objects.get(key="marco rossi").aliases == ["Marco"]
    assert Memory.objects.get(pk=first["id"]).enrichment_state == EnrichmentState.DONE

    second = client.post("/v1/memories", {"content": "Something the model cannot parse."}, format="json").json()
    wait_until(
        lambda: Memory.objects.get(pk=second["id"]).enrichment_state == EnrichmentState.FAILED, "the recorded failure"
    )
    body = client.get(f"/v1/memories/{second['id']}").json()
    assert body["enrichment_error"].startswith("graph: ollama: malformed reply after one retry")
    assert client.get("/v1/stats").json()["graph"]["extraction_failures"] == 1
    assert [r.path for r in fake_llm.requests] == ["/api/chat"] * 4
    assert all(r.body["model"] == "qwen3:8b" for r in fake_llm.requests)

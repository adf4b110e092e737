"""Write over HTTP → embedded by a real Celery worker (Redis broker) → found by vector search."""

from __future__ import annotations

import time

import httpx
import pytest
from django.conf import settings

from tests.conftest import LiveServer, Persona

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until_enriched(server: LiveServer, persona: Persona, memory_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{server.url}/v1/memories/{memory_id}", headers=persona.headers, timeout=60).json()
        if body["enrichment_state"] != "pending":
            return body
        time.sleep(0.3)
    raise TimeoutError("the worker did not enrich the memory in time")


@pytest.mark.skipif(not settings.EASYMEMORY_REDIS_URL, reason="needs EASYMEMORY_REDIS_URL (make test sets it)")
def test_a_memory_written_over_http_is_embedded_by_the_worker_and_found_by_meaning(
    asgi_server: LiveServer, celery_worker, writer: Persona
) -> None:
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    created = httpx.post(
        f"{asgi_server.url}/v1/memories",
        json={"content": "The quarterly budget review moved to Thursday afternoon"},
        headers=writer.headers,
    )
    assert created.status_code == 201
    memory = wait_until_enriched(asgi_server, writer, created.json()["id"])
    assert memory["enrichment_state"] == "done"
    # No word in common with the memory: only the vector list can find it.
    found = httpx.post(
        f"{asgi_server.url}/v1/search",
        json={"query": "when is the finance meeting", "weights": {"fulltext": 0}},
        headers=writer.headers,
        timeout=120,
    ).json()["results"]
    assert found[0]["memory"]["id"] == created.json()["id"]
    assert "vector" in found[0]["evidence"]

"""Write over HTTP → embedded by a real Celery worker (Redis broker) → found by vector search."""

from __future__ import annotations

import time

import httpx
import pytest
from django.conf import settings

from tests.conftest import LiveServer, Persona

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.e2e]


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


@pytest.mark.skipif(not settings.EASYMEMORY_REDIS_URL, reason="needs EASYMEMORY_REDIS_URL (make test sets it)")
def test_a_large_tenants_first_search_has_the_worker_build_its_term_statistics(
    celery_worker, writer: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.test import override_settings

    from accounts.scoping import scoped
    from memory import term_stats
    from memory.fulltext import fulltext_candidates
    from memory.models import Memory, TermStat, TermStatsSnapshot
    from memory.selectors import MemoryFilters, filters_apply
    from memory.services import MemoryInput, memory_create_many

    monkeypatch.setattr(term_stats, "_requested", {})
    texts = [f"note {i} about the zeppelin hangar" if i % 3 == 0 else f"note {i} about lunch" for i in range(60)]
    memory_create_many(principal=writer.principal, items=[MemoryInput(content=t) for t in texts])
    base = filters_apply(scoped(Memory, writer.tenant), MemoryFilters())
    with override_settings(EASYMEMORY_FULLTEXT_EXACT_MAX_ROWS=10):  # this tenant counts as large
        assert fulltext_candidates(writer.principal, base, "zeppelin", 5)  # exact meanwhile; asks the worker
        deadline = time.monotonic() + 120
        while not TermStatsSnapshot.objects.filter(tenant=writer.tenant).exists():
            assert time.monotonic() < deadline, "the worker did not build the term statistics"
            time.sleep(0.3)
        assert scoped(TermStat, writer.tenant).get(lexeme="zeppelin").df == 20
        assert len(fulltext_candidates(writer.principal, base, "zeppelin", 5)) == 5  # now the tiered plan

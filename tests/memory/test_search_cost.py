"""The cheaper paths of search: each must give the same answer as the path it shortcuts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.principal import Principal
from memory import embeddings
from memory import search as search_module
from memory.models import Memory
from memory.search import list_depth, register_candidate_list, search
from memory.selectors import MemoryFilters
from tests.conftest import Persona
from tests.memory.test_search import QUERY, VECTOR_ONLY, _exact_top, remember, skewed_tenants  # noqa: F401

pytestmark = pytest.mark.django_db


def _spy(monkeypatch: Any, name: str) -> list[int]:
    """Record how many rows each call of search_module.<name> returned (the real function runs)."""
    calls: list[int] = []
    real = getattr(search_module, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        calls.append(len(result))
        return result

    monkeypatch.setattr(search_module, name, spy)
    return calls


@override_settings(EASYMEMORY_SEARCH_DEPTH_EXACT=30)  # the margins below are sized for 30
def test_a_mostly_unfiltered_tenant_gets_its_exact_top_k_from_its_embeddings_alone(
    skewed_tenants: dict[str, Any],  # noqa: F811 - the fixture imported above
    monkeypatch: Any,
) -> None:
    # Below the HNSW size and above the per-row lookup size (lowered here for 1,455 rows).
    monkeypatch.setattr(search_module, "EXACT_LOOKUP_MAX_ROWS", 100)
    nearest = _spy(monkeypatch, "_nearest_of_tenant")
    big = skewed_tenants["big"]
    hits = search(Principal.system(big), QUERY, k=10, weights=VECTOR_ONLY)
    assert nearest == [30]  # the embeddings-first path answered (depth 30)
    assert [hit.memory.pk for hit in hits] == _exact_top(big, QUERY, 10)


@override_settings(EASYMEMORY_SEARCH_DEPTH_EXACT=30)  # the margins below are sized for 30
def test_when_the_nearest_rows_fail_the_filters_it_falls_back_and_stays_exact(
    skewed_tenants: dict[str, Any],  # noqa: F811 - the fixture imported above
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(search_module, "EXACT_LOOKUP_MAX_ROWS", 100)
    big = skewed_tenants["big"]
    # The 400 nearest memories have expired: more than the margin the first pass ranks beyond k,
    # so that pass comes up short and the filtered set itself is ranked.
    nearest_first = _exact_top(big, QUERY, 400)
    Memory.objects.filter(pk__in=nearest_first).update(expires_at=timezone.now() - timedelta(days=1))
    nearest = _spy(monkeypatch, "_nearest_of_tenant")
    hits = search(Principal.system(big), QUERY, k=10, weights=VECTOR_ONLY)
    assert nearest == [0]  # came up short ...
    expected = [mid for mid in _exact_top(big, QUERY, 430) if mid not in set(nearest_first)][:10]
    assert [hit.memory.pk for hit in hits] == expected  # ... and the answer is still the exact one


@override_settings(EASYMEMORY_SEARCH_DEPTH_EXACT=30)  # the margins below are sized for 30
def test_expired_rows_inside_the_margin_are_skipped_without_a_second_pass(
    skewed_tenants: dict[str, Any],  # noqa: F811 - the fixture imported above
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(search_module, "EXACT_LOOKUP_MAX_ROWS", 100)
    big = skewed_tenants["big"]
    nearest_first = _exact_top(big, QUERY, 5)
    Memory.objects.filter(pk__in=nearest_first).update(expires_at=timezone.now() - timedelta(days=1))
    nearest = _spy(monkeypatch, "_nearest_of_tenant")
    hits = search(Principal.system(big), QUERY, k=10, weights=VECTOR_ONLY)
    assert nearest == [30]
    assert [hit.memory.pk for hit in hits] == _exact_top(big, QUERY, 15)[5:15]


def test_query_embeddings_are_cached_per_tenant(writer: Persona, outsider: Persona, monkeypatch: Any) -> None:
    remember(writer.principal, "the holiday budget is 2,000 euros")
    remember(outsider.principal, "the holiday budget is 9,000 euros")
    embeddings._query_cache.items.clear()
    search(writer.principal, "what is the holiday budget", k=3)
    assert [key[0] for key in embeddings._query_cache.items] == [str(writer.principal.tenant_id)]
    # The other tenant's identical query does not find the first tenant's entry: it is embedded
    # again (so its speed tells nothing about what others asked) and cached under its own tenant.
    encoded: list[str] = []
    original = embeddings.query_encoder

    def counting(name: str) -> Any:
        encoder = original(name)
        assert encoder is not None
        return lambda text: encoded.append(text) or encoder(text)

    monkeypatch.setattr(embeddings, "query_encoder", counting)
    hits = search(outsider.principal, "what is the holiday budget", k=3)
    search(writer.principal, "what is the holiday budget", k=3)  # the writer's entry still serves it
    assert encoded == ["what is the holiday budget"]
    assert {key[0] for key in embeddings._query_cache.items} == {
        str(writer.principal.tenant_id),
        str(outsider.principal.tenant_id),
    }
    assert {hit.memory.tenant_id for hit in hits} == {outsider.principal.tenant_id}


def test_session_context_comes_only_from_neighbours_inside_the_filters(writer: Persona) -> None:
    question, answer, later = remember(
        writer.principal,
        "Jon: What made you open the dance studio?",
        "Gina: Losing my banking job pushed me to do it.",
        "Gina: I bought new shoes.",
        session_id="chat-1",
    )
    query = "why did Jon open the dance studio"
    hits = search(writer.principal, query, k=3, weights={"vector": 0.0})
    assert [hit.memory for hit in hits[:2]] == [question, answer]
    assert "context" in hits[1].evidence
    # With the answer outside the filters, the question's next neighbour inside them is the later turn.
    Memory.objects.filter(pk__in=[question.pk, later.pk]).update(tags=["public"])
    filters = MemoryFilters(tags_any=["public"])
    hits = search(writer.principal, query, k=3, weights={"vector": 0.0}, filters=filters)
    assert [hit.memory for hit in hits] == [question, later]
    assert "context" in hits[1].evidence


def test_the_session_prior_adds_no_statement(writer: Persona) -> None:
    remember(
        writer.principal,
        "Gina: I opened a dance studio downtown.",
        "Gina: The studio floor needed repairs.",
        session_id="chat-gina",
    )
    remember(writer.principal, "Jon: the floor is oak.", session_id="chat-jon")
    search(writer.principal, "dance studio floor", k=3, weights={"vector": 0.0})  # once-per-process look-ups
    counts = {}
    for weight in (0.0, 0.3):
        with override_settings(EASYMEMORY_SEARCH_SESSION_WEIGHT=weight), CaptureQueriesContext(connection) as queries:
            hits = search(writer.principal, "dance studio floor", k=3, weights={"vector": 0.0})
        counts[weight] = len(queries.captured_queries)
    assert any("session" in hit.evidence for hit in hits)  # the prior did act
    assert counts[0.3] == counts[0.0]


def test_lists_go_deeper_where_both_exact_plans_rank_every_row() -> None:
    sizes = {"EASYMEMORY_EXACT_SCAN_MAX_ROWS": 20_000, "EASYMEMORY_FULLTEXT_EXACT_MAX_ROWS": 5_000}
    with override_settings(EASYMEMORY_SEARCH_DEPTH=30, EASYMEMORY_SEARCH_DEPTH_EXACT=60, **sizes):
        assert [list_depth(rows) for rows in (0, 5_000, 5_001, 100_000)] == [60, 60, 30, 30]


def test_a_small_tenants_lists_get_the_exact_depth(writer: Persona) -> None:
    remember(writer.principal, "the holiday budget is 2,000 euros")
    limits: list[int] = []

    def recording(principal: Principal, base: Any, query: str, limit: int, filters: Any) -> list[tuple[Any, float]]:
        limits.append(limit)
        return []

    register_candidate_list("test-depth", recording)
    try:
        with override_settings(EASYMEMORY_SEARCH_DEPTH=30, EASYMEMORY_SEARCH_DEPTH_EXACT=45):
            search(writer.principal, "holiday budget", k=10)
            search(writer.principal, "holiday budget", k=20)
    finally:
        search_module.CANDIDATE_LISTS.pop("test-depth")
    assert limits == [45, 60]  # at least 3k

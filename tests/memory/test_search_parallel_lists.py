"""The embedding lists run beside the full-text list, on a pooled connection of their own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections, transaction
from django.test import override_settings

from accounts.principal import Principal
from memory import search as search_module
from memory.search import register_candidate_list, search
from memory.services import MemoryInput, memory_create_many
from tests.conftest import Persona, embed_pending

pytestmark = pytest.mark.django_db(transaction=True)  # the second connection sees committed rows only


@pytest.fixture
def threads_seen() -> Iterator[list[str]]:
    """A list that needs the query's embedding and records the thread that ran it."""
    seen: list[str] = []

    def recording(principal: Principal, base: Any, query: str, limit: int, filters: Any) -> list[tuple[Any, float]]:
        seen.append(threading.current_thread().name)
        return [(mid, 1.0) for mid in base.values_list("id", flat=True)[:1]]

    register_candidate_list("test-recording", recording, needs_query_vector=True)
    try:
        yield seen
    finally:
        search_module.CANDIDATE_LISTS.pop("test-recording")
        search_module.QUERY_VECTOR_LISTS.discard("test-recording")


def stored(writer: Persona) -> None:
    texts = ["Alice is allergic to peanuts", "Bob plays the cello on Sundays", "Carla grows tomatoes"]
    memory_create_many(principal=writer.principal, items=[MemoryInput(content=text) for text in texts])
    embed_pending()


def ranking(hits: list[search_module.Hit]) -> list[tuple[Any, float, dict[str, Any]]]:
    return [(hit.memory.pk, hit.score, hit.evidence) for hit in hits]


def test_the_embedding_lists_run_on_the_runner_and_find_what_they_find_in_turn(
    writer: Persona, threads_seen: list[str]
) -> None:
    stored(writer)
    beside = search(writer.principal, "who plays the cello?", k=3)
    with override_settings(EASYMEMORY_SEARCH_PARALLEL_LISTS=False):
        in_turn = search(writer.principal, "who plays the cello?", k=3)
    assert threads_seen[0].startswith("search-lists")
    assert threads_seen[1] == threading.current_thread().name
    assert ranking(beside) == ranking(in_turn)
    assert beside[0].memory.content.startswith("Bob") and "vector" in beside[0].evidence


def test_inside_a_transaction_every_list_runs_on_its_connection(writer: Persona, threads_seen: list[str]) -> None:
    with transaction.atomic():
        # Not committed: a second connection would not see it.
        memory_create_many(principal=writer.principal, items=[MemoryInput(content="Dora collects stamps")])
        hits = search(writer.principal, "stamps", k=3)
    assert threads_seen == [threading.current_thread().name]
    assert [hit.memory.content for hit in hits] == ["Dora collects stamps"]


def test_the_runner_hands_its_connection_back_after_each_search(writer: Persona, threads_seen: list[str]) -> None:
    stored(writer)
    for _ in range(3):
        search(writer.principal, "tomatoes", k=2)
    runner_connections = [
        search_module._list_runner.submit(lambda: connections["default"].connection).result() for _ in range(4)
    ]
    assert runner_connections == [None] * 4


def test_a_failing_list_on_the_runner_fails_the_search_and_still_hands_back(writer: Persona) -> None:
    stored(writer)

    def failing(principal: Principal, base: Any, query: str, limit: int, filters: Any) -> list[tuple[Any, float]]:
        list(base.values_list("id", flat=True)[:1])  # opens the runner's connection first
        raise RuntimeError("list failed")

    register_candidate_list("test-failing", failing, needs_query_vector=True)
    try:
        with pytest.raises(RuntimeError, match="list failed"):
            search(writer.principal, "tomatoes", k=2)
    finally:
        search_module.CANDIDATE_LISTS.pop("test-failing")
        search_module.QUERY_VECTOR_LISTS.discard("test-failing")
    assert search_module._list_runner.submit(lambda: connections["default"].connection).result() is None
    assert [hit.memory.content for hit in search(writer.principal, "tomatoes", k=1)] == ["Carla grows tomatoes"]

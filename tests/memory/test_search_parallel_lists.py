"""The embedding lists run beside the full-text list, on a runner thread with a connection of its own."""

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


def test_full_text_runs_here_and_the_other_lists_on_the_runner(writer: Persona, threads_seen: list[str]) -> None:
    seen: dict[str, str] = {}

    def recorder(name: str) -> Any:
        def recording(principal: Principal, base: Any, query: str, limit: int, filters: Any) -> list[tuple[Any, float]]:
            seen[name] = threading.current_thread().name
            return []

        return recording

    stored(writer)
    register_candidate_list("test-no-vector", recorder("test-no-vector"))
    original = search_module.CANDIDATE_LISTS["fulltext"]
    search_module.CANDIDATE_LISTS["fulltext"] = recorder("fulltext")
    try:
        search(writer.principal, "who plays the cello?", k=3)
    finally:
        search_module.CANDIDATE_LISTS["fulltext"] = original
        search_module.CANDIDATE_LISTS.pop("test-no-vector")
    assert seen["fulltext"] == threading.current_thread().name
    assert seen["test-no-vector"].startswith("search-lists")  # runs while the query is embedded
    assert threads_seen[0] == seen["test-no-vector"]


def test_inside_a_transaction_every_list_runs_on_its_connection(writer: Persona, threads_seen: list[str]) -> None:
    with transaction.atomic():
        # Not committed: a second connection would not see it.
        memory_create_many(principal=writer.principal, items=[MemoryInput(content="Dora collects stamps")])
        hits = search(writer.principal, "stamps", k=3)
    assert threads_seen == [threading.current_thread().name]
    assert [hit.memory.content for hit in hits] == ["Dora collects stamps"]


def runner_connection() -> tuple[Any, Any]:
    """The pool and the live connection of a runner thread's default connection."""
    wrapper = connections["default"]
    return wrapper.pool, wrapper.connection


def test_the_runner_keeps_a_connection_of_its_own_outside_the_pool(writer: Persona, threads_seen: list[str]) -> None:
    stored(writer)
    for _ in range(4):  # both runner threads get work
        search(writer.principal, "tomatoes", k=2)
    seen = {search_module._list_runner.submit(runner_connection).result() for _ in range(8)}
    assert {pool for pool, _ in seen} == {None}  # never waits on the pool the request threads hold
    assert all(live is not None for _, live in seen)  # kept open between searches
    assert connections["default"].pool is not None  # the request thread's connection is still pooled


def test_a_search_that_finds_every_runner_busy_runs_its_lists_itself(writer: Persona, threads_seen: list[str]) -> None:
    stored(writer)
    held = [search_module._runner_slots.acquire(blocking=False) for _ in range(search_module.RUNNER_THREADS)]
    try:
        assert all(held)
        hits = search(writer.principal, "who plays the cello?", k=1)
    finally:
        for _ in held:
            search_module._runner_slots.release()
    assert threads_seen == [threading.current_thread().name]
    assert hits[0].memory.content.startswith("Bob")


def test_a_failing_list_on_the_runner_fails_the_search_and_frees_the_runner(writer: Persona) -> None:
    stored(writer)

    def failing(principal: Principal, base: Any, query: str, limit: int, filters: Any) -> list[tuple[Any, float]]:
        raise RuntimeError("list failed")

    register_candidate_list("test-failing", failing, needs_query_vector=True)
    try:
        with pytest.raises(RuntimeError, match="list failed"):
            search(writer.principal, "tomatoes", k=2)
    finally:
        search_module.CANDIDATE_LISTS.pop("test-failing")
        search_module.QUERY_VECTOR_LISTS.discard("test-failing")
    free = [search_module._runner_slots.acquire(blocking=False) for _ in range(search_module.RUNNER_THREADS)]
    for taken in free:
        if taken:
            search_module._runner_slots.release()
    assert all(free)
    assert [hit.memory.content for hit in search(writer.principal, "tomatoes", k=1)] == ["Carla grows tomatoes"]


def test_with_more_searches_in_flight_than_half_the_cores_each_runs_its_lists_itself(
    writer: Persona, threads_seen: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stored(writer)
    monkeypatch.setattr(search_module, "RUNNER_MAX_IN_FLIGHT", 1)
    search_module._in_flight.enter()  # another search, running its lists meanwhile
    try:
        busy = search(writer.principal, "who plays the cello?", k=3)
    finally:
        search_module._in_flight.leave()
    alone = search(writer.principal, "who plays the cello?", k=3)
    assert threads_seen[0] == threading.current_thread().name
    assert threads_seen[1].startswith("search-lists")  # alone again: side by side
    assert ranking(busy) == ranking(alone)
    assert search_module._in_flight.enter() == 1  # every search left the count as it found it
    search_module._in_flight.leave()

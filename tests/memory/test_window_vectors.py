"""Window vectors: each memory embedded together with the turns before it in its session, ranked
by the search list "window"; kept in step when a turn is edited or deleted, rebuilt by
reconcile, and left out when turned off."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from memory import embeddings
from memory.models import Memory, MemoryEmbedding
from memory.search import search
from memory.services import (
    MemoryInput,
    memory_create_many,
    memory_delete,
    memory_embed_batch,
    memory_embed_fetch,
    memory_reconcile,
    memory_update,
)
from tests.conftest import Persona

pytestmark = pytest.mark.django_db

WINDOW_ONLY = {"vector": 0.0, "fulltext": 0.0, "graph": 0.0, "window": 1.0}
VECTOR_ONLY = {"vector": 1.0, "fulltext": 0.0, "graph": 0.0, "window": 0.0}



@pytest.fixture(autouse=True)
def windows_on(settings: Any) -> None:
    settings.EASYMEMORY_SEARCH_WINDOW_TURNS = 2  # off by default


CONVERSATION = [
    "Melanie: What kind of jobs are you thinking of, now that school is done?",
    "Caroline: Counseling, for sure. I'd love to support people like me.",
    "Melanie: That's great. By the way, the kids loved the pottery class.",
    "Caroline: Pottery is such a nice way to unwind.",
]


def converse(persona: Persona, turns: list[str], session: str = "s1") -> list[str]:
    items = [MemoryInput(content=text, session_id=session) for text in turns]
    results = memory_create_many(principal=persona.principal, items=items)
    ids = [str(result.memory.id) for result in results if result.memory is not None]
    memory_embed_batch(memory_ids=ids)
    return ids


def window_of(memory_id: str) -> np.ndarray | None:
    value = MemoryEmbedding.objects.get(memory_id=memory_id, model=embeddings.model_name()).window_embedding
    return None if value is None else np.asarray(value, dtype=np.float32)


def embedded(text: str) -> np.ndarray:
    return np.asarray(embeddings.embed_texts([text])[0], dtype=np.float32)


def nearest(vector: np.ndarray, texts: list[str]) -> str:
    """Which of `texts` the vector was made from (int8 vectors vary slightly with the batch)."""
    return max(texts, key=lambda text: float(vector @ embedded(text)))


def test_a_turn_is_embedded_with_the_turns_before_it_in_its_session(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_SEARCH_WINDOW_TURNS = 2
    ids = converse(writer, CONVERSATION)
    [lone] = converse(writer, ["A note of its own, in no session"], session="")
    assert window_of(ids[0]) is None  # nothing before the first turn: its own vector serves
    assert window_of(lone) is None
    second, fourth = window_of(ids[1]), window_of(ids[3])
    assert second is not None and fourth is not None
    joined = ["\n".join(CONVERSATION[start:4]) for start in range(4)]
    assert nearest(second, ["\n".join(CONVERSATION[:2]), CONVERSATION[1]]) == "\n".join(CONVERSATION[:2])
    assert nearest(fourth, joined) == joined[1]  # two turns before it, not three


def test_fetching_a_batch_with_windows_is_still_one_query(writer: Persona) -> None:
    items = [MemoryInput(content=f"turn {i} about the garden", session_id="s") for i in range(20)]
    ids = [str(r.memory.id) for r in memory_create_many(principal=writer.principal, items=items) if r.memory]
    with CaptureQueriesContext(connection) as fetch:
        fetched = memory_embed_fetch(memory_ids=ids)
    assert len(fetch.captured_queries) == 1
    assert [bool(item.window) for item in fetched.todo].count(True) == 19


def test_the_window_list_finds_an_answer_through_the_question_before_it(writer: Persona) -> None:
    ids = converse(writer, CONVERSATION)
    converse(writer, [f"Caroline: I watched film number {i} with friends last night." for i in range(12)], "s2")
    query = "What jobs is Caroline thinking of?"
    by_window = {str(hit.memory.id): hit for hit in search(writer.principal, query, k=5, weights=WINDOW_ONLY)}
    by_vector = {str(hit.memory.id): hit for hit in search(writer.principal, query, k=16, weights=VECTOR_ONLY)}
    answer = ids[1]
    assert answer in by_window
    assert by_window[answer].evidence["window"]["score"] > by_vector[answer].evidence["vector"]["score"]


def test_the_hnsw_plan_ranks_like_the_exact_scan(writer: Persona, settings: Any) -> None:
    converse(writer, CONVERSATION)
    query = "What does Caroline do to unwind?"
    exact = [(h.memory.id, h.evidence["window"]["score"]) for h in search(writer.principal, query, weights=WINDOW_ONLY)]
    settings.EASYMEMORY_EXACT_SCAN_MAX_ROWS = 0
    approximate = [
        (h.memory.id, h.evidence["window"]["score"]) for h in search(writer.principal, query, weights=WINDOW_ONLY)
    ]
    assert [mid for mid, _ in approximate] == [mid for mid, _ in exact]
    assert np.allclose([s for _, s in approximate], [s for _, s in exact], atol=1e-5)


def test_editing_a_turn_remakes_the_windows_that_held_its_words(
    writer: Persona, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EASYMEMORY_SEARCH_WINDOW_TURNS = 1
    ids = converse(writer, CONVERSATION)
    memory = Memory.objects.get(pk=ids[0])
    with django_capture_on_commit_callbacks():
        memory_update(principal=writer.principal, memory=memory, changes={"content": "Melanie: Any plans for summer?"})
    assert window_of(ids[1]) is None  # reset at once, in the edit's transaction
    assert window_of(ids[2]) is not None  # one turn of window: the turn after next never held it
    memory_embed_batch(memory_ids=ids[:2])  # the worker's step for the queued ids
    remade = window_of(ids[1])
    assert remade is not None
    edited = "Melanie: Any plans for summer?\n" + CONVERSATION[1]
    assert nearest(remade, [edited, "\n".join(CONVERSATION[:2])]) == edited


def test_deleting_a_turn_leaves_no_window_made_with_its_words(
    writer: Persona, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EASYMEMORY_SEARCH_WINDOW_TURNS = 1
    ids = converse(writer, CONVERSATION)
    with django_capture_on_commit_callbacks():
        memory_delete(principal=writer.principal, memory=Memory.objects.get(pk=ids[1]))
    assert window_of(ids[2]) is None
    memory_embed_batch(memory_ids=[ids[2]])
    remade = window_of(ids[2])
    assert remade is not None
    without = CONVERSATION[0] + "\n" + CONVERSATION[2]
    assert nearest(remade, [without, "\n".join(CONVERSATION[1:3])]) == without


def test_reconcile_adds_the_window_vectors_of_memories_embedded_without_them(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_SEARCH_WINDOW_TURNS = 0
    ids = converse(writer, CONVERSATION)
    assert all(window_of(mid) is None for mid in ids)
    assert memory_embed_fetch(memory_ids=ids).todo == []  # turned off: nothing to do

    hits = search(writer.principal, "What jobs is Caroline thinking of?", weights={"vector": 0.0, "window": 1.0})
    assert all("window" not in hit.evidence for hit in hits)  # turned off: the list too

    settings.EASYMEMORY_SEARCH_WINDOW_TURNS = 2  # as after an upgrade
    before = {mid: window_of(mid) for mid in ids}
    assert memory_reconcile() == 3  # every turn but the first
    assert memory_embed_batch(memory_ids=ids) == 3
    assert before[ids[0]] is None and window_of(ids[0]) is None
    assert all(window_of(mid) is not None for mid in ids[1:])
    assert memory_reconcile() == 0
    assert MemoryEmbedding.objects.filter(memory_id__in=ids).count() == 4  # one row per memory and model

"""The embedding pipeline on two streams: chunks of one batch run on different threads against
one model, and each task still gets exactly its memories' vectors, its own failures only, and
never a vector for text edited while the model ran.

The pipeline's threads use their own database connections, so these tests commit (transaction=True).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from django.db import Error, connection, transaction

from memory import embeddings
from memory.embed_pipeline import EmbeddingPipeline
from memory.models import EnrichmentState, Memory, MemoryEmbedding
from memory.services import MemoryInput, memory_create_many, memory_update
from tests.conftest import Persona

pytestmark = pytest.mark.django_db(transaction=True)

TOPICS = ("the garden", "the tax return", "the bike repair", "the trip to Oslo", "the piano lessons")


def remember(persona: Persona, *texts: str) -> list[str]:
    results = memory_create_many(principal=persona.principal, items=[MemoryInput(content=t) for t in texts])
    return [str(result.memory.id) for result in results if result.memory is not None]


def stored_vectors(ids: list[str]) -> dict[str, Any]:
    rows = MemoryEmbedding.objects.filter(memory_id__in=ids, model=embeddings.model_name())
    return {str(row.memory_id): np.asarray(row.embedding, dtype=np.float32) for row in rows}


def wait_for_a_lock_wait(timeout: float = 300.0) -> int:
    """Until a statement of another connection waits for a row lock (the pipeline's store): its pid."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees one snapshot
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            row = cursor.fetchone()
            if row is not None:
                return int(row[0])
            time.sleep(0.05)
    raise TimeoutError("no store waited for the locked row")


def test_two_streams_store_every_memory_with_its_own_vector(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_EMBED_BATCH = 4  # many chunks per batch, so both streams take some
    texts = [f"note {i} about {TOPICS[i % 5]}" + " with more words in it" * (i % 7) for i in range(90)]
    ids = remember(writer, *texts)
    pipeline = EmbeddingPipeline(streams=2)
    counts: dict[int, int] = {}

    def run(number: int, memory_ids: list[str]) -> None:
        counts[number] = pipeline.embed(memory_ids)

    # Overlapping ids across tasks, as when a reconcile re-queues what a write already queued.
    parts = [ids[:40], ids[30:70], ids[60:], ids[::9]]
    threads = [threading.Thread(target=run, args=(n, part)) for n, part in enumerate(parts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert sorted(counts) == [0, 1, 2, 3]
    assert sum(counts.values()) >= 90
    assert {t.name for t in threading.enumerate()} >= {"embed-model-0", "embed-model-1"}
    assert not pipeline.busy()
    # Each memory has the vector of its own text: no chunk's vectors went to another chunk's memories.
    vectors = stored_vectors(ids)
    assert len(vectors) == 90
    expected = np.asarray(embeddings.embed_texts(texts), dtype=np.float32)
    stored = np.stack([vectors[memory_id] for memory_id in ids])
    similarity = stored @ expected.T
    assert (similarity.argmax(axis=1) == np.arange(90)).all()
    assert similarity.diagonal().min() > 0.97  # int8 activations are quantised per batch: near, not equal
    assert set(Memory.objects.filter(pk__in=ids).values_list("enrichment_state", flat=True)) == {EnrichmentState.DONE}
    assert pipeline.embed(ids) == 0  # all done: one query, no inference


def test_a_failed_chunk_fails_its_own_task_only(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_EMBED_BATCH = 2
    # Sorted by length, the two short ones form the first chunk, the long ones the others.
    short = remember(writer, "tea at four", "pay the rent")
    long = remember(writer, *(f"a much longer memory about {topic}, written down to find later" for topic in TOPICS))
    pipeline = EmbeddingPipeline(streams=2)
    outcome: dict[str, Any] = {}

    def run(label: str, memory_ids: list[str]) -> None:
        try:
            outcome[label] = pipeline.embed(memory_ids)
        except Exception as exc:  # noqa: BLE001 - what the task would retry on
            outcome[label] = exc

    threads = [threading.Thread(target=run, args=("short", short)), threading.Thread(target=run, args=("long", long))]
    with transaction.atomic():
        Memory.objects.select_for_update().filter(pk=short[0]).get()  # the short chunk's store waits here
        for thread in threads:
            thread.start()
        waiting = wait_for_a_lock_wait()
        with connection.cursor() as cursor:  # the database drops the storing connection
            cursor.execute("SELECT pg_terminate_backend(%s)", [waiting])
    for thread in threads:
        thread.join(timeout=600)
    assert isinstance(outcome["short"], Error), outcome["short"]
    assert outcome["long"] == len(long)
    assert set(stored_vectors(short + long)) == set(long)
    assert not pipeline.busy()
    assert pipeline.embed(short) == 2  # the retry
    assert set(stored_vectors(short + long)) == set(short + long)


def test_text_edited_while_the_streams_ran_is_not_stored(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_EMBED_BATCH = 2
    ids = remember(writer, "the boat leaves at nine", *(f"memory {i} about {topic}" for i, topic in enumerate(TOPICS)))
    pipeline = EmbeddingPipeline(streams=2)
    counts: list[int] = []
    with transaction.atomic():
        memory = Memory.objects.select_for_update().get(pk=ids[0])
        thread = threading.Thread(target=lambda: counts.append(pipeline.embed(ids)))
        thread.start()
        wait_for_a_lock_wait()  # the old text's vector is computed and its store waits for this row
        memory_update(principal=writer.principal, memory=memory, changes={"content": "the boat leaves at ten"})
    thread.join(timeout=600)
    assert counts
    vectors = stored_vectors(ids)
    assert set(vectors) == set(ids[1:])
    assert Memory.objects.get(pk=ids[0]).enrichment_state == EnrichmentState.PENDING
    assert pipeline.embed([ids[0]]) == 1  # the edit's own embedding, of the new text
    [new] = embeddings.embed_texts(["the boat leaves at ten"])
    assert float(stored_vectors([ids[0]])[ids[0]] @ np.asarray(new, dtype=np.float32)) > 0.99

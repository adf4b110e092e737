"""The worker's embedding path: batched reads and writes, safe to run twice (redelivery), and
never storing a vector for text that changed or a memory that went while the model ran.

The pipeline's threads use their own database connections, so these tests commit (transaction=True).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from memory import embeddings
from memory.embed_pipeline import EmbeddingPipeline
from memory.models import EnrichmentState, Memory, MemoryEmbedding
from memory.services import (
    MemoryInput,
    memory_create_many,
    memory_delete,
    memory_embed_batch,
    memory_embed_fetch,
    memory_embed_store,
    memory_update,
)
from memory.tasks import memory_embed_task, memory_enrich_task, memory_extract_task
from tests.conftest import Persona

pytestmark = pytest.mark.django_db(transaction=True)


def remember(persona: Persona, *texts: str) -> list[str]:
    results = memory_create_many(principal=persona.principal, items=[MemoryInput(content=t) for t in texts])
    return [str(result.memory.id) for result in results if result.memory is not None]


def test_a_batch_is_fetched_in_one_query_and_stored_in_one_statement(writer: Persona) -> None:
    ids = remember(writer, *(f"note number {i} about the garden" for i in range(40)))
    with CaptureQueriesContext(connection) as fetch:
        fetched = memory_embed_fetch(memory_ids=ids)
    assert len(fetch.captured_queries) == 1 and len(fetched.todo) == 40
    vectors = embeddings.embed_texts([item.content for item in fetched.todo])
    with CaptureQueriesContext(connection) as store:
        done = memory_embed_store(items=fetched.todo, vectors=vectors, model=embeddings.model_name())
    assert len(store.captured_queries) == 1
    assert sorted(mid for _, mid in done) == sorted(ids)
    assert MemoryEmbedding.objects.filter(memory_id__in=ids).count() == 40
    assert set(Memory.objects.filter(pk__in=ids).values_list("enrichment_state", flat=True)) == {EnrichmentState.DONE}


def test_running_twice_embeds_once_as_a_redelivered_task_would(writer: Persona) -> None:
    ids = remember(writer, "the boiler service is due in March", "the spare key is under the pot")
    assert memory_embed_batch(memory_ids=ids) == 2
    assert memory_embed_batch(memory_ids=ids) == 0
    assert MemoryEmbedding.objects.filter(memory_id__in=ids).count() == 2
    # A worker killed mid-task leaves its message to be delivered again, and a crashed pipeline
    # loses nothing: the tasks acknowledge only after the work.
    for task in (memory_embed_task, memory_enrich_task, memory_extract_task):
        assert task.acks_late and task.reject_on_worker_lost


def test_text_edited_while_the_model_ran_is_not_stored_with_the_old_vector(writer: Persona) -> None:
    [memory_id] = remember(writer, "lunch with Dana on Monday")
    fetched = memory_embed_fetch(memory_ids=[memory_id])
    vectors = embeddings.embed_texts([item.content for item in fetched.todo])
    memory = Memory.objects.get(pk=memory_id)
    memory_update(principal=writer.principal, memory=memory, changes={"content": "lunch with Dana moved to Friday"})
    assert memory_embed_store(items=fetched.todo, vectors=vectors, model=embeddings.model_name()) == []
    assert not MemoryEmbedding.objects.filter(memory_id=memory_id).exists()
    assert Memory.objects.get(pk=memory_id).enrichment_state == EnrichmentState.PENDING
    assert memory_embed_batch(memory_ids=[memory_id]) == 1  # the edit's own embedding


def test_a_memory_deleted_while_the_model_ran_is_skipped(writer: Persona) -> None:
    kept, gone = remember(writer, "the printer needs toner", "the router password card is in the drawer")
    fetched = memory_embed_fetch(memory_ids=[kept, gone])
    vectors = embeddings.embed_texts([item.content for item in fetched.todo])
    memory_delete(principal=writer.principal, memory=Memory.objects.get(pk=gone))
    done = memory_embed_store(items=fetched.todo, vectors=vectors, model=embeddings.model_name())
    assert [mid for _, mid in done] == [kept]
    assert list(MemoryEmbedding.objects.values_list("memory_id", flat=True)) == [Memory.objects.get(pk=kept).pk]


def test_the_pipeline_merges_concurrent_tasks_and_embeds_each_memory_once(writer: Persona) -> None:
    ids = remember(writer, *(f"memory {i}: the {('short', 'much longer text ' * 8)[i % 2]} one" for i in range(70)))
    pipeline = EmbeddingPipeline()
    counts: dict[str, int] = {}

    def run(name: str, memory_ids: list[str]) -> None:
        counts[name] = pipeline.embed(memory_ids)

    # Overlapping ids, as when a reconcile re-queues memories a write already queued.
    threads = [
        threading.Thread(target=run, args=("a", ids[:50])),
        threading.Thread(target=run, args=("b", ids[30:])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert set(counts) == {"a", "b"}
    assert MemoryEmbedding.objects.filter(memory_id__in=ids).count() == 70
    assert counts["a"] + counts["b"] >= 70
    assert not pipeline.busy()
    assert pipeline.embed(ids) == 0  # all done: one query, no inference


def test_a_failed_fetch_fails_its_task_and_the_pipeline_goes_on(writer: Persona) -> None:
    pipeline = EmbeddingPipeline()
    with pytest.raises(Exception, match="UUID"):
        pipeline.embed(["not-a-memory-id"])
    [memory_id] = remember(writer, "the next one still embeds")
    assert pipeline.embed([memory_id]) == 1


def test_extraction_steps_aside_while_embeddings_run(writer: Persona, monkeypatch: Any) -> None:
    from graph.models import GraphExtraction
    from memory import embed_pipeline, tasks

    ids = remember(writer, "Alice moved to Berlin in 2021", "Bob works at Initech")
    embed_pipeline.pipeline.embed(ids)
    monkeypatch.setattr(tasks, "EXTRACT_QUIET_SECONDS", 600.0)  # "a moment ago" covers this whole test
    memory_extract_task.run(ids)  # sent back to the queue: nothing extracted yet
    assert not GraphExtraction.objects.filter(memory_id__in=ids).exists()
    memory_extract_task.run(ids, deferrals=tasks.EXTRACT_MAX_DEFERRALS)  # waited long enough: runs
    assert GraphExtraction.objects.filter(memory_id__in=ids).count() == 2

"""The bulk write path: a batch of memories, their history and full-text vectors in a few statements."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.principal import Principal
from memory.models import Memory, MemoryHistory, TermStat, TermStatsSnapshot
from memory.search import search
from memory.services import (
    HistoryInput,
    MemoryInput,
    RestoredMemory,
    memory_create_many,
    memory_restore_many,
    search_vector_for,
)
from memory.term_stats import term_stats_refresh
from tests.conftest import Persona

pytestmark = pytest.mark.django_db


def store(principal: Principal, *contents: str, **fields: Any) -> list[Any]:
    return memory_create_many(principal=principal, items=[MemoryInput(content=c, **fields) for c in contents])


def test_a_batch_stores_rows_history_and_the_same_full_text_vector_as_a_single_write(writer: Persona) -> None:
    contents = ["Ada drinks green tea every morning", "東京で会議があります", "Deploy the release on Friday"]
    results = store(writer.principal, *contents, tags=["b", "a", "b"], metadata={"source": "bench"})
    assert [r.created for r in results] == [True, True, True]
    assert [r.memory.content for r in results] == contents
    for result in results:
        row = Memory.objects.annotate(expected=search_vector_for(result.memory.content)).get(pk=result.memory.pk)
        assert row.search_vector and row.search_vector == row.expected
        assert result.memory.search_vector == row.search_vector
        assert row.tags == ["b", "a"] and row.metadata == {"source": "bench"}
        assert row.enrichment_state == "pending" and row.version == 1
        (entry,) = MemoryHistory.objects.filter(memory_id=row.pk)
        assert (entry.event, entry.version, entry.new_content, entry.new_metadata) == (
            "ADD",
            1,
            row.content,
            row.metadata,
        )
        assert entry.actor == writer.principal.actor and entry.tenant_id == writer.tenant.pk
    created = [Memory.objects.get(pk=r.memory.pk).created_at for r in results]
    assert created == sorted(created) and len(set(created)) == 3  # stored in the order given


def test_the_returned_memory_is_the_stored_row(writer: Persona) -> None:
    (result,) = store(writer.principal, "Ada likes tea", importance=0.9, occurred_at=timezone.now() - timedelta(days=2))
    stored = Memory.objects.get(pk=result.memory.pk)
    for name in ("content", "kind", "metadata", "tags", "importance", "occurred_at", "created_at", "updated_at"):
        assert getattr(result.memory, name) == getattr(stored, name), name
    result.memory.importance = 0.1
    result.memory.save(update_fields=["importance"])  # an instance of a stored row, not a new one
    assert Memory.objects.get(pk=stored.pk).importance == 0.1


def test_a_duplicate_within_the_batch_gets_the_first_ones_id(writer: Persona) -> None:
    results = store(
        writer.principal, "Bob is allergic to nuts", "other", "Bob  is allergic to nuts ", "Bob is allergic to nuts"
    )
    ids = [r.memory.id for r in results]
    assert [r.created for r in results] == [True, True, False, False]
    assert ids[0] == ids[2] == ids[3] != ids[1]
    assert Memory.objects.count() == 2
    assert MemoryHistory.objects.count() == 2


def test_a_duplicate_of_a_stored_memory_returns_the_existing_id(writer: Persona) -> None:
    (first,) = store(writer.principal, "Carol flies on Tuesday", user_ref="carol")
    results = store(writer.principal, "new one", "Carol flies on Tuesday", user_ref="carol")
    assert [r.created for r in results] == [True, False]
    assert results[1].memory.id == first.memory.id
    assert results[1].memory.content == "Carol flies on Tuesday"
    assert MemoryHistory.objects.filter(memory_id=first.memory.id).count() == 1


def test_the_same_content_in_another_scope_is_another_memory(writer: Persona, outsider: Persona) -> None:
    scopes = [
        {"user_ref": "u1"},
        {"user_ref": "u2"},
        {"user_ref": "u1", "agent_id": "bot"},
        {"user_ref": "u1", "session_id": "s1"},
        {"user_ref": "u1"},
    ]
    items = [MemoryInput(content="Meeting moved to noon", **scope) for scope in scopes]
    results = memory_create_many(principal=writer.principal, items=items)
    assert [r.created for r in results] == [True, True, True, True, False]
    assert len({r.memory.id for r in results}) == 4
    assert results[4].memory.id == results[0].memory.id
    (theirs,) = memory_create_many(principal=outsider.principal, items=items[:1])
    assert theirs.created and theirs.memory.id != results[0].memory.id
    assert theirs.memory.tenant_id == outsider.tenant.pk


def test_a_batch_is_a_handful_of_statements_whatever_its_size(writer: Persona) -> None:
    def statements(count: int, offset: int) -> int:
        items = [
            MemoryInput(content=f"note {offset + i} about the roadmap", user_ref=f"u{i % 3}") for i in range(count)
        ]
        with CaptureQueriesContext(connection) as queries:
            results = memory_create_many(principal=writer.principal, items=items)
        assert all(r.created for r in results)
        return len(queries)

    small, large = statements(5, 0), statements(500, 1000)
    assert small == large <= 8
    items = [MemoryInput(content=f"note {1000 + i} about the roadmap", user_ref=f"u{i % 3}") for i in range(500)]
    with CaptureQueriesContext(connection) as queries:
        assert not any(r.created for r in memory_create_many(principal=writer.principal, items=items))
    assert len(queries) <= 6  # lookup, the stored rows, audit (no insert)


def test_policy_and_redaction_apply_to_each_item_of_a_batch(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_MEMORY_POLICY = "smart"
    secret = "sk-" + "a1B2" * 10
    items = [
        MemoryInput(content="ok thanks", kind="message", session_id="s"),
        MemoryInput(content="remember: the door code changes monthly", kind="message", session_id="s"),
        MemoryInput(content=f"my key is {secret}", kind="message", session_id="s"),
        MemoryInput(content="a plain note"),
    ]
    results = memory_create_many(principal=writer.principal, items=items)
    assert [r.created for r in results] == [True, True, True, True]
    ephemeral, remembered, redacted, note = (r.memory for r in results)
    assert ephemeral.metadata == {"ephemeral": True}
    assert (remembered.kind, remembered.content) == ("note", "the door code changes monthly")
    assert secret not in redacted.content and redacted.metadata.get("redacted_secrets")
    stored = Memory.objects.get(pk=redacted.pk)
    assert secret not in stored.content and stored.metadata == redacted.metadata
    assert secret not in MemoryHistory.objects.get(memory_id=redacted.pk).new_content
    settings.EASYMEMORY_MEMORY_POLICY = "manual"
    more = [MemoryInput(content="just chatting", kind="message"), MemoryInput(content="remember: tea", kind="message")]
    declined, kept = memory_create_many(principal=writer.principal, items=more)
    assert declined.memory is None and not declined.created and "manual" in declined.skipped
    assert kept.created and kept.memory.content == "tea"


def test_a_list_post_answers_in_order_with_created_duplicate_and_skipped(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_MEMORY_POLICY = "manual"
    client = writer.client()
    first = client.post(
        "/v1/memories", data=json.dumps({"content": "Dana likes jazz"}), content_type="application/json"
    )
    payload = [{"content": "Eve likes rock"}, {"content": "Dana likes jazz"}, {"content": "hi", "kind": "message"}]
    response = client.post("/v1/memories", data=json.dumps(payload), content_type="application/json")
    assert response.status_code == 201
    body = response.json()
    assert [item["created"] for item in body] == [True, False, False]
    assert body[1]["id"] == first.json()["id"] and body[0]["content"] == "Eve likes rock"
    assert body[2] == {"id": None, "created": False, "skipped": body[2]["skipped"]} and body[2]["skipped"]
    assert Memory.objects.count() == 2


def test_term_statistics_count_what_a_batch_stored(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_FULLTEXT_EXACT_MAX_ROWS = 10
    store(writer.principal, *[f"lighthouse keeper note {i}" for i in range(20)])
    assert term_stats_refresh() == [writer.tenant]
    snapshot = TermStatsSnapshot.objects.get(tenant=writer.tenant)
    assert snapshot.docs == 20
    assert TermStat.objects.get(tenant=writer.tenant, lexeme="lighthous").df == 20
    store(writer.principal, *[f"harbour pilot note {i}" for i in range(30)])
    assert term_stats_refresh() == [writer.tenant]  # drifted past EASYMEMORY_TERM_STATS_DRIFT
    assert TermStatsSnapshot.objects.get(tenant=writer.tenant).docs == 50
    assert TermStat.objects.get(tenant=writer.tenant, lexeme="harbour").df == 30
    assert TermStat.objects.get(tenant=writer.tenant, lexeme="note").df == 50
    hits = search(writer.principal, "harbour pilot", k=5, weights={"vector": 0.0, "graph": 0.0, "window": 0.0})
    assert hits and all("harbour" in hit.memory.content for hit in hits)


def test_a_restored_batch_keeps_ids_times_versions_and_history(writer: Persona, outsider: Persona) -> None:
    taken = store(outsider.principal, "theirs")[0].memory.id  # an id another tenant owns
    then = timezone.now() - timedelta(days=400)
    mine = uuid.uuid4()
    items = [
        RestoredMemory(
            id=mine,
            data=MemoryInput(content="restored one"),
            version=3,
            created_at=then,
            updated_at=then + timedelta(days=1),
            history=[
                HistoryInput(event="ADD", version=1, new_content="first", created_at=then),
                HistoryInput(event="UPDATE", version=3, old_content="first", new_content="restored one"),
            ],
        ),
        RestoredMemory(id=taken, data=MemoryInput(content="restored two")),
        RestoredMemory(id=mine, data=MemoryInput(content="same id again")),
        RestoredMemory(id=uuid.uuid4(), data=MemoryInput(content="restored two")),
    ]
    results = memory_restore_many(principal=writer.principal, items=items, actor="user:importer")
    assert [r.created for r in results] == [True, True, False, False]
    one, two = results[0].memory, results[1].memory
    assert one.id == mine and results[2].memory.id == mine and results[3].memory.id == two.id
    assert two.id == uuid.uuid5(uuid.NAMESPACE_URL, f"easymemory:{writer.tenant.pk}:{taken}")
    stored = Memory.objects.get(pk=mine)
    assert (stored.version, stored.created_at, stored.updated_at) == (3, then, then + timedelta(days=1))
    assert stored.search_vector == Memory.objects.annotate(v=search_vector_for("restored one")).get(pk=mine).v
    history = list(MemoryHistory.objects.filter(memory_id=mine).order_by("version"))
    assert [(h.event, h.version, h.actor) for h in history] == [
        ("ADD", 1, "user:importer"),
        ("UPDATE", 3, "user:importer"),
    ]
    assert history[0].created_at == then
    assert [h.event for h in MemoryHistory.objects.filter(memory_id=two.id)] == ["ADD"]
    again = memory_restore_many(principal=writer.principal, items=items, actor="user:importer")
    assert [r.created for r in again] == [False] * 4
    assert [r.memory.id for r in again] == [r.memory.id for r in results]
    assert Memory.objects.filter(tenant=writer.tenant).count() == 2


# --- concurrent writers -----------------------------------------------------------------------


def _waiting_on_a_lock(pids: set[int]) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        return bool(pids & {row[0] for row in cursor.fetchall()})


@pytest.mark.django_db(transaction=True)
def test_a_writer_racing_an_uncommitted_batch_gets_its_rows_not_an_error(writer: Persona) -> None:
    """B stores an overlapping batch while A's is inserted but not committed: B's INSERT waits on
    the unique index, skips A's rows once A commits, and returns them as duplicates."""
    a_items = [MemoryInput(content=f"shared fact {i}") for i in range(5)]
    b_items = [MemoryInput(content=f"shared fact {i}") for i in range(8, 2, -1)]  # 8..3, reversed
    a_inserted, b_started = threading.Event(), threading.Event()
    b_pid: set[int] = set()
    out: dict[str, Any] = {}

    def writer_a() -> None:
        try:
            with transaction.atomic():
                out["a"] = memory_create_many(principal=writer.principal, items=a_items)
                a_inserted.set()
                assert b_started.wait(10)
                deadline = time.monotonic() + 10
                while not _waiting_on_a_lock(b_pid) and time.monotonic() < deadline:
                    time.sleep(0.02)
                out["b_waited"] = _waiting_on_a_lock(b_pid)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            out["a_error"] = exc
        finally:
            connection.close()

    def writer_b() -> None:
        try:
            assert a_inserted.wait(10)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                b_pid.add(cursor.fetchone()[0])
            b_started.set()
            out["b"] = memory_create_many(principal=writer.principal, items=b_items)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            out["b_error"] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=writer_a), threading.Thread(target=writer_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert "a_error" not in out and "b_error" not in out, out
    assert out["b_waited"]  # the race really happened inside the INSERT
    a_ids = {item.content: r.memory.id for item, r in zip(a_items, out["a"], strict=True)}
    b_results = dict(zip([item.content for item in b_items], out["b"], strict=True))
    for content, result in b_results.items():
        if content in a_ids:
            assert not result.created and result.memory.id == a_ids[content]
        else:
            assert result.created
    assert Memory.objects.count() == 9
    assert MemoryHistory.objects.count() == 9


@pytest.mark.django_db(transaction=True)
def test_two_writers_storing_overlapping_batches_in_opposite_orders_never_fail(writer: Persona) -> None:
    errors: list[BaseException] = []
    results: dict[str, list[Any]] = {"up": [], "down": []}
    start = threading.Barrier(2)

    def run(direction: str) -> None:
        try:
            start.wait(10)
            for round_ in range(8):
                numbers = range(round_ * 20, round_ * 20 + 60)
                order = numbers if direction == "up" else reversed(numbers)
                items = [MemoryInput(content=f"fact {n}", user_ref=f"u{n % 2}") for n in order]
                results[direction].extend(memory_create_many(principal=writer.principal, items=items))
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(d,)) for d in ("up", "down")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    expected = 7 * 20 + 60
    assert Memory.objects.count() == expected == MemoryHistory.objects.count()
    ids: dict[str, set[Any]] = {}
    for result in results["up"] + results["down"]:
        ids.setdefault(result.memory.content, set()).add(result.memory.id)
    assert len(ids) == expected and all(len(found) == 1 for found in ids.values())
    assert sum(r.created for r in results["up"] + results["down"]) == expected

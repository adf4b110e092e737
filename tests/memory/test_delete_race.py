"""A memory deleted while the worker is writing what it derived from it (its graph extraction)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, transaction

from graph.models import GraphExtraction
from memory.models import Memory
from memory.services import MemoryInput, memory_create_many, memory_delete, memory_forget_user
from tests.conftest import Persona

pytestmark = pytest.mark.django_db(transaction=True)


def _extraction_committing_while(memory: Memory, act: Any) -> list[BaseException]:
    """Hold the memory's row as the extraction step does, let `act` start meanwhile, then write
    the extraction record and commit. Returns what `act` raised."""
    locked, release = threading.Event(), threading.Event()
    raised: list[BaseException] = []

    def worker() -> None:
        try:
            with transaction.atomic():
                held = Memory.objects.select_for_update().get(pk=memory.pk)  # unscoped: the worker's own lock
                locked.set()
                release.wait(10)
                GraphExtraction.objects.create(
                    tenant_id=held.tenant_id, memory=held, content_hash=held.content_hash, provider="offline"
                )
        finally:
            connection.close()

    def door() -> None:
        try:
            act()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            raised.append(exc)
        finally:
            connection.close()

    holder = threading.Thread(target=worker)
    holder.start()
    assert locked.wait(10)
    deleting = threading.Thread(target=door)
    deleting.start()
    deleting.join(0.5)  # the delete is now waiting for the worker's row lock
    release.set()
    holder.join(10)
    deleting.join(10)
    return raised


def test_a_memory_deleted_while_its_extraction_commits_is_deleted_with_it(writer: Persona) -> None:
    (result,) = memory_create_many(principal=writer.principal, items=[MemoryInput(content="Ada works at Acme")])
    memory = result.memory
    raised = _extraction_committing_while(memory, lambda: memory_delete(principal=writer.principal, memory=memory))
    assert raised == []
    assert not Memory.objects.filter(pk=memory.pk).exists()
    assert not GraphExtraction.objects.filter(memory_id=memory.pk).exists()


def test_forgetting_a_user_while_an_extraction_commits_forgets_everything(writer: Persona) -> None:
    items = [MemoryInput(content=f"Ada note {i}", user_ref="ada") for i in range(3)]
    memories = [r.memory for r in memory_create_many(principal=writer.principal, items=items)]
    raised = _extraction_committing_while(
        memories[1], lambda: memory_forget_user(principal=writer.principal, user_ref="ada")
    )
    assert raised == []
    assert not Memory.objects.filter(user_ref="ada").exists()
    assert not GraphExtraction.objects.filter(memory_id__in=[m.pk for m in memories]).exists()

"""memory's score-adjustment registry: what another app registers lowers a hit, never lifts it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from accounts.principal import Principal
from memory import adjustments
from memory.models import Memory
from memory.search import search
from memory.selectors import MemoryFilters
from memory.services import MemoryInput, memory_create_many
from tests.conftest import Persona, embed_pending

pytestmark = pytest.mark.django_db


@pytest.fixture
def registered() -> Iterator[dict[str, float]]:
    """An adjustment whose parts the test sets by memory content."""
    parts: dict[str, float] = {}

    def by_content(principal: Principal, query: str, ids: Sequence[Any], filters: MemoryFilters) -> dict[Any, float]:
        rows = Memory.objects.filter(tenant=principal.tenant, pk__in=ids)
        return {row.pk: parts[row.content] for row in rows if row.content in parts}

    adjustments.register_score_adjustment("test", by_content)
    try:
        yield parts
    finally:
        adjustments._adjustments.pop("test", None)


def test_a_registered_penalty_lowers_a_hit_and_shows_in_its_evidence(
    writer: Persona, registered: dict[str, float]
) -> None:
    texts = ["the blue kite flies high", "a blue kite on the beach"]
    memory_create_many(principal=writer.principal, items=[MemoryInput(content=t) for t in texts])
    embed_pending()
    before = [hit.memory.content for hit in search(writer.principal, "blue kite", k=2)]
    registered[before[0]] = -0.5
    hits = search(writer.principal, "blue kite", k=2)
    assert [hit.memory.content for hit in hits] == [before[1], before[0]]  # lower, still there
    assert hits[1].evidence["adjustment"]["test"] == -0.5


def test_parts_are_clamped_to_penalties(writer: Persona, registered: dict[str, float]) -> None:
    memories = memory_create_many(
        principal=writer.principal, items=[MemoryInput(content="up"), MemoryInput(content="down")]
    )
    registered.update({"up": 0.8, "down": -5.0})
    parts = adjustments.score_adjustments(
        writer.principal, "q", [result.memory.pk for result in memories], MemoryFilters()
    )
    assert parts == {memories[1].memory.pk: {"test": adjustments.LOWEST}}

"""A memory whose facts were superseded ranks below the newer one for present-tense questions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import override_settings

from graph.ranking import asks_about_the_present
from memory.search import search
from memory.selectors import MemoryFilters
from tests.conftest import Persona, embed_pending
from tests.graph.helpers import remember

pytestmark = pytest.mark.django_db

OLD = "Marco Rossi works at Acme Robotics."
NEW = "Marco Rossi moved to Berlin in 2024 and joined Siemens."


@pytest.fixture
def marco(writer: Persona) -> Persona:
    remember(writer, OLD, occurred_at=datetime(2019, 1, 1, tzinfo=UTC))
    remember(writer, NEW, occurred_at=datetime(2024, 3, 1, tzinfo=UTC))
    remember(writer, "Anna Bianchi likes hiking in the Alps.")
    embed_pending()
    return writer


def ranked(writer: Persona, query: str, **filters: object) -> list[str]:
    return [hit.memory.content for hit in search(writer.principal, query, k=10, filters=MemoryFilters(**filters))]


def test_the_present_tense_question_gets_the_current_employer_first(marco: Persona) -> None:
    with override_settings(EASYMEMORY_SEARCH_SUPERSEDED_WEIGHT=0):
        assert ranked(marco, "where does Marco work?")[:2] == [OLD, NEW]  # words alone favour the old fact
    hits = search(marco.principal, "where does Marco work?", k=10)
    assert [hit.memory.content for hit in hits][:2] == [NEW, OLD]  # lower, never hidden
    old = next(hit for hit in hits if hit.memory.content == OLD)
    assert old.evidence["adjustment"]["superseded"] == -0.3
    new = next(hit for hit in hits if hit.memory.content == NEW)
    assert "superseded" not in new.evidence.get("adjustment", {})


def test_questions_about_the_past_are_left_alone(marco: Persona) -> None:
    assert ranked(marco, "where did Marco work before?")[0] == OLD
    assert ranked(marco, "where did Marco work in 2019?")[0] == OLD
    assert ranked(marco, "where does Marco work?", as_of=datetime(2020, 1, 1, tzinfo=UTC))[0] == OLD


def test_it_reads_the_tense_of_a_question() -> None:
    present = ["where does Marco work?", "Who is Marco's employer", "What city does Anna live in?"]
    past = ["where did Marco work before?", "Where was Marco living?", "Marco's previous employer", "used to work"]
    assert all(asks_about_the_present(q, MemoryFilters()) for q in present)
    assert not any(asks_about_the_present(q, MemoryFilters()) for q in past)
    assert not asks_about_the_present("where does Marco work last year", MemoryFilters())

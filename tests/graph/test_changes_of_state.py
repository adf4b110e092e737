"""Knowledge updates: a new employer replaces the old one, leaving ends a fact without a successor."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from graph.models import Entity, Relation
from graph.providers import ProviderConfig, make_extractor
from graph.selectors import entity_detail, relations_valid_at
from graph.services import graph_extract_memories
from memory.services import MemoryInput, memory_create, memory_delete
from tests.conftest import Persona
from tests.graph.fakes import FakeLLMServer, Scripted, openai_reply
from tests.graph.helpers import remember

pytestmark = pytest.mark.django_db

Y2019 = datetime(2019, 1, 1, tzinfo=UTC)
Y2020 = datetime(2020, 6, 1, tzinfo=UTC)
Y2024 = datetime(2024, 3, 1, tzinfo=UTC)


def current(writer: Persona, source: str, predicate: str, as_of: datetime | None = None) -> list[str]:
    rows = Relation.objects.filter(tenant=writer.tenant, source__key=source, predicate=predicate)
    return sorted(relations_valid_at(rows, as_of).values_list("target__name", flat=True))


def test_joining_after_and_replaces_the_previous_employer(writer: Persona) -> None:
    remember(writer, "Marco Rossi works at Acme Robotics.", occurred_at=Y2019)
    remember(writer, "Marco Rossi moved to Berlin in 2024 and joined Siemens.", occurred_at=Y2024)
    assert current(writer, "marco rossi", "works_at") == ["Siemens"]
    assert current(writer, "marco rossi", "lives_in") == ["Berlin"]
    assert current(writer, "marco rossi", "works_at", as_of=Y2020) == ["Acme Robotics"]
    acme = Relation.objects.get(source__key="marco rossi", target__key="acme robotics")
    assert acme.invalid_at == Y2024
    assert acme.invalidated_by.target.name == "Siemens"
    detail = entity_detail(writer.principal, Entity.objects.get(tenant=writer.tenant, key="marco rossi"))
    assert {r["target"]["name"] for r in detail["relations"]["current"]} == {"Siemens", "Berlin"}
    assert [r["target"]["name"] for r in detail["relations"]["past"]] == ["Acme Robotics"]


def test_leaving_ends_the_employment_and_deleting_it_reopens(writer: Persona) -> None:
    remember(writer, "Marco Rossi works at Acme Robotics.", occurred_at=Y2019)
    left = remember(writer, "Marco Rossi left Acme Robotics.", occurred_at=Y2024)
    assert current(writer, "marco rossi", "works_at") == []
    assert current(writer, "marco rossi", "left") == ["Acme Robotics"]
    acme = Relation.objects.get(source__key="marco rossi", predicate="works_at")
    assert (acme.invalid_at, acme.invalidated_by.predicate) == (Y2024, "left")
    memory_delete(principal=writer.principal, memory=left)
    assert current(writer, "marco rossi", "works_at") == ["Acme Robotics"]
    assert not Relation.objects.filter(predicate="left").exists()


def test_an_ending_with_nothing_current_records_no_fact_of_that_kind(writer: Persona) -> None:
    remember(writer, "Marco Rossi lives in Milan.", occurred_at=Y2019)
    remember(writer, "Marco Rossi left Berlin.", occurred_at=Y2024)  # "left" a city he was not known to live in
    assert current(writer, "marco rossi", "lives_in") == ["Milan"]
    assert not Relation.objects.filter(predicate="works_at").exists()
    remember(writer, "Marco Rossi retired from Siemens.", occurred_at=Y2024)
    assert not Relation.objects.filter(predicate="works_at").exists()


def test_a_divorce_ends_the_marriage_whichever_way_it_was_told(writer: Persona) -> None:
    remember(writer, "Anna Bianchi is married to Marco Rossi.", occurred_at=Y2019)
    remember(writer, "Marco Rossi divorced Anna Bianchi.", occurred_at=Y2024)
    assert current(writer, "anna bianchi", "married_to") == []
    assert current(writer, "anna bianchi", "married_to", as_of=Y2020) == ["Marco Rossi"]


def test_an_llm_provider_can_end_a_fact(writer: Persona, fake_llm: FakeLLMServer) -> None:
    remember(writer, "Marco Rossi works at Acme Robotics.", occurred_at=Y2019)
    reply = {
        "entities": [{"name": "Marco Rossi", "type": "person"}, {"name": "Acme Robotics", "type": "organisation"}],
        "relations": [
            {"source": "Marco Rossi", "target": "Acme Robotics", "predicate": "retired from", "ends": ["works at"]}
        ],
    }
    fake_llm.queue(Scripted(body=openai_reply(json.dumps(reply))))
    memory = memory_create(
        principal=writer.principal,
        data=MemoryInput(content="Marco finally said goodbye to Acme Robotics: he is retired now.", occurred_at=Y2024),
    ).memory
    client = make_extractor(ProviderConfig(provider="openai", model="m", base_url=fake_llm.url))
    assert graph_extract_memories([str(memory.pk)], extractor=client).extracted == 1
    assert current(writer, "marco rossi", "works_at") == []
    assert current(writer, "marco rossi", "retired_from") == ["Acme Robotics"]

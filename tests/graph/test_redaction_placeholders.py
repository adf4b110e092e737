"""Placeholders that redaction leaves ("[REDACTED CARD]") never become entities or relation ends."""

from __future__ import annotations

import json

import pytest

from graph.models import Entity, Mention, Relation
from graph.providers import ProviderConfig, make_extractor
from graph.providers.offline import OfflineExtractor
from graph.services import graph_extract_memories
from memory.redaction import is_placeholder, mask_placeholders
from memory.services import MemoryInput, memory_create
from tests.conftest import Persona
from tests.graph.fakes import FakeLLMServer, Scripted, openai_reply
from tests.graph.helpers import remember

pytestmark = pytest.mark.django_db

REDACTED_TEXT = (
    "Marco Rossi paid with [REDACTED CARD] and sent [REDACTED PRIVATE KEY] to Anna Bianchi. "
    "Marco Rossi uses [REDACTED]. [REDACTED CARD] works at Acme Robotics."
)


def test_markers_are_recognised_and_masked() -> None:
    assert mask_placeholders("a [REDACTED CARD] b [REDACTED]") == "a ; b ;"
    for name in ("[REDACTED]", "REDACTED CARD", "[REDACTED PRIVATE KEY]", "redacted", "card [REDACTED CARD]"):
        assert is_placeholder(name), name
    for name in ("Marco Rossi", "Acme Robotics", "Redaction Team", "Card Games"):
        assert not is_placeholder(name), name


def test_the_offline_extractor_sees_no_name_or_participant_in_a_marker() -> None:
    found = OfflineExtractor().extract(REDACTED_TEXT)
    names = {entity.name for entity in found.entities}
    assert names == {"Marco Rossi", "Anna Bianchi", "Acme Robotics"}
    assert not any("REDACTED" in r.source or "REDACTED" in r.target for r in found.relations)
    # "[REDACTED CARD] works at Acme Robotics": the marker is not the subject, nor is anything next to it.
    assert [(r.source, r.predicate) for r in found.relations if r.target == "Acme Robotics"] == []


def test_a_redacted_memory_leaves_no_placeholder_in_the_graph(writer: Persona) -> None:
    memory = remember(writer, "Marco Rossi paid with 4111 1111 1111 1111 at Acme Robotics. Token: 9f8e7d6c5b")
    assert "[REDACTED CARD]" in memory.content and "[REDACTED]" in memory.content
    keys = set(Entity.objects.filter(tenant=writer.tenant).values_list("key", flat=True))
    assert keys == {"marco rossi", "acme robotics"}


def test_placeholders_from_an_llm_provider_are_dropped(writer: Persona, fake_llm: FakeLLMServer) -> None:
    reply = {
        "entities": [
            {"name": "Marco Rossi", "type": "person", "aliases": ["Marco", "[REDACTED]"]},
            {"name": "[REDACTED CARD]", "type": "payment_card"},
            {"name": "REDACTED PRIVATE KEY", "type": "credential"},
            {"name": "Acme Robotics", "type": "organisation"},
        ],
        "relations": [
            {"source": "Marco Rossi", "target": "[REDACTED CARD]", "predicate": "owns"},
            {"source": "redacted", "target": "Acme Robotics", "predicate": "works_at"},
            {"source": "Marco Rossi", "target": "Acme Robotics", "predicate": "works_at"},
        ],
    }
    fake_llm.queue(Scripted(body=openai_reply(json.dumps(reply))))
    memory = memory_create(
        principal=writer.principal,
        data=MemoryInput(content="Marco Rossi of Acme Robotics paid with 4111 1111 1111 1111."),
    ).memory
    assert "[REDACTED CARD]" in memory.content
    client = make_extractor(ProviderConfig(provider="openai", model="m", base_url=fake_llm.url))
    assert graph_extract_memories([str(memory.pk)], extractor=client).extracted == 1
    assert "[REDACTED CARD]" in fake_llm.requests[0].body["messages"][1]["content"]  # the model saw the marker
    entities = Entity.objects.filter(tenant=writer.tenant)
    assert set(entities.values_list("key", flat=True)) == {"marco rossi", "acme robotics"}
    assert entities.get(key="marco rossi").aliases == ["Marco"]
    triples = set(Relation.objects.filter(tenant=writer.tenant).values_list("source__key", "predicate", "target__key"))
    assert triples == {("marco rossi", "works_at", "acme robotics")}
    assert Mention.objects.filter(memory=memory).count() == 2

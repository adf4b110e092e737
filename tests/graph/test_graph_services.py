"""Applying extractions: idempotency, resolution, contradictions, as_of, deletion, failures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test import override_settings

from graph.models import Entity, EntityMerge, GraphExtraction, Mention, Relation, RelationSource
from graph.providers import ProviderConfig, make_extractor
from graph.selectors import entity_detail, graph_neighbors, graph_stats_for
from graph.services import (
    entity_merge,
    entity_resolve,
    graph_extract_memories,
    graph_reconcile,
    relation_add,
    relation_delete,
)
from memory.models import EnrichmentState
from memory.services import MemoryInput, memory_create, memory_delete, memory_forget_user, memory_update
from tests.conftest import Persona
from tests.graph.fakes import MARCO, FakeLLMServer, Scripted, openai_reply
from tests.graph.helpers import remember

pytestmark = pytest.mark.django_db

Y2019 = datetime(2019, 1, 1, tzinfo=UTC)
Y2020 = datetime(2020, 6, 1, tzinfo=UTC)
Y2023 = datetime(2023, 5, 1, tzinfo=UTC)


def entity(writer: Persona, key: str) -> Entity:
    return Entity.objects.get(tenant=writer.tenant, key=key)


def current_targets(source: Entity, predicate: str, as_of: datetime | None = None) -> list[str]:
    from graph.selectors import relations_valid_at

    rows = relations_valid_at(Relation.objects.filter(source=source, predicate=predicate), as_of)
    return sorted(rows.values_list("target__name", flat=True))


def test_it_extracts_entities_mentions_and_relations_once(writer: Persona) -> None:
    memory = remember(writer, "Marco Rossi works at Acme Robotics since 2021. #robots")
    marco, acme = entity(writer, "marco rossi"), entity(writer, "acme robotics")
    assert (marco.type, acme.type) == ("person", "organisation")
    relation = Relation.objects.get(source=marco, target=acme, predicate="works_at")
    assert relation.valid_at.year == 2021
    assert list(relation.sources.values_list("memory_id", flat=True)) == [memory.pk]
    assert set(Mention.objects.filter(memory=memory).values_list("entity__key", flat=True)) == {
        "marco rossi", "acme robotics", "robots",
    }  # fmt: skip
    assert marco.mention_count == 1
    counts = (Entity.objects.count(), Relation.objects.count(), Mention.objects.count())
    outcome = graph_extract_memories([str(memory.pk)])
    assert (outcome.extracted, outcome.skipped) == (0, 1)
    assert (Entity.objects.count(), Relation.objects.count(), Mention.objects.count()) == counts


def test_the_same_fact_from_two_memories_is_one_relation_with_two_sources(writer: Persona) -> None:
    first = remember(writer, "Marco Rossi works at Acme Robotics.")
    second = remember(writer, "As I said, MARCO ROSSI works at Acme Robotics.")
    relation = Relation.objects.get(predicate="works_at")
    assert set(relation.sources.values_list("memory_id", flat=True)) == {first.pk, second.pk}
    assert entity(writer, "marco rossi").mention_count == 2


def test_a_move_closes_the_old_address_and_keeps_it_queryable_as_of(writer: Persona) -> None:
    remember(writer, "Alice lives in Milan.", occurred_at=Y2019)
    remember(writer, "Alice moved to Berlin.", occurred_at=Y2023)
    alice = entity(writer, "alice")
    milan = Relation.objects.get(source=alice, target__key="milan")
    assert milan.invalid_at == Y2023
    assert milan.invalidated_by.target.key == "berlin"
    assert current_targets(alice, "lives_in") == ["Berlin"]
    assert current_targets(alice, "lives_in", as_of=Y2020) == ["Milan"]
    past = graph_neighbors(writer.principal, alice, depth=1, as_of=Y2020)
    assert {n["name"] for n in past["nodes"]} == {"Alice", "Milan"}
    detail = entity_detail(writer.principal, alice)
    assert [r["target"]["name"] for r in detail["relations"]["current"]] == ["Berlin"]
    assert [r["target"]["name"] for r in detail["relations"]["past"]] == ["Milan"]


def test_a_late_arriving_older_fact_does_not_replace_the_newer_one(writer: Persona) -> None:
    remember(writer, "Alice moved to Berlin.", occurred_at=Y2023)
    remember(writer, "Alice lives in Milan.", occurred_at=Y2019)
    alice = entity(writer, "alice")
    assert current_targets(alice, "lives_in") == ["Berlin"]
    assert current_targets(alice, "lives_in", as_of=Y2020) == ["Milan"]


def test_chinese_facts_contradict_too(writer: Persona) -> None:
    remember(writer, "张伟住在杭州。", occurred_at=Y2019)
    remember(writer, "张伟搬到了上海。", occurred_at=Y2023)
    zhang = entity(writer, "张伟")
    assert current_targets(zhang, "lives_in") == ["上海"]
    assert current_targets(zhang, "lives_in", as_of=Y2020) == ["杭州"]


def test_non_exclusive_facts_accumulate(writer: Persona) -> None:
    remember(writer, "Alice uses vim.")
    remember(writer, "Alice uses Docker.")
    assert current_targets(entity(writer, "alice"), "uses") == ["Docker", "vim"]


def test_resolution_by_key_alias_first_name_and_embedding(writer: Persona) -> None:
    tenant = writer.tenant
    marco = entity_resolve(tenant=tenant, name="Marco Rossi", type_="person")
    assert entity_resolve(tenant=tenant, name="  MARCO   rossi ", type_="person") == marco
    assert entity_resolve(tenant=tenant, name="Marco", type_="person") == marco  # the only Marco
    assert "Marco" in Entity.objects.get(pk=marco.pk).aliases
    acme = entity_resolve(tenant=tenant, name="Acme Robotics", type_="organisation")
    assert entity_resolve(tenant=tenant, name="Acme Robotics Inc", type_="organisation") == acme
    assert entity_resolve(tenant=tenant, name="acme robotics inc", type_="organisation") == acme  # now an alias
    q3 = entity_resolve(tenant=tenant, name="Q3 planning", type_="event")
    assert entity_resolve(tenant=tenant, name="Q4 planning", type_="event") != q3
    assert entity_resolve(tenant=tenant, name="Maria Rossi", type_="person") != marco


def test_a_first_name_shared_by_two_people_stays_apart(writer: Persona) -> None:
    rossi = entity_resolve(tenant=writer.tenant, name="Marco Rossi", type_="person")
    bianchi = entity_resolve(tenant=writer.tenant, name="Marco Bianchi", type_="person")
    marco = entity_resolve(tenant=writer.tenant, name="Marco", type_="person")
    assert marco not in {rossi, bianchi}


def test_entities_never_resolve_across_tenants(writer: Persona, outsider: Persona) -> None:
    ours = entity_resolve(tenant=writer.tenant, name="Acme Robotics", type_="organisation")
    theirs = entity_resolve(tenant=outsider.tenant, name="Acme Robotics", type_="organisation")
    assert ours.pk != theirs.pk


def test_deleting_a_memory_removes_only_what_it_alone_supported(writer: Persona) -> None:
    first = remember(writer, "Marco Rossi works at Acme Robotics.")
    second = remember(writer, "Marco Rossi works at Acme Robotics. Marco Rossi uses vim.")
    memory_delete(principal=writer.principal, memory=second)
    assert list(Relation.objects.values_list("predicate", flat=True)) == ["works_at"]
    assert not Entity.objects.filter(key="vim").exists()
    assert entity(writer, "marco rossi").mention_count == 1
    memory_delete(principal=writer.principal, memory=first)
    assert Relation.objects.count() == 0
    assert Entity.objects.count() == 0
    assert Mention.objects.count() == RelationSource.objects.count() == 0


def test_deleting_the_contradicting_memory_reopens_the_old_fact(writer: Persona) -> None:
    remember(writer, "Alice lives in Milan.", occurred_at=Y2019)
    moved = remember(writer, "Alice moved to Berlin.", occurred_at=Y2023)
    memory_delete(principal=writer.principal, memory=moved)
    assert current_targets(entity(writer, "alice"), "lives_in") == ["Milan"]


def test_forgetting_a_user_removes_their_graph(writer: Persona) -> None:
    remember(writer, "Marco Rossi works at Acme Robotics.", user_ref="marco")
    remember(writer, "Alice uses vim.", user_ref="alice")
    memory_forget_user(principal=writer.principal, user_ref="marco")
    assert set(Entity.objects.values_list("key", flat=True)) == {"alice", "vim"}


def test_manual_relations_survive_memory_deletion(writer: Persona) -> None:
    memory = remember(writer, "Marco Rossi works at Acme Robotics.")
    marco = entity(writer, "marco rossi")
    manual = relation_add(principal=writer.principal, source=marco.pk, target={"name": "Turin", "type": "place"},
                          predicate="lives in")  # fmt: skip
    memory_delete(principal=writer.principal, memory=memory)
    assert list(Relation.objects.values_list("pk", flat=True)) == [manual.pk]
    assert entity(writer, "marco rossi")  # kept: a manual relation uses it


def test_an_edited_memory_is_re_extracted(writer: Persona) -> None:
    memory = remember(writer, "Alice uses vim.")
    memory_update(principal=writer.principal, memory=memory, changes={"content": "Alice uses emacs."})
    graph_extract_memories([str(memory.pk)])
    assert current_targets(entity(writer, "alice"), "uses") == ["emacs"]
    assert not Entity.objects.filter(key="vim").exists()
    assert (
        GraphExtraction.objects.get(memory=memory).content_hash
        == memory.__class__.objects.get(pk=memory.pk).content_hash
    )


def test_relation_delete_retires_and_reopens(writer: Persona) -> None:
    remember(writer, "Alice lives in Milan.", occurred_at=Y2019)
    remember(writer, "Alice moved to Berlin.", occurred_at=Y2023)
    berlin = Relation.objects.get(target__key="berlin")
    relation_delete(principal=writer.principal, relation=berlin)
    berlin.refresh_from_db()
    assert berlin.expired_at is not None
    assert current_targets(entity(writer, "alice"), "lives_in") == ["Milan"]


def test_merge_moves_mentions_and_relations_and_records_history(writer: Persona) -> None:
    remember(writer, "Bob Smith works at Acme Robotics.")
    remember(writer, "Vincent Furnier lives in Turin.")
    bob, robert = entity(writer, "bob smith"), entity(writer, "vincent furnier")
    merged = entity_merge(principal=writer.principal, target=bob, sources=[robert])
    assert "Vincent Furnier" in merged.aliases
    assert merged.mention_count == 2
    assert set(Relation.objects.filter(source=merged).values_list("predicate", flat=True)) == {"works_at", "lives_in"}
    assert not Entity.objects.filter(pk=robert.pk).exists()
    record = EntityMerge.objects.get(target=merged)
    assert (record.merged_name, record.actor) == ("Vincent Furnier", writer.principal.actor)
    assert entity_resolve(tenant=writer.tenant, name="Vincent Furnier") == merged


@override_settings(EASYMEMORY_PROVIDER="openai")
def test_a_failed_extraction_is_recorded_visible_and_reconciled(writer: Persona, fake_llm: FakeLLMServer) -> None:
    config = ProviderConfig(provider="openai", model="m", base_url=fake_llm.url, backoff=0.01, max_retries=1)
    client = make_extractor(config)
    fake_llm.queue(Scripted(body=openai_reply("I think the answer is Marco.")), Scripted(body=openai_reply("{oops")))
    memory = memory_create(principal=writer.principal, data=MemoryInput(content="Marco Rossi works at Acme.")).memory
    outcome = graph_extract_memories([str(memory.pk)], extractor=client)
    assert outcome.failed == 1
    memory.refresh_from_db()
    assert memory.enrichment_state == EnrichmentState.FAILED
    assert memory.enrichment_error.startswith("graph: openai: malformed reply")
    response = writer.client().get(f"/v1/memories/{memory.pk}")
    assert response.json()["enrichment_state"] == "failed"
    assert graph_stats_for(writer.tenant)["extraction_failures"] == 1
    assert writer.client().get("/v1/stats").json()["graph"]["extraction_failures"] == 1
    assert graph_reconcile() >= 1  # re-queued
    fake_llm.queue(Scripted(body=openai_reply(__import__("json").dumps(MARCO))))
    assert graph_extract_memories([str(memory.pk)], extractor=client).extracted == 1
    memory.refresh_from_db()
    assert (memory.enrichment_state, memory.enrichment_error) == (EnrichmentState.DONE, "")
    assert Relation.objects.filter(predicate="works_at", source__key="marco rossi").exists()
    assert graph_reconcile() == 0


@pytest.mark.django_db(transaction=True)
def test_the_db_connection_is_released_while_waiting_on_the_model(writer: Persona, fake_llm: FakeLLMServer) -> None:
    import json

    seen: list[bool] = []
    main_connection = connection  # the test thread's connection object
    fake_llm.on_request = lambda _request: seen.append(main_connection.connection is None)
    fake_llm.queue(Scripted(body=openai_reply(json.dumps(MARCO))))
    memory = memory_create(principal=writer.principal, data=MemoryInput(content="Marco Rossi works at Acme.")).memory
    client = make_extractor(ProviderConfig(provider="openai", model="m", base_url=fake_llm.url))
    assert graph_extract_memories([str(memory.pk)], extractor=client).extracted == 1
    assert seen == [True]

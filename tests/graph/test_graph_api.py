"""REST endpoints of the graph: behaviour, bad input, and access for the whole persona cast."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from graph.models import Entity, EntityMerge, Relation
from tests.conftest import Persona
from tests.graph.helpers import remember

# Similarity resolution off: these tests are about the API, and skip loading the embedding model.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_similarity")]


@pytest.fixture
def no_similarity() -> Any:
    with override_settings(EASYMEMORY_GRAPH_SIMILARITY=2.0):
        yield


@pytest.fixture
def graph(writer: Persona) -> dict[str, Entity]:
    remember(writer, "Alice lives in Milan.", occurred_at=datetime(2019, 1, 1, tzinfo=UTC))
    remember(writer, "Alice moved to Berlin.", occurred_at=datetime(2023, 5, 1, tzinfo=UTC))
    remember(writer, "Alice works at Acme Robotics. Bob Smith works at Acme Robotics.")
    remember(writer, "Bob Smith knows Carol Jones.")
    remember(writer, "Dave Brown uses vim.")
    return {e.key: e for e in Entity.objects.filter(tenant=writer.tenant)}


def post(persona: Persona, path: str, body: Any):
    return persona.client().post(path, data=json.dumps(body), content_type="application/json")


def test_entities_list_searches_names_and_aliases_and_filters_by_type(
    reader: Persona, graph: dict[str, Entity]
) -> None:
    body = reader.client().get("/v1/entities?q=acme").json()
    assert [e["name"] for e in body["results"]] == ["Acme Robotics"]
    people = reader.client().get("/v1/entities?type=person&limit=2").json()
    assert people["count"] == 4 and len(people["results"]) == 2 and people["next"]
    Entity.objects.filter(pk=graph["acme robotics"].pk).update(aliases=["ACME"], alias_keys=["acme"])
    exact_first = reader.client().get("/v1/entities?q=ACME").json()["results"]
    assert exact_first[0]["name"] == "Acme Robotics"


def test_entity_detail_has_current_and_past_relations_and_memories(reader: Persona, graph: dict[str, Entity]) -> None:
    body = reader.client().get(f"/v1/entities/{graph['alice'].pk}").json()
    current = {(r["predicate"], r["target"]["name"]) for r in body["relations"]["current"]}
    assert current == {("lives_in", "Berlin"), ("works_at", "Acme Robotics")}
    [past] = body["relations"]["past"]
    assert (past["target"]["name"], past["current"], past["invalid_at"][:10]) == ("Milan", False, "2023-05-01")
    assert len(body["memories"]) == 3
    assert all(m["matched"] for m in body["memories"])


def test_neighbors_by_depth_and_as_of(reader: Persona, graph: dict[str, Entity]) -> None:
    alice = graph["alice"].pk
    one = reader.client().get(f"/v1/entities/{alice}/neighbors").json()
    assert {n["name"] for n in one["nodes"]} == {"Alice", "Berlin", "Acme Robotics"}
    two = reader.client().get(f"/v1/entities/{alice}/neighbors?depth=2").json()
    assert {n["name"] for n in two["nodes"]} == {"Alice", "Berlin", "Acme Robotics", "Bob Smith"}
    three = reader.client().get(f"/v1/entities/{alice}/neighbors?depth=3").json()
    assert "Carol Jones" in {n["name"] for n in three["nodes"]}
    assert next(n for n in three["nodes"] if n["name"] == "Carol Jones")["distance"] == 3
    then = reader.client().get(f"/v1/entities/{alice}/neighbors?as_of=2020-01-01T00:00:00Z").json()
    assert {n["name"] for n in then["nodes"]} == {"Alice", "Milan"}


@pytest.mark.parametrize(
    ("query", "field"), [("depth=4", "depth"), ("depth=0", "depth"), ("as_of=soon", "as_of"), ("colour=red", "colour")]
)
def test_neighbors_refuse_bad_parameters(reader: Persona, graph: dict[str, Entity], query: str, field: str) -> None:
    response = reader.client().get(f"/v1/entities/{graph['alice'].pk}/neighbors?{query}")
    assert response.status_code == 400
    assert response.json()["field"] == field


@override_settings(EASYMEMORY_GRAPH_MAX_NODES=10)
def test_traversal_beyond_the_node_cap_is_a_clear_400(writer: Persona) -> None:
    hub = Entity.objects.create(tenant=writer.tenant, name="Hub", key="hub")
    for i in range(12):
        post(writer, "/v1/relations", {"source": hub.pk, "target": {"name": f"Spoke {i}"}, "predicate": "links"})
    response = writer.client().get(f"/v1/entities/{hub.pk}/neighbors")
    assert response.status_code == 400
    assert "more than 10 entities" in response.json()["error"]


def test_path_between_entities(reader: Persona, graph: dict[str, Entity]) -> None:
    url = f"/v1/graph/path?from={graph['alice'].pk}&to={graph['carol jones'].pk}"
    body = reader.client().get(url).json()
    assert [n["name"] for n in body["path"]] == ["Alice", "Acme Robotics", "Bob Smith", "Carol Jones"]
    assert [e["predicate"] for e in body["edges"]] == ["works_at", "works_at", "knows"]
    none = reader.client().get(f"/v1/graph/path?from={graph['alice'].pk}&to={graph['vim'].pk}").json()
    assert none["path"] is None
    assert reader.client().get(f"/v1/graph/path?from={graph['alice'].pk}").status_code == 400


def test_relations_add_and_delete(writer: Persona, graph: dict[str, Entity]) -> None:
    response = post(
        writer,
        "/v1/relations",
        {
            "source": graph["alice"].pk,
            "target": {"name": "Rome", "type": "place"},
            "predicate": "lives in",
            "fact": "Alice lives in Rome now.",
        },
    )
    assert response.status_code == 201
    created = response.json()
    assert (created["predicate"], created["origin"], created["target"]["name"]) == ("lives_in", "manual", "Rome")
    berlin = Relation.objects.get(target__key="berlin")
    assert berlin.invalid_at is not None  # single-valued: the manual fact closes the extracted one
    assert writer.client().delete(f"/v1/relations/{created['id']}").status_code == 204
    assert writer.client().get(f"/v1/relations/{created['id']}").json()["expired_at"] is not None
    berlin.refresh_from_db()
    assert berlin.invalid_at is None  # reopened


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": {"name": "A"}, "target": {"name": "A"}, "predicate": "knows"}, "target"),
        ({"source": {"name": "A"}, "target": {"name": "B"}, "predicate": ""}, "predicate"),
        ({"source": 999999, "target": {"name": "B"}, "predicate": "knows"}, "source"),
        ({"source": True, "target": {"name": "B"}, "predicate": "knows"}, "source"),
        ({"source": {"name": "A"}, "target": {"name": "B"}, "predicate": "x", "confidence": 3}, "confidence"),
        (
            {
                "source": {"name": "A"},
                "target": {"name": "B"},
                "predicate": "x",
                "valid_at": "2024-01-01T00:00:00Z",
                "invalid_at": "2023-01-01T00:00:00Z",
            },
            "invalid_at",
        ),  # fmt: skip
        ({"source": {"name": "A"}, "target": {"name": "B"}, "predicate": "x", "colour": 1}, "colour"),
    ],
)
def test_bad_relations_name_the_field_and_write_nothing(writer: Persona, body: dict[str, Any], field: str) -> None:
    response = post(writer, "/v1/relations", body)
    assert response.status_code in {400, 422}
    assert response.json()["field"] == field
    assert Relation.objects.count() == 0
    assert not Entity.objects.filter(key__in=["a", "b"]).exists()


def test_merge_and_entity_delete(writer: Persona, graph: dict[str, Entity]) -> None:
    response = post(
        writer, "/v1/entities/merge", {"target": graph["bob smith"].pk, "sources": [graph["dave brown"].pk]}
    )
    assert response.status_code == 200
    body = response.json()
    assert "Dave Brown" in body["aliases"]
    assert body["merges"][0]["merged_name"] == "Dave Brown"
    assert EntityMerge.objects.count() == 1
    self_merge = post(writer, "/v1/entities/merge", {"target": graph["alice"].pk, "sources": [graph["alice"].pk]})
    assert self_merge.status_code == 422
    assert writer.client().delete(f"/v1/entities/{graph['carol jones'].pk}").status_code == 204
    assert not Relation.objects.filter(predicate="knows").exists()


def test_export_json_and_graphml(reader: Persona, graph: dict[str, Entity]) -> None:
    body = reader.client().get("/v1/graph/export").json()
    assert len(body["nodes"]) == len(graph)
    assert {e["predicate"] for e in body["edges"]} >= {"lives_in", "works_at", "knows", "uses"}
    response = reader.client().get("/v1/graph/export?format=graphml")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/graphml+xml")
    text = response.content.decode()
    assert "<graphml" in text and "Acme Robotics" in text and "works_at" in text
    assert reader.client().get("/v1/graph/export?format=xml").json()["field"] == "format"


def test_search_uses_the_graph_list(reader: Persona, graph: dict[str, Entity]) -> None:
    response = post(reader, "/v1/search", {"query": "Where does Bob Smith work?", "weights": {"vector": 0}})
    hits = response.json()["results"]
    by_graph = [h for h in hits if "graph" in h["evidence"]]
    assert by_graph
    assert by_graph[0]["memory"]["content"].startswith(("Bob Smith", "Alice works at Acme"))
    # The graph list holds the memories that mention the entity the query names (Bob Smith), each
    # with its own graph rank, and none about the tenant's other people (Alice in Milan, Dave).
    contents = sorted(h["memory"]["content"] for h in by_graph)
    assert contents == [
        "Alice works at Acme Robotics. Bob Smith works at Acme Robotics.",
        "Bob Smith knows Carol Jones.",
    ]
    assert sorted(h["evidence"]["graph"]["rank"] for h in by_graph) == [1, 2]


def test_search_graph_list_stays_inside_filters(reader: Persona, writer: Persona) -> None:
    remember(writer, "Erin Gray works at Initech.", user_ref="erin")
    remember(writer, "Frank Hill works at Initech.", user_ref="frank")
    body = {"query": "Initech", "weights": {"vector": 0, "fulltext": 0}, "filters": {"user_ref": "erin"}}
    hits = post(reader, "/v1/search", body).json()["results"]
    assert [h["memory"]["content"] for h in hits] == ["Erin Gray works at Initech."]


def test_chinese_query_finds_entities_without_spaces(reader: Persona, writer: Persona) -> None:
    remember(writer, "张伟在阿里巴巴工作。")
    hits = post(reader, "/v1/search", {"query": "张伟在哪里工作", "weights": {"vector": 0, "fulltext": 0}})
    assert [h["memory"]["content"] for h in hits.json()["results"]] == ["张伟在阿里巴巴工作。"]


def test_stats_include_graph_counts(reader: Persona, graph: dict[str, Entity]) -> None:
    stats = reader.client().get("/v1/stats").json()["graph"]
    assert stats["entities"] == len(graph)
    assert stats["relations"] == Relation.objects.count()
    assert stats["current_relations"] == stats["relations"] - 1  # Milan is past
    assert stats["extracted_memories"] == 5 and stats["extraction_failures"] == 0


# --- access for the persona cast ----------------------------------------------------------


def read_urls(graph: dict[str, Entity]) -> list[str]:
    alice, carol = graph["alice"].pk, graph["carol jones"].pk
    relation = Relation.objects.filter(source_id=alice).first().pk
    return [
        f"/v1/entities/{alice}",
        f"/v1/entities/{alice}/neighbors",
        f"/v1/graph/path?from={alice}&to={carol}",
        f"/v1/relations/{relation}",
    ]


def test_anonymous_requests_are_refused(graph: dict[str, Entity]) -> None:
    anonymous = APIClient()
    for url in [*read_urls(graph), "/v1/entities", "/v1/graph/export"]:
        assert anonymous.get(url).status_code == 401, url
    assert anonymous.post("/v1/relations", {}, format="json").status_code == 401
    assert anonymous.post("/v1/entities/merge", {}, format="json").status_code == 401
    assert anonymous.delete(f"/v1/entities/{graph['alice'].pk}").status_code == 401


def test_every_persona_of_the_tenant_can_read(cast: dict[str, Persona], graph: dict[str, Entity]) -> None:
    for name in ("reader", "writer", "admin"):
        client = cast[name].client()
        for url in [*read_urls(graph), "/v1/entities", "/v1/graph/export?format=graphml"]:
            assert client.get(url).status_code == 200, (name, url)


def test_readers_cannot_write(reader: Persona, graph: dict[str, Entity]) -> None:
    relation = Relation.objects.first()
    assert post(reader, "/v1/relations", {"source": graph["alice"].pk, "target": graph["vim"].pk,
                                          "predicate": "uses"}).status_code == 403  # fmt: skip
    assert reader.client().delete(f"/v1/relations/{relation.pk}").status_code == 403
    assert reader.client().delete(f"/v1/entities/{graph['vim'].pk}").status_code == 403
    merge = {"target": graph["alice"].pk, "sources": [graph["vim"].pk]}
    assert post(reader, "/v1/entities/merge", merge).status_code == 403
    assert Entity.objects.filter(pk=graph["vim"].pk).exists()
    assert Relation.objects.get(pk=relation.pk).expired_at is None


def test_writer_and_admin_can_write(writer: Persona, admin: Persona, graph: dict[str, Entity]) -> None:
    made = post(writer, "/v1/relations", {"source": graph["alice"].pk, "target": graph["vim"].pk, "predicate": "uses"})
    assert made.status_code == 201
    assert admin.client().delete(f"/v1/relations/{made.json()['id']}").status_code == 204
    merge = {"target": graph["alice"].pk, "sources": [graph["vim"].pk]}
    assert post(admin, "/v1/entities/merge", merge).status_code == 200
    assert writer.client().delete(f"/v1/entities/{graph['dave brown'].pk}").status_code == 204


def test_another_tenant_sees_nothing_and_touches_nothing(outsider: Persona, graph: dict[str, Entity]) -> None:
    client = outsider.client()
    for url in read_urls(graph):
        assert client.get(url).status_code == 404, url
    assert client.get("/v1/entities").json()["results"] == []
    assert client.get("/v1/entities?q=alice").json()["results"] == []
    assert client.get("/v1/graph/export").json() == {"nodes": [], "edges": []}
    relation = Relation.objects.first()
    assert client.delete(f"/v1/relations/{relation.pk}").status_code == 404
    assert client.delete(f"/v1/entities/{graph['vim'].pk}").status_code == 404
    merge = {"target": graph["alice"].pk, "sources": [graph["vim"].pk]}
    assert post(outsider, "/v1/entities/merge", merge).status_code == 404
    attach = post(outsider, "/v1/relations", {"source": graph["alice"].pk, "target": {"name": "X"}, "predicate": "is"})
    assert attach.status_code == 422 and attach.json()["field"] == "source"
    hits = post(outsider, "/v1/search", {"query": "Alice Acme Robotics", "weights": {"vector": 0}}).json()["results"]
    assert hits == []
    assert client.get("/v1/stats").json()["graph"]["entities"] == 0
    assert Entity.objects.filter(pk=graph["vim"].pk).exists()
    assert Relation.objects.get(pk=relation.pk).expired_at is None
    assert Entity.objects.filter(tenant=outsider.tenant).count() == 0


def test_query_ngrams_cover_names_possessives_tags_and_chinese() -> None:
    from graph.selectors import query_ngrams

    grams = query_ngrams("What is Marco Rossi's #roadmap? 张伟在哪")
    assert {"marco rossi", "marco", "rossi", "roadmap", "张伟"} <= set(grams)
    assert "what" not in grams and "is" not in grams


def test_search_as_of_follows_the_relations_valid_then(
    reader: Persona, writer: Persona, graph: dict[str, Entity]
) -> None:
    remember(writer, "Dora lives in Milan.", occurred_at=datetime(2018, 6, 1, tzinfo=UTC))
    graph_only = {"vector": 0, "fulltext": 0}

    def found(filters: dict[str, Any]) -> list[str]:
        body = {"query": "Alice", "weights": graph_only, "filters": filters, "k": 20}
        return [h["memory"]["content"] for h in post(reader, "/v1/search", body).json()["results"]]

    now = found({})
    assert "Alice moved to Berlin." in now
    assert "Dora lives in Milan." not in now  # Alice no longer lives in Milan: no path to it
    then = found({"as_of": "2020-06-01T00:00:00Z"})
    assert "Dora lives in Milan." in then  # via Alice lives_in Milan, valid in 2020
    assert "Alice moved to Berlin." not in then  # had not happened yet
    bad = post(reader, "/v1/search", {"query": "Alice", "filters": {"as_of": "soon"}})
    assert (bad.status_code, bad.json()["field"]) == (400, "filters.as_of")

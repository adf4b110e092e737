"""Graph pages: entity list and search, entity page with current and past relations, the viewer's JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import override_settings

from accounts.principal import Principal
from graph.models import Entity
from tests.dashboard.conftest import Person
from tests.graph.helpers import remember

pytestmark = pytest.mark.django_db


@pytest.fixture
def graph(tenant: Any) -> dict[str, Entity]:
    """A small graph from real extraction (offline extractor); similarity off so no model loads."""
    system = Principal.system(tenant)
    with override_settings(EASYMEMORY_GRAPH_SIMILARITY=2.0):
        remember(system, "Alice lives in Milan.", occurred_at=datetime(2019, 1, 1, tzinfo=UTC))
        remember(system, "Alice moved to Berlin.", occurred_at=datetime(2023, 5, 1, tzinfo=UTC))
        remember(system, "Alice works at Acme Robotics. Bob Smith works at Acme Robotics.")
    return {e.key: e for e in Entity.objects.filter(tenant=tenant)}


def test_it_lists_and_finds_entities(people: dict[str, Person], graph: dict[str, Entity]) -> None:
    client = people["reader"].client()
    page = client.get("/entities/").content.decode()
    assert "Alice" in page and "Acme Robotics" in page and "Berlin" in page
    found = client.get("/entities/?q=acme").content.decode()
    assert "Acme Robotics" in found and "Berlin" not in found
    people_only = client.get("/entities/?type=person").content.decode()
    assert "Bob Smith" in people_only and "Milan" not in people_only


def test_it_shows_an_entity_with_current_and_past_relations(
    people: dict[str, Person], graph: dict[str, Entity]
) -> None:
    alice = graph["alice"]
    response = people["reader"].client().get(f"/entities/{alice.pk}/")
    current = {(r["predicate"], r["target"]["name"]) for r in response.context["detail"]["relations"]["current"]}
    assert current == {("lives_in", "Berlin"), ("works_at", "Acme Robotics")}
    [past] = response.context["detail"]["relations"]["past"]
    assert past["target"]["name"] == "Milan"
    page = response.content.decode()
    assert "until 2023-05-01" in page  # the past relation's end
    assert 'class="tl-bar past"' in page and 'class="tl-bar current"' in page  # the timeline
    assert "Alice moved to Berlin." in page  # mentioned in
    assert f'data-graph data-entity="{alice.pk}"' in page


def test_it_serves_the_neighbourhood_for_the_viewer(people: dict[str, Person], graph: dict[str, Entity]) -> None:
    client = people["reader"].client()
    body = client.get(f"/entities/{graph['bob smith'].pk}/neighbors.json").json()
    names = {node["name"] for node in body["nodes"]}
    assert names == {"Bob Smith", "Acme Robotics"} and body["edges"][0]["predicate"] == "works_at"
    deeper = client.get(f"/entities/{graph['bob smith'].pk}/neighbors.json?depth=2").json()
    assert {"Alice"} <= {node["name"] for node in deeper["nodes"]}
    bad = client.get(f"/entities/{graph['bob smith'].pk}/neighbors.json?depth=9")
    assert bad.status_code == 400 and bad.json()["field"] == "depth"


def test_it_starts_the_graph_page_at_the_best_match(people: dict[str, Person], graph: dict[str, Entity]) -> None:
    client = people["reader"].client()
    response = client.get("/graph/?q=bob")
    assert response.context["start"] == graph["bob smith"]
    response = client.get(f"/graph/?entity={graph['milan'].pk}")
    assert response.context["start"] == graph["milan"]
    assert people["outsider"].client().get(f"/graph/?entity={graph['milan'].pk}").status_code == 404
    assert "No entities" in people["outsider"].client().get("/graph/").content.decode()


def test_it_links_memories_to_the_entities_they_mention(
    people: dict[str, Person], graph: dict[str, Entity], tenant: Any
) -> None:
    from memory.models import Memory

    memory = Memory.objects.get(tenant=tenant, content__startswith="Alice works at")
    page = people["reader"].client().get(f"/memories/{memory.id}/").content.decode()
    assert f'href="/entities/{graph["acme robotics"].pk}/"' in page and "Bob Smith" in page
    stats = people["reader"].client().get("/stats/").context["graph"]
    assert stats["entities"] == len(graph) and stats["current_relations"] >= 3

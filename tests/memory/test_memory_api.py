from __future__ import annotations

import json
import uuid

import pytest

from memory.models import Memory, MemoryHistory
from tests.conftest import Persona, embed_pending

pytestmark = pytest.mark.django_db


def post(persona: Persona, payload: object, path: str = "/v1/memories"):
    return persona.client().post(path, data=json.dumps(payload), content_type="application/json")


def test_it_creates_a_memory_and_returns_its_id(writer: Persona) -> None:
    response = post(writer, {"content": "Alice likes green tea", "tags": ["drinks"], "user_ref": "alice"})
    assert response.status_code == 201
    body = response.json()
    assert uuid.UUID(body["id"])
    assert body["created"] is True
    memory = Memory.objects.get(pk=body["id"])
    assert memory.tenant == writer.tenant
    assert memory.tags == ["drinks"]
    assert memory.search_vector is not None  # written in the same transaction
    assert MemoryHistory.objects.filter(memory_id=memory.id, event="ADD").count() == 1


def test_it_returns_the_existing_id_for_a_duplicate_in_the_same_scope(writer: Persona) -> None:
    first = post(writer, {"content": "Bob  is allergic to nuts", "user_ref": "bob"}).json()
    again = post(writer, {"content": "Bob is allergic to nuts", "user_ref": "bob"})
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["created"] is False
    other_scope = post(writer, {"content": "Bob is allergic to nuts", "user_ref": "carol"}).json()
    assert other_scope["id"] != first["id"]


def test_a_batch_is_all_or_nothing_and_the_error_names_the_index(writer: Persona) -> None:
    items = [{"content": f"fact {i}"} for i in range(5)]
    items[3] = {"content": "fact 3", "kind": "poem"}
    response = post(writer, items)
    assert response.status_code == 400
    assert response.json()["field"] == "[3].kind"
    assert Memory.objects.count() == 0


def test_a_batch_with_empty_content_stores_nothing(writer: Persona) -> None:
    response = post(writer, [{"content": "fine"}, {"content": "   "}])
    assert response.status_code == 422
    assert response.json()["field"] == "[1].content"
    assert Memory.objects.count() == 0


@pytest.mark.slow
def test_a_batch_of_one_thousand_is_accepted(writer: Persona) -> None:
    response = post(writer, [{"content": f"batch item {i}"} for i in range(1000)])
    assert response.status_code == 201
    assert len(response.json()) == 1000
    assert Memory.objects.filter(tenant=writer.tenant).count() == 1000


def test_a_batch_over_the_cap_is_refused(writer: Persona) -> None:
    response = post(writer, [{"content": f"x{i}"} for i in range(1001)])
    assert response.status_code == 413
    assert Memory.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "content_type", "status", "field"),
    [
        (b"{not json", "application/json", 400, "body"),
        (b'{"content": "\xff\xfe"}', "application/json", 400, "body"),
        (b"", "application/json", 400, "content"),
        (b"content=hello", "text/plain", 415, None),
        (b'{"content": "x", "colour": "red"}', "application/json", 400, "colour"),
        (b'{"content": 5, "importance": 3}', "application/json", 400, None),
        (b'{"content": "x", "occurred_at": "yesterday"}', "application/json", 400, "occurred_at"),
        (b'{"content": "x", "metadata": [1]}', "application/json", 400, "metadata"),
    ],
)
def test_bad_input_gets_a_clear_error_and_changes_nothing(
    writer: Persona, body: bytes, content_type: str, status: int, field: str | None
) -> None:
    response = writer.client().generic("POST", "/v1/memories", body, content_type=content_type)
    assert response.status_code == status, response.content
    payload = response.json()
    assert payload["error"]
    if field:
        assert payload["field"] == field
    assert Memory.objects.count() == 0


def test_content_over_the_size_limit_is_413(writer: Persona, settings) -> None:
    settings.EASYMEMORY_MAX_CONTENT_BYTES = 1000
    response = post(writer, {"content": "é" * 501})
    assert response.status_code == 413
    assert response.json()["field"] == "content"


def test_a_request_body_over_the_cap_is_413(writer: Persona, settings) -> None:
    settings.EASYMEMORY_MAX_REQUEST_BYTES = 2048
    response = post(writer, {"content": "x" * 4000})
    assert response.status_code == 413
    assert Memory.objects.count() == 0


def test_list_filters_and_cursor_pagination(writer: Persona) -> None:
    for i in range(7):
        post(writer, {"content": f"note number {i}", "kind": "note", "tags": ["even" if i % 2 == 0 else "odd"]})
    post(writer, {"content": "a chat line", "kind": "message", "user_ref": "u1"})
    client = writer.client()
    page = client.get("/v1/memories", {"limit": 3, "kind": "note"}).json()
    assert len(page["results"]) == 3
    seen = [m["id"] for m in page["results"]]
    while page["next"]:
        page = client.get(page["next"]).json()
        seen += [m["id"] for m in page["results"]]
    assert len(seen) == len(set(seen)) == 7
    evens = client.get("/v1/memories", {"tags": "even"}).json()["results"]
    assert len(evens) == 4
    messages = client.get("/v1/memories", {"user_ref": "u1"}).json()["results"]
    assert [m["kind"] for m in messages] == ["message"]
    bad = client.get("/v1/memories", {"kind": "poem"})
    assert bad.status_code == 400 and bad.json()["field"].startswith("kind")
    unknown = client.get("/v1/memories", {"colour": "red"})
    assert unknown.status_code == 400 and unknown.json()["field"] == "colour"


def test_get_patch_delete_and_history(writer: Persona) -> None:
    client = writer.client()
    memory_id = post(writer, {"content": "Dana lives in Lisbon"}).json()["id"]
    assert client.get(f"/v1/memories/{memory_id}").json()["content"] == "Dana lives in Lisbon"
    patched = client.patch(
        f"/v1/memories/{memory_id}",
        data=json.dumps({"content": "Dana lives in Porto"}),
        content_type="application/json",
    )
    assert patched.status_code == 200
    assert patched.json()["version"] == 2
    assert patched.json()["enrichment_state"] == "pending"
    assert client.delete(f"/v1/memories/{memory_id}").status_code == 204
    assert client.get(f"/v1/memories/{memory_id}").status_code == 404
    history = client.get(f"/v1/memories/{memory_id}/history").json()["results"]
    assert [h["event"] for h in history] == ["ADD", "UPDATE", "DELETE"]
    assert history[1]["old_content"] == "Dana lives in Lisbon"
    assert history[1]["new_content"] == "Dana lives in Porto"


def test_patch_refuses_unknown_fields_and_changes_nothing(writer: Persona) -> None:
    memory_id = post(writer, {"content": "unchanged"}).json()["id"]
    response = writer.client().patch(
        f"/v1/memories/{memory_id}", data=json.dumps({"tenant": "x"}), content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "tenant"
    assert Memory.objects.get(pk=memory_id).version == 1


def test_forgetting_an_end_user_deletes_memories_and_history(writer: Persona) -> None:
    post(writer, {"content": "Eve's secret plan", "user_ref": "eve"})
    post(writer, {"content": "Frank's note", "user_ref": "frank"})
    response = writer.client().delete("/v1/memories?user_ref=eve")
    assert response.json() == {"deleted": 1}
    assert not Memory.objects.filter(user_ref="eve").exists()
    assert not MemoryHistory.objects.filter(user_ref="eve").exists()
    assert Memory.objects.filter(user_ref="frank").exists()
    assert writer.client().delete("/v1/memories").status_code == 422


def test_another_tenants_memory_is_404_for_every_verb(writer: Persona, outsider: Persona) -> None:
    memory_id = post(writer, {"content": "private to acme"}).json()["id"]
    client = outsider.client()
    assert client.get(f"/v1/memories/{memory_id}").status_code == 404
    assert client.get(f"/v1/memories/{memory_id}/history").status_code == 404
    patch = client.patch(f"/v1/memories/{memory_id}", data='{"content": "x"}', content_type="application/json")
    assert patch.status_code == 404
    assert client.delete(f"/v1/memories/{memory_id}").status_code == 404
    assert client.get("/v1/memories").json()["results"] == []
    assert client.get("/v1/memories/not-a-uuid").status_code == 404
    assert Memory.objects.get(pk=memory_id).content == "private to acme"


def test_stats_count_by_kind_and_pending_embeddings(writer: Persona) -> None:
    post(writer, [{"content": "one"}, {"content": "two", "kind": "fact"}])
    stats = writer.client().get("/v1/stats").json()
    assert stats["memories"] == 2
    assert stats["by_kind"] == {"note": 1, "fact": 1}
    assert stats["pending_embeddings"] == 2
    embed_pending()
    stats = writer.client().get("/v1/stats").json()
    assert stats["pending_embeddings"] == 0
    assert stats["enrichment"]["done"] == 2
    assert stats["database_bytes"] > 0

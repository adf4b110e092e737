"""Every memory endpoint with every persona: who may do what."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from memory.services import MemoryInput, memory_create
from tests.conftest import Persona

pytestmark = pytest.mark.django_db

READS = [("get", "/v1/memories", None), ("get", "/v1/stats", None), ("post", "/v1/search", {"query": "tea"})]
WRITES = [("post", "/v1/memories", {"content": "new fact"}), ("delete", "/v1/memories?user_ref=zed", None)]


def call(client: APIClient, method: str, path: str, body: object):
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, data=json.dumps(body), content_type="application/json")


@pytest.fixture
def memory_id(admin: Persona) -> str:
    return str(memory_create(principal=admin.principal, data=MemoryInput(content="green tea")).memory.id)


def object_calls(memory_id: str) -> list[tuple[str, str, object, bool]]:
    return [
        ("get", f"/v1/memories/{memory_id}", None, False),
        ("get", f"/v1/memories/{memory_id}/history", None, False),
        ("patch", f"/v1/memories/{memory_id}", {"tags": ["x"]}, True),
        ("delete", f"/v1/memories/{memory_id}", None, True),
    ]


@pytest.mark.parametrize(("method", "path", "body"), READS + WRITES)
def test_anonymous_gets_401_everywhere(db, method: str, path: str, body: object) -> None:
    assert call(APIClient(), method, path, body).status_code == 401


def test_anonymous_gets_401_on_objects(memory_id: str) -> None:
    for method, path, body, _ in object_calls(memory_id):
        assert call(APIClient(), method, path, body).status_code == 401


@pytest.mark.parametrize(("method", "path", "body"), READS)
def test_every_role_may_read(cast: dict[str, Persona], method: str, path: str, body: object) -> None:
    for persona in cast.values():
        assert call(persona.client(), method, path, body).status_code == 200, persona.name


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_readers_may_not_write(reader: Persona, method: str, path: str, body: object) -> None:
    response = call(reader.client(), method, path, body)
    assert response.status_code == 403
    assert response.json()["error"]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_writers_and_admins_may_write(writer: Persona, admin: Persona, method: str, path: str, body: object) -> None:
    for persona in (writer, admin):
        assert call(persona.client(), method, path, body).status_code in {200, 201}, persona.name


def test_object_access_by_role(memory_id: str, reader: Persona, writer: Persona) -> None:
    for method, path, body, is_write in object_calls(memory_id):
        expected = 403 if is_write else 200
        assert call(reader.client(), method, path, body).status_code == expected, (method, path)
    for method, path, body, _ in object_calls(memory_id):
        assert call(writer.client(), method, path, body).status_code in {200, 204}, (method, path)


def test_outsider_gets_404_for_objects_and_sees_nothing(memory_id: str, outsider: Persona) -> None:
    for method, path, body, _ in object_calls(memory_id):
        assert call(outsider.client(), method, path, body).status_code == 404, (method, path)
    client = outsider.client()
    assert client.get("/v1/memories").json()["results"] == []
    hits = client.post("/v1/search", data=json.dumps({"query": "green tea"}), content_type="application/json")
    assert hits.json()["results"] == []
    assert client.get("/v1/stats").json()["memories"] == 0

"""GET /v1/audit, denied requests and logins in the trail."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from audit.models import AuditEvent
from audit.services import audit_record
from tests.conftest import Persona
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_admins_page_through_their_tenants_events(cast: dict[str, Persona]) -> None:
    admin = cast["admin"]
    for i in range(7):
        audit_record(principal=admin.principal, action="memory.read", target_type="memory", target_id=str(i))
    audit_record(principal=cast["outsider"].principal, action="memory.read", target_id="foreign")
    seen: list[dict] = []
    cursor = ""
    for _ in range(10):
        response = admin.client().get("/v1/audit", {"action": "memory.read", "limit": 3, "cursor": cursor})
        assert response.status_code == 200
        body = response.json()
        seen += body["results"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert [e["target_id"] for e in seen] == [str(i) for i in reversed(range(7))]
    assert all(e["tenant_id"] == str(admin.tenant.pk) for e in seen)

    family = admin.client().get("/v1/audit", {"action": "api_key.*"}).json()["results"]
    assert family and all(e["action"].startswith("api_key.") for e in family)


def test_only_admins_read_the_trail(cast: dict[str, Persona]) -> None:
    assert APIClient().get("/v1/audit").status_code == 401
    assert cast["reader"].client().get("/v1/audit").status_code == 403
    assert cast["writer"].client().get("/v1/audit").status_code == 403
    outsider_view = cast["outsider"].client().get("/v1/audit").json()["results"]
    assert all(e["tenant_id"] == str(cast["outsider"].tenant.pk) for e in outsider_view)


def test_bad_filters_name_the_field(admin: Persona) -> None:
    response = admin.client().get("/v1/audit", {"cursor": "%%%"})
    assert response.status_code == 422 and response.json()["field"] == "cursor"
    response = admin.client().get("/v1/audit", {"since": "yesterday"})
    assert response.status_code == 400 and response.json()["field"] == "since"


def test_denied_requests_are_recorded(reader: Persona) -> None:
    assert APIClient().get("/v1/memories").status_code == 401
    assert reader.client().post("/v1/memories", {"content": "x"}, format="json").status_code == 403
    anonymous = AuditEvent.objects.get(tenant=None, action="request.denied", outcome="unauthenticated")
    assert anonymous.target_id == "GET /v1/memories"
    forbidden = AuditEvent.objects.get(tenant=reader.tenant, action="request.denied", outcome="forbidden")
    assert forbidden.actor_id == reader.principal.actor_id


def test_logins_and_failed_logins_are_recorded(db) -> None:
    user = UserFactory(username="frida")
    user.set_password("a-long-password-1")
    user.save()
    client = Client()
    assert client.login(username="frida", password="a-long-password-1")
    assert not client.login(username="frida", password="wrong")
    assert AuditEvent.objects.filter(action="auth.login", outcome="ok", actor_id=str(user.pk)).exists()
    failed = AuditEvent.objects.get(action="auth.login", outcome="failed")
    assert failed.detail == {"username": "frida", "window_seconds": 60}

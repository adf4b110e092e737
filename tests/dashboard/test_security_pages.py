"""OAuth application and audit log pages (tenant admins)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import Application
from audit.models import AuditEvent
from tests.dashboard.conftest import Person

pytestmark = pytest.mark.django_db


def test_it_shows_an_oauth_client_secret_once_and_rotates_it(people: dict[str, Person], tenant: Any) -> None:
    client = people["admin"].client()
    assert client.post("/admin/oauth-apps/", {"name": "nightly-sync", "role": "writer"}).status_code == 302
    app = Application.objects.get(tenant=tenant, name="nightly-sync")
    first = client.get("/admin/oauth-apps/")
    secret = first.context["new_app"]["secret"]
    assert secret in first.content.decode() and app.client_id in first.content.decode()
    assert first["Cache-Control"] == "no-store"
    assert secret not in client.get("/admin/oauth-apps/").content.decode()

    assert client.post(f"/admin/oauth-apps/{app.pk}/rotate/").status_code == 302
    rotated = client.get("/admin/oauth-apps/").context["new_app"]["secret"]
    assert rotated != secret
    token = Client().post(
        "/oauth/token", {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": rotated}
    )
    assert token.status_code == 200 and token.json()["access_token"]

    assert client.post(f"/admin/oauth-apps/{app.pk}/delete/").status_code == 302
    assert not Application.objects.filter(pk=app.pk).exists()
    actions = set(AuditEvent.objects.filter(tenant=tenant).values_list("action", flat=True))
    assert {"oauth_app.create", "oauth_app.rotate_secret", "oauth_app.delete"} <= actions


def test_it_lists_and_filters_the_audit_log(people: dict[str, Person], tenant: Any, other_tenant: Any) -> None:
    admin = people["admin"].client()
    writer = people["writer"].client()
    writer.post("/memories/new/", {"content": "for the trail", "kind": "note", "importance": "0.5"})
    writer.get("/search/?q=trail")
    people["outsider"].client().post("/memories/new/", {"content": "globex only", "kind": "note", "importance": "0.5"})

    response = admin.get("/admin/audit/")
    actions = [event.action for event, _ in response.context["rows"]]
    assert "memory.create" in actions and "memory.search" in actions
    assert all(event.tenant_id == tenant.pk for event, _ in response.context["rows"])
    page = response.content.decode()
    assert "for the trail" not in page and "trail" not in page.split("<table", 1)[-1]  # no content, no query
    assert "wes" in page  # actors by name

    only_creates = admin.get("/admin/audit/?action=memory.create").context["rows"]
    assert {event.action for event, _ in only_creates} == {"memory.create"}
    family = admin.get("/admin/audit/?action=memory.*").context["rows"]
    assert {event.action for event, _ in family} >= {"memory.create", "memory.search"}


def test_it_pages_the_audit_log_by_sequence(people: dict[str, Person], tenant: Any) -> None:
    client = people["reader"].client()
    for n in range(55):
        client.get(f"/search/?q=word{n}")
    admin = people["admin"].client()
    first = admin.get("/admin/audit/?action=memory.search")
    assert len(first.context["rows"]) == 50 and first.context["next_before"]
    older = admin.get(f"/admin/audit/?action=memory.search&before={first.context['next_before']}").context["rows"]
    assert len(older) == 5
    seqs = [event.seq for event, _ in first.context["rows"]] + [event.seq for event, _ in older]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 55

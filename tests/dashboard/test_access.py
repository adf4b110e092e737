"""Access rules of every dashboard URL for the cast: anonymous, reader, writer, admin, outsider."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.invitations import invitation_create
from accounts.models import ApiKey, Application, ConsentGrant, Invitation, Membership, Tenant
from accounts.oauth_grants import consent_grant_approve
from accounts.principal import Principal
from accounts.services import api_key_create, oauth_app_create
from graph.models import Relation
from graph.services import relation_add
from ingest.models import ImportRoot, IngestJob
from ingest.services import job_create
from memory.bulk import bulk_job_create
from memory.models import Memory, MemoryBulkJob
from memory.services import MemoryInput, memory_create
from tests.dashboard.conftest import Person

pytestmark = pytest.mark.django_db

ALLOW, DENY, MISSING, BAD = 200, 403, 404, 400


@pytest.fixture
def objects(people: dict[str, Person], tenant: Any) -> dict[str, str]:
    memory = memory_create(principal=Principal.system(tenant), data=MemoryInput(content="acme plans")).memory
    key = api_key_create(tenant=tenant, name="ci").api_key
    membership = Membership.objects.get(user=people["reader"].user, tenant=tenant)
    entity = relation_add(
        principal=Principal.system(tenant), source={"name": "Acme Rocket", "type": "project"},
        target={"name": "Zed Corp", "type": "organization"}, predicate="built_by",
    ).source
    job = job_create(principal=Principal.system(tenant), kind="json", params={"filename": "acme.json"}, enqueue=False)
    app = oauth_app_create(principal=Principal.system(tenant), name="acme-ci", role="reader").application
    root = ImportRoot.objects.create(tenant=tenant, path="/srv/acme-notes", created_by="test")
    # A consent grant (MCP client approval) of the admin's, to revoke.
    admin_membership = Membership.objects.get(user=people["admin"].user, tenant=tenant)
    grant = consent_grant_approve(
        membership=admin_membership, application=app, scopes=["memory:read"], resource="http://testserver/mcp"
    )
    ids = {"app": app.pk, "memory": memory.id, "key": key.id, "membership": membership.id, "job": job.id}
    ids["root"] = root.pk
    ids["entity"] = entity.pk
    ids["grant"] = grant.pk
    created = invitation_create(principal=Principal.system(tenant), role="reader")
    ids["invitation"], ids["invite_token"] = created.invitation.pk, created.token
    ids["relation"] = Relation.objects.get(tenant=tenant).pk
    ids["bulk"] = bulk_job_create(
        principal=Principal.system(tenant), action="tags_add", memory_ids=[memory.id], params={"tags": ["x"]},
        enqueue=False,
    ).pk  # fmt: skip
    ids["tenant"], ids["user"] = tenant.pk, people["reader"].user.pk
    return {name: str(value) for name, value in ids.items()}


def urls(o: dict[str, str]) -> dict[str, str]:
    return {
        "home": "/",
        "search": "/search/?q=plans",
        "memories": "/memories/",
        "memory-new": "/memories/new/",
        "memory-detail": f"/memories/{o['memory']}/",
        "memory-state": f"/memories/{o['memory']}/state/",
        "memory-edit": f"/memories/{o['memory']}/edit/",
        "memory-delete": f"/memories/{o['memory']}/delete/",
        "stats": "/stats/",
        "entities": "/entities/",
        "entity-detail": f"/entities/{o['entity']}/",
        "entity-neighbors": f"/entities/{o['entity']}/neighbors.json",
        "graph": f"/graph/?entity={o['entity']}",
        "ingest": "/ingest/",
        "ingest-upload": "/ingest/upload/",
        "ingest-index": "/ingest/index/",
        "ingest-job": f"/ingest/jobs/{o['job']}/",
        "ingest-job-row": f"/ingest/jobs/{o['job']}/row/",
        "ingest-root-add": "/ingest/roots/",
        "ingest-root-delete": f"/ingest/roots/{o['root']}/delete/",
        "api-key-rate-limit": f"/admin/api-keys/{o['key']}/rate-limit/",
        "oauth-app-rate-limit": f"/admin/oauth-apps/{o['app']}/rate-limit/",
        "api-keys": "/admin/api-keys/",
        "api-key-revoke": f"/admin/api-keys/{o['key']}/revoke/",
        "members": "/admin/members/",
        "member-update": f"/admin/members/{o['membership']}/",
        "oauth-apps": "/admin/oauth-apps/",
        "oauth-app-rotate": f"/admin/oauth-apps/{o['app']}/rotate/",
        "oauth-app-delete": f"/admin/oauth-apps/{o['app']}/delete/",
        "audit": "/admin/audit/",
        "tenants": "/admin/tenants/",
        "oauth-grants": "/account/connected-apps/",
        "oauth-grant-revoke": f"/account/connected-apps/{o['grant']}/revoke/",
        "tenant-switch": "/tenant/",
        "login": "/login/",
        "logout": "/logout/",
        "invitation-accept": f"/invite/{o['invite_token']}/",
        "invitation-revoke": f"/admin/invitations/{o['invitation']}/revoke/",
        "account": "/account/",
        "account-sessions-end": "/account/sessions/end/",
        "password-reset": "/reset/MQ/set-password/",
        "password-reset-done": "/reset/done/",
        "accounts": "/admin/accounts/",
        "account-update": f"/admin/accounts/{o['user']}/",
        "tenant-detail": f"/admin/tenants/{o['tenant']}/",
        "tenant-export": f"/admin/tenants/{o['tenant']}/export/",
        "tenant-delete": f"/admin/tenants/{o['tenant']}/delete/",
        "tenant-verify": f"/admin/tenants/{o['tenant']}/verify/",
        "audit-export": "/admin/audit/export/",
        "bulk": "/memories/bulk/",
        "bulk-job": f"/memories/bulk/{o['bulk']}/",
        "relation-detail": f"/graph/relations/{o['relation']}.json",
        "favicon": "/favicon.ico",
    }


# Reachable without signing in, each for a reason.
PUBLIC = {
    "login": "the login form",
    "logout": "ends a session",
    "invitation-accept": "whoever holds the one-time link signs in or creates an account there",
    "password-reset": "whoever holds the one-time link sets the password there",
    "password-reset-done": "a confirmation with no data",
    "favicon": "the browser's icon",
}
# Every signed-in person may use these on their own account only (no tenant data).
OWN_ACCOUNT = {"account", "account-sessions-end"}


# What each role gets on GET. Outsider: another tenant's objects are 404, lists are its own (empty).
GET_RULES = {
    "search": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": ALLOW},
    "memories": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": ALLOW},
    "memory-new": {"reader": DENY, "writer": ALLOW, "admin": ALLOW, "outsider": ALLOW},
    "memory-detail": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": MISSING},
    "memory-state": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": MISSING},
    "memory-edit": {"reader": DENY, "writer": ALLOW, "admin": ALLOW, "outsider": MISSING},
    "memory-delete": {"reader": DENY, "writer": ALLOW, "admin": ALLOW, "outsider": MISSING},
    "stats": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": ALLOW},
    "entities": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": ALLOW},
    "entity-detail": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": MISSING},
    "entity-neighbors": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": MISSING},
    "graph": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": MISSING},
    "ingest": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": ALLOW},
    "ingest-job": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": MISSING},
    "ingest-job-row": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": MISSING},
    "api-keys": {"reader": DENY, "writer": DENY, "admin": ALLOW, "outsider": ALLOW},
    "members": {"reader": DENY, "writer": DENY, "admin": ALLOW, "outsider": ALLOW},
    "oauth-apps": {"reader": DENY, "writer": DENY, "admin": ALLOW, "outsider": ALLOW},
    "audit": {"reader": DENY, "writer": DENY, "admin": ALLOW, "outsider": ALLOW},
    "tenants": {"reader": DENY, "writer": DENY, "admin": DENY, "outsider": DENY},  # superusers only
    # Everyone sees their own connected apps; admins also the tenant's (acme's never reach the outsider).
    "oauth-grants": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": ALLOW},
    "accounts": {"reader": DENY, "writer": DENY, "admin": DENY, "outsider": DENY},  # superusers only
    "account": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": ALLOW},
    "tenant-detail": {"reader": DENY, "writer": DENY, "admin": ALLOW, "outsider": MISSING},
    "tenant-export": {"reader": DENY, "writer": DENY, "admin": ALLOW, "outsider": MISSING},
    "audit-export": {"reader": DENY, "writer": DENY, "admin": ALLOW, "outsider": ALLOW},
    "bulk-job": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": MISSING},
    "relation-detail": {"reader": ALLOW, "writer": ALLOW, "admin": ALLOW, "outsider": MISSING},
}

# Writes (POST) that must be refused, with a check that nothing changed.
POST_DENIED = {
    "memory-new": {"reader": DENY},
    "ingest-upload": {"reader": DENY},
    "ingest-index": {"reader": DENY},
    "ingest-root-add": {"reader": DENY, "writer": DENY},
    "ingest-root-delete": {"reader": DENY, "writer": DENY, "outsider": MISSING},
    "api-key-rate-limit": {"reader": DENY, "writer": DENY, "outsider": MISSING},
    "oauth-app-rate-limit": {"reader": DENY, "writer": DENY, "outsider": MISSING},
    "memory-edit": {"reader": DENY, "outsider": MISSING},
    "memory-delete": {"reader": DENY, "writer": None, "outsider": MISSING},
    "api-keys": {"reader": DENY, "writer": DENY},
    "api-key-revoke": {"reader": DENY, "writer": DENY, "outsider": MISSING},
    "members": {"reader": DENY, "writer": DENY},
    "member-update": {"reader": DENY, "writer": DENY, "outsider": MISSING},
    "tenants": {"reader": DENY, "writer": DENY, "outsider": DENY},
    "oauth-apps": {"reader": DENY, "writer": DENY},
    "oauth-app-rotate": {"reader": DENY, "writer": DENY, "outsider": MISSING},
    "oauth-app-delete": {"reader": DENY, "writer": DENY, "outsider": MISSING},
    # Another member's grant: only its member and the tenant's admins may revoke it; for others it does not exist.
    "oauth-grant-revoke": {"reader": MISSING, "writer": MISSING, "outsider": MISSING},
    "invitation-revoke": {"reader": DENY, "writer": DENY, "outsider": MISSING},
    "accounts": {"reader": DENY, "writer": DENY, "outsider": DENY},
    "account-update": {"reader": DENY, "writer": DENY, "outsider": DENY},
    "tenant-detail": {"reader": DENY, "writer": DENY, "outsider": MISSING},
    "tenant-delete": {"reader": DENY, "writer": DENY, "outsider": MISSING},
    "tenant-verify": {"reader": DENY, "writer": DENY, "outsider": MISSING},
    "bulk": {"reader": DENY, "outsider": BAD},  # the outsider's ids are acme's: none is theirs
}


def test_it_covers_every_dashboard_url(objects: dict[str, str]) -> None:
    """A new dashboard URL without a row in these tables makes this test fail."""

    def names(resolver: URLResolver) -> set[str]:
        found: set[str] = set()
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                found |= names(entry)
            elif isinstance(entry, URLPattern) and entry.name:
                found.add(entry.name)
        return found

    dashboard = next(r for r in get_resolver().url_patterns if getattr(r, "namespace", None) == "dashboard")
    assert names(dashboard) == set(urls(objects))
    covered = set(GET_RULES) | set(POST_DENIED) | {"home", "tenant-switch"} | set(PUBLIC) | OWN_ACCOUNT
    assert covered == set(urls(objects))


def test_it_sends_anonymous_visitors_to_the_login_page(objects: dict[str, str]) -> None:
    client = Client()
    for name, url in urls(objects).items():
        if name in PUBLIC:
            continue
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code == 302, (name, method)
            assert response["Location"].startswith("/login/"), (name, method)
    assert client.get("/login/").status_code == 200
    assert Memory.objects.count() == 1 and ApiKey.objects.filter(revoked_at=None).count() == 1


@pytest.mark.parametrize("role", ["reader", "writer", "admin", "outsider"])
def test_it_applies_role_rules_to_every_page(role: str, people: dict[str, Person], objects: dict[str, str]) -> None:
    client = people[role].client()
    table = urls(objects)
    for name, expected in GET_RULES.items():
        response = client.get(table[name])
        assert response.status_code == expected[role], (name, response.status_code)
        if role == "outsider" and expected[role] == ALLOW:
            body = b"".join(response.streaming_content) if response.streaming else response.content
            markers = (b"acme plans", b"Acme", b"acme.json", b"Acme Rocket", b"acme-ci", objects["memory"].encode())
            for marker in markers:
                assert marker not in body, (name, marker)


@pytest.mark.parametrize("role", ["reader", "writer", "outsider"])
def test_it_refuses_writes_the_role_does_not_allow(
    role: str, people: dict[str, Person], objects: dict[str, str], tenant: Any
) -> None:
    client = people[role].client()
    table = urls(objects)
    payloads = {
        "memory-new": {"content": "sneaky", "kind": "note", "importance": "0.5"},
        "memory-edit": {"content": "overwritten", "kind": "note", "importance": "0.5"},
        "api-keys": {"name": "sneaky", "role": "admin"},
        "members": {"username": people[role].user.username, "role": "admin"},
        "member-update": {"role": "admin"},
        "tenants": {"name": "Sneaky"},
        "oauth-apps": {"name": "sneaky", "role": "admin"},
        "ingest-upload": {"kind": "file", "file": SimpleUploadedFile("sneaky.txt", b"sneaky upload")},
        "ingest-index": {"path": "/tmp", "pattern": "*.md", "recursive": "on"},
        "ingest-root-add": {"path": "/tmp"},
        "api-key-rate-limit": {"rate_limit_per_min": "1", "rate_limit_burst": "1"},
        "oauth-app-rate-limit": {"rate_limit_per_min": "1", "rate_limit_burst": "1"},
        "accounts": {"username": "sneaky"},
        "account-update": {"action": "membership", "tenant": str(tenant.pk), "role": "admin"},
        "tenant-detail": {"name": "Sneaky"},
        "tenant-delete": {"confirm": tenant.slug},
        "tenant-verify": {},
        "bulk": {"action": "delete", "ids": [objects["memory"]], "confirmed": "on", "expected": "1"},
    }
    for name, rules in POST_DENIED.items():
        expected = rules.get(role)
        if expected is None:
            continue
        response = client.post(table[name], payloads.get(name, {}))
        assert response.status_code == expected, (name, response.status_code)
    memory = Memory.objects.get(tenant=tenant)
    assert memory.content == "acme plans" and memory.version == 1
    assert ApiKey.objects.filter(tenant=tenant, revoked_at=None).count() == 1
    assert not ApiKey.objects.filter(name="sneaky").exists()
    assert Membership.objects.get(pk=objects["membership"]).role == "reader"
    assert not Membership.objects.filter(tenant=tenant, user=people[role].user, role="admin").exists()
    assert not Tenant.objects.filter(name="Sneaky").exists()
    assert Tenant.objects.filter(pk=tenant.pk, name="Acme").exists()
    assert Invitation.objects.get(pk=objects["invitation"]).revoked_at is None
    assert not MemoryBulkJob.objects.filter(action="delete").exists()
    assert not get_user_model().objects.filter(username="sneaky").exists()
    assert IngestJob.objects.filter(tenant=tenant).count() == 1
    assert list(Application.objects.values_list("name", flat=True)) == ["acme-ci"]
    assert list(ImportRoot.objects.values_list("path", flat=True)) == ["/srv/acme-notes"]
    assert not ApiKey.objects.filter(rate_limit_per_min__isnull=False).exists()
    assert not Application.objects.filter(rate_limit_per_min__isnull=False).exists()
    assert ConsentGrant.objects.get(pk=objects["grant"]).revoked_at is None


def test_it_lets_writers_and_admins_write(people: dict[str, Person], objects: dict[str, str], tenant: Any) -> None:
    writer = people["writer"].client()
    response = writer.post("/memories/new/", {"content": "writer note", "kind": "fact", "importance": "0.7"})
    assert response.status_code == 302
    assert Memory.objects.filter(tenant=tenant, content="writer note", kind="fact").exists()
    response = writer.post(
        f"/memories/{objects['memory']}/edit/", {"content": "acme plans, revised", "kind": "note", "importance": "0.5"}
    )
    assert response.status_code == 302
    assert Memory.objects.get(pk=objects["memory"]).version == 2

    admin = people["admin"].client()
    assert admin.post(f"/admin/api-keys/{objects['key']}/revoke/").status_code == 302
    assert ApiKey.objects.get(pk=objects["key"]).revoked_at is not None
    assert admin.post(f"/admin/members/{objects['membership']}/", {"role": "writer"}).status_code == 302
    assert Membership.objects.get(pk=objects["membership"]).role == "writer"
    assert admin.post(f"/memories/{objects['memory']}/delete/").status_code == 302
    assert admin.post(f"/account/connected-apps/{objects['grant']}/revoke/").status_code == 302
    assert ConsentGrant.objects.get(pk=objects["grant"]).revoked_at is not None
    assert not Memory.objects.filter(pk=objects["memory"]).exists()


def test_it_never_shows_api_keys_or_members_of_another_tenant(
    people: dict[str, Person], objects: dict[str, str]
) -> None:
    outsider = people["outsider"].client()
    assert objects["key"][:8] not in outsider.get("/admin/api-keys/").content.decode()
    page = outsider.get("/admin/members/").content.decode()
    assert "rita" not in page and "otto" in page

"""The admin API: API keys, members and tenants, with the persona cast."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey, Membership, Tenant
from audit.models import AuditEvent
from tests.conftest import Persona
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ADMIN_TOKEN = "t" * 40


def test_it_creates_a_key_whose_secret_is_shown_once(admin: Persona) -> None:
    created = admin.client().post("/v1/admin/api-keys", {"name": "ci", "role": "reader"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("emk_")
    listed = admin.client().get("/v1/admin/api-keys").json()
    assert {item["name"] for item in listed} >= {"ci", "admin"}
    assert all("secret" not in item for item in listed)
    new = APIClient()
    new.credentials(HTTP_AUTHORIZATION=f"Bearer {body['secret']}")
    assert new.get("/v1/memories").status_code == 200
    assert new.post("/v1/memories", {"content": "x"}, format="json").status_code == 403
    assert AuditEvent.objects.filter(tenant=admin.tenant, action="api_key.create", target_id=body["id"]).exists()


def test_revoked_and_expired_keys_get_401(admin: Persona, writer: Persona) -> None:
    key_id = str(ApiKey.objects.get(name="writer").pk)
    assert admin.client().delete(f"/v1/admin/api-keys/{key_id}").json()["revoked_at"]
    assert writer.client().get("/v1/memories").status_code == 401
    assert AuditEvent.objects.filter(action="api_key.revoke", target_id=key_id).count() == 1

    soon = (
        admin.client()
        .post(
            "/v1/admin/api-keys",
            {"name": "short", "expires_at": (timezone.now() + timedelta(hours=1)).isoformat()},
            format="json",
        )
        .json()
    )
    ApiKey.objects.filter(pk=soon["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = APIClient()
    expired.credentials(HTTP_AUTHORIZATION=f"Bearer {soon['secret']}")
    assert expired.get("/v1/memories").status_code == 401


def test_a_key_cannot_expire_in_the_past(admin: Persona) -> None:
    past = (timezone.now() - timedelta(days=1)).isoformat()
    response = admin.client().post("/v1/admin/api-keys", {"name": "old", "expires_at": past}, format="json")
    assert response.status_code == 422
    assert response.json()["field"] == "expires_at"
    assert not ApiKey.objects.filter(name="old").exists()


def test_bad_input_names_the_field(admin: Persona) -> None:
    response = admin.client().post("/v1/admin/api-keys", {"name": "x", "role": "owner"}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "role"


def test_key_admin_across_tenants_is_404(admin: Persona, outsider: Persona) -> None:
    key_id = str(ApiKey.objects.get(name="admin").pk)
    assert outsider.client().get(f"/v1/admin/api-keys/{key_id}").status_code == 404
    assert outsider.client().delete(f"/v1/admin/api-keys/{key_id}").status_code == 404
    assert ApiKey.objects.get(pk=key_id).revoked_at is None
    assert key_id not in {item["id"] for item in outsider.client().get("/v1/admin/api-keys").json()}


def test_members_can_be_invited_changed_and_removed(admin: Persona) -> None:
    user = UserFactory(username="dora")
    invited = admin.client().post("/v1/admin/members", {"username": "dora", "role": "reader"}, format="json")
    assert invited.status_code == 201
    member_id = invited.json()["id"]
    again = admin.client().post("/v1/admin/members", {"username": "dora"}, format="json")
    assert again.status_code == 422
    unknown = admin.client().post("/v1/admin/members", {"username": "nobody"}, format="json")
    assert unknown.status_code == 422 and unknown.json()["field"] == "username"

    changed = admin.client().patch(f"/v1/admin/members/{member_id}", {"role": "admin"}, format="json")
    assert changed.json()["role"] == "admin"
    # With dora the only admin member, she cannot be demoted or removed.
    assert admin.client().patch(f"/v1/admin/members/{member_id}", {"role": "reader"}, format="json").status_code == 422
    assert admin.client().delete(f"/v1/admin/members/{member_id}").status_code == 422
    second = UserFactory(username="emil")
    Membership.objects.create(tenant=admin.tenant, user=second, role="admin")
    assert admin.client().delete(f"/v1/admin/members/{member_id}").status_code == 204
    assert not Membership.objects.filter(user=user).exists()
    actions = set(AuditEvent.objects.filter(tenant=admin.tenant).values_list("action", flat=True))
    assert {"member.invite", "member.role_change", "member.remove"} <= actions


def test_tenants_are_for_superusers_only(admin: Persona) -> None:
    assert admin.client().get("/v1/admin/tenants").status_code == 403
    superuser = UserFactory(username="root", is_superuser=True, is_staff=True)
    session = APIClient()
    session.force_login(superuser)
    listed = session.get("/v1/admin/tenants")
    assert listed.status_code == 200
    assert "acme" in {item["slug"] for item in listed.json()}
    # A superuser with no membership has no tenant: tenant-scoped endpoints stay closed to it.
    assert session.get("/v1/memories").status_code == 403


def test_the_admin_token_is_off_by_default(db) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ADMIN_TOKEN}")
    assert client.get("/v1/admin/tenants").status_code == 401


def test_the_admin_token_manages_tenants_and_is_audited(settings, admin: Persona) -> None:
    settings.EASYMEMORY_ADMIN_TOKEN = ADMIN_TOKEN
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ADMIN_TOKEN}")
    created = client.post("/v1/admin/tenants", {"name": "Initech"}, format="json")
    assert created.status_code == 201
    tenant_id = created.json()["id"]
    assert client.post("/v1/admin/tenants", {"name": "Initech"}, format="json").status_code == 422
    # Without a tenant header it holds no tenant scope.
    assert client.get("/v1/admin/api-keys").status_code == 403
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ADMIN_TOKEN}", HTTP_X_EASYMEMORY_TENANT="initech")
    key = client.post("/v1/admin/api-keys", {"name": "bootstrap", "role": "admin"}, format="json")
    assert key.status_code == 201
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ADMIN_TOKEN}")
    assert client.delete(f"/v1/admin/tenants/{tenant_id}").status_code == 204
    assert not Tenant.objects.filter(pk=tenant_id).exists()
    # The deleted tenant's audit events stay, and tenant management is in the tenant-less chain.
    assert AuditEvent.objects.filter(tenant_id=tenant_id, action="api_key.create", actor_type="admin_token").exists()
    assert AuditEvent.objects.filter(tenant=None, action="tenant.delete", actor_type="admin_token").exists()
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Bearer " + "u" * 40)
    assert wrong.get("/v1/admin/tenants").status_code == 401

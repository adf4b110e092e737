"""The admin API: API keys, members and tenants, with the persona cast."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.invitations import invitation_accept
from accounts.models import ApiKey, Invitation, Membership, Tenant
from audit.models import AuditEvent
from core.errors import InvalidInput
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


def test_a_tenant_admin_cannot_learn_of_or_add_accounts_by_name(admin: Persona, outsider: Persona) -> None:
    """Issue 13 item 8: the same refusal for another tenant's account and for a name nobody has."""
    otto = UserFactory(username="otto")
    Membership.objects.create(tenant=outsider.tenant, user=otto, role="admin")
    existing = admin.client().post("/v1/admin/members", {"username": "otto", "role": "reader"}, format="json")
    missing = admin.client().post("/v1/admin/members", {"username": "nobody-at-all"}, format="json")
    assert existing.status_code == missing.status_code == 422
    assert existing.json() == missing.json() and existing.json()["field"] == "username"
    assert not Membership.objects.filter(tenant=admin.tenant, user=otto).exists()


def test_members_join_by_invitation_and_can_be_changed_and_removed(admin: Persona, outsider: Persona) -> None:
    created = admin.client().post("/v1/admin/invitations", {"role": "reader"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["state"] == "pending" and "/invite/emi_" in body["url"]
    token = body["url"].rstrip("/").rsplit("/", 1)[1]
    assert token not in str(Invitation.objects.values_list("token_hash", flat=True)[0])  # only a hash is kept
    listed = admin.client().get("/v1/admin/invitations").json()
    assert [item["id"] for item in listed] == [body["id"]] and "url" not in listed[0]
    assert outsider.client().get(f"/v1/admin/invitations/{body['id']}").status_code == 404
    assert outsider.client().delete(f"/v1/admin/invitations/{body['id']}").status_code == 404

    user = UserFactory(username="dora")
    membership = invitation_accept(token=token, user=user)
    assert membership.tenant == admin.tenant and membership.role == "reader"
    with pytest.raises(InvalidInput):
        invitation_accept(token=token, user=UserFactory(username="eve"))  # one-time
    assert admin.client().delete(f"/v1/admin/invitations/{body['id']}").status_code == 422  # already accepted

    member_id = membership.pk
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
    assert {"invitation.create", "invitation.accept", "member.role_change", "member.remove"} <= actions


def test_invitations_can_be_revoked_and_expire(admin: Persona) -> None:
    created = admin.client().post("/v1/admin/invitations", {"role": "writer", "expires_in_days": 1}, format="json")
    token = created.json()["url"].rstrip("/").rsplit("/", 1)[1]
    revoked = admin.client().delete(f"/v1/admin/invitations/{created.json()['id']}")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    with pytest.raises(InvalidInput):
        invitation_accept(token=token, user=UserFactory(username="late"))
    second = admin.client().post("/v1/admin/invitations", {"role": "writer"}, format="json").json()
    Invitation.objects.filter(pk=second["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(InvalidInput):
        invitation_accept(token=second["url"].rstrip("/").rsplit("/", 1)[1], user=UserFactory(username="later"))
    assert admin.client().get(f"/v1/admin/invitations/{second['id']}").json()["state"] == "expired"
    bad = admin.client().post("/v1/admin/invitations", {"role": "owner", "expires_in_days": 99}, format="json")
    assert bad.status_code == 400
    assert not Membership.objects.filter(user__username__in=["late", "later"]).exists()


def test_superusers_may_still_add_an_existing_account_by_name(settings, admin: Persona) -> None:
    settings.EASYMEMORY_ADMIN_TOKEN = ADMIN_TOKEN
    UserFactory(username="dora")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ADMIN_TOKEN}", HTTP_X_EASYMEMORY_TENANT="acme")
    added = client.post("/v1/admin/members", {"username": "dora", "role": "reader"}, format="json")
    assert added.status_code == 201 and added.json()["username"] == "dora"


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

"""A web process reuses an API key's row for EASYMEMORY_API_KEY_CACHE_SECONDS; what that must not change."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.selectors import api_key_forget
from accounts.services import api_key_create, api_key_revoke, credential_rate_limit_set, tenant_rename
from tests.conftest import Persona

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache() -> Any:
    api_key_forget()
    yield
    api_key_forget()


def _get(secret: str) -> Any:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client.get("/v1/memories")


def test_a_key_revoked_through_this_process_stops_working_at_once(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_API_KEY_CACHE_SECONDS = 60
    assert _get(writer.key).status_code == 200  # now cached
    api_key_revoke(api_key=ApiKey.objects.get(pk=writer.principal.actor_id))
    response = _get(writer.key)
    assert response.status_code == 401
    assert response.json()["error"] == "API key revoked"


def test_a_key_revoked_through_the_admin_api_stops_working_with_the_next_request(admin: Persona) -> None:
    created = admin.client().post("/v1/admin/api-keys", {"name": "ci", "role": "reader"}, format="json").json()
    assert _get(created["secret"]).status_code == 200
    assert admin.client().delete(f"/v1/admin/api-keys/{created['id']}").status_code == 200
    assert _get(created["secret"]).status_code == 401


def test_a_key_revoked_by_another_process_stops_working_once_the_entry_runs_out(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_API_KEY_CACHE_SECONDS = 0.3
    assert _get(writer.key).status_code == 200
    # Another process revokes it: this process's entry is not told.
    ApiKey.objects.filter(pk=writer.principal.actor_id).update(revoked_at=timezone.now())
    assert _get(writer.key).status_code == 200  # within the bound: the cached row still answers
    time.sleep(0.35)
    assert _get(writer.key).status_code == 401


def test_without_the_cache_every_request_reads_the_key(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_API_KEY_CACHE_SECONDS = 0
    assert _get(writer.key).status_code == 200
    ApiKey.objects.filter(pk=writer.principal.actor_id).update(revoked_at=timezone.now())
    assert _get(writer.key).status_code == 401


def test_expiry_is_checked_on_every_request_of_a_cached_key(tenant: Any, settings: Any) -> None:
    settings.EASYMEMORY_API_KEY_CACHE_SECONDS = 60
    created = api_key_create(tenant=tenant, name="short", expires_at=timezone.now() + timedelta(seconds=0.4))
    assert _get(created.secret).status_code == 200
    time.sleep(0.45)
    response = _get(created.secret)
    assert response.status_code == 401
    assert response.json()["error"] == "API key expired"


def test_a_wrong_secret_with_a_cached_prefix_is_refused(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_API_KEY_CACHE_SECONDS = 60
    assert _get(writer.key).status_code == 200
    forged = writer.key[:12] + "x" * (len(writer.key) - 12)
    assert _get(forged).status_code == 401
    assert _get(writer.key).status_code == 200


def test_a_changed_rate_limit_applies_to_the_next_request(writer: Persona, admin: Persona, settings: Any) -> None:
    settings.EASYMEMORY_API_KEY_CACHE_SECONDS = 60
    settings.EASYMEMORY_RATE_LIMIT_BACKEND = "database"
    assert _get(writer.key)["X-RateLimit-Limit"] == str(settings.EASYMEMORY_RATE_LIMIT_BURST)
    key = ApiKey.objects.get(pk=writer.principal.actor_id)
    credential_rate_limit_set(principal=admin.principal, credential=key, per_min=600, burst=7)
    assert _get(writer.key)["X-RateLimit-Limit"] == "7"


def test_a_renamed_tenant_is_seen_by_the_next_request(writer: Persona, admin: Persona, settings: Any) -> None:
    settings.EASYMEMORY_API_KEY_CACHE_SECONDS = 60
    assert _get(writer.key).status_code == 200
    tenant_rename(tenant=writer.tenant, name="Renamed", principal=admin.principal)
    from accounts.selectors import api_key_resolve

    assert api_key_resolve(writer.key).tenant.name == "Renamed"


def test_last_used_at_is_written_once_per_resolution_not_per_request(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_API_KEY_CACHE_SECONDS = 60
    assert _get(writer.key).status_code == 200
    first = ApiKey.objects.get(pk=writer.principal.actor_id).last_used_at
    assert first is not None
    assert _get(writer.key).status_code == 200
    assert ApiKey.objects.get(pk=writer.principal.actor_id).last_used_at == first

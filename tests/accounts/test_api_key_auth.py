from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.keys import hash_key
from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from tests.conftest import Persona

pytestmark = pytest.mark.django_db


def test_it_accepts_a_key_as_bearer_or_x_api_key(writer: Persona) -> None:
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {writer.key}")
    assert bearer.get("/v1/memories").status_code == 200
    header = APIClient()
    header.credentials(HTTP_X_API_KEY=writer.key)
    assert header.get("/v1/memories").status_code == 200


def test_the_key_is_stored_only_as_a_hash_with_a_visible_prefix(tenant) -> None:
    created = api_key_create(tenant=tenant, name="ci")
    assert created.secret.startswith("emk_")
    stored = ApiKey.objects.get(pk=created.api_key.pk)
    assert stored.key_hash == hash_key(created.secret)
    assert created.secret not in (stored.key_hash, stored.prefix)
    assert created.secret.startswith(stored.prefix)


@pytest.mark.parametrize(
    "header",
    ["Bearer emk_notarealkeyatall0000000000000000", "Bearer emk_", "Basic Zm9vOmJhcg==", "Bearer "],
)
def test_unknown_or_malformed_credentials_get_401(db, header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/v1/memories")
    assert response.status_code == 401
    assert "Bearer" in response["WWW-Authenticate"]


def test_a_wrong_secret_with_a_real_prefix_is_refused(writer: Persona) -> None:
    forged = writer.key[:12] + "x" * (len(writer.key) - 12)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert client.get("/v1/memories").status_code == 401


def test_revoked_and_expired_keys_get_401(tenant) -> None:
    revoked = api_key_create(tenant=tenant, name="old")
    api_key_revoke(api_key=revoked.api_key)
    expired = api_key_create(tenant=tenant, name="temp", expires_at=timezone.now() - timedelta(seconds=1))
    for secret in (revoked.secret, expired.secret):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        response = client.get("/v1/memories")
        assert response.status_code == 401
        assert response.json()["error"] in {"API key revoked", "API key expired"}


def test_use_records_last_used_at(writer: Persona) -> None:
    assert ApiKey.objects.get(pk=writer.principal.actor_id).last_used_at is None
    writer.client().get("/v1/memories")
    assert ApiKey.objects.get(pk=writer.principal.actor_id).last_used_at is not None

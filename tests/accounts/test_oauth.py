"""OAuth2 client credentials: token, scopes capped by role, revocation, introspection, expiry."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken
from rest_framework.test import APIClient

from accounts.authentication import principal_for_bearer
from accounts.selectors import InvalidCredential
from audit.models import AuditEvent
from tests.conftest import Persona

pytestmark = pytest.mark.django_db


def create_app(admin: Persona, role: str, name: str = "app") -> dict:
    response = admin.client().post("/v1/admin/oauth-apps", {"name": name, "role": role}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def token_for(app: dict, scope: str | None = None, basic: bool = False):
    client = APIClient()
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    if basic:
        raw = f"{app['client_id']}:{app['client_secret']}".encode()
        client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(raw).decode())
    else:
        data.update(client_id=app["client_id"], client_secret=app["client_secret"])
    return client.post("/oauth/token", data)  # form-encoded, as RFC 6749 requires


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_it_issues_a_token_whose_scopes_are_those_of_the_app_role(admin: Persona, settings) -> None:
    app = create_app(admin, "reader")
    response = token_for(app)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert set(body["scope"].split()) == {"memory:read", "graph:read"}
    assert body["expires_in"] == settings.OAUTH2_PROVIDER["ACCESS_TOKEN_EXPIRE_SECONDS"]
    assert "refresh_token" not in body
    token = body["access_token"]
    assert bearer(token).get("/v1/memories").status_code == 200
    # A reader application that writes is refused.
    assert bearer(token).post("/v1/memories", {"content": "x"}, format="json").status_code == 403
    assert AuditEvent.objects.filter(tenant=admin.tenant, action="oauth.token_issue", outcome="ok").exists()
    # Plain tokens are not stored at rest, only their checksum.
    assert AccessToken.objects.get().token == ""


def test_it_refuses_a_scope_beyond_the_role(admin: Persona) -> None:
    app = create_app(admin, "reader")
    response = token_for(app, scope="memory:read memory:write")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert AuditEvent.objects.filter(tenant=admin.tenant, action="oauth.token_issue", outcome="denied").exists()


def test_a_narrower_scope_narrows_the_token(admin: Persona) -> None:
    app = create_app(admin, "writer")
    token = token_for(app, scope="memory:read", basic=True).json()["access_token"]
    principal = principal_for_bearer(token)
    assert principal.scopes == frozenset({"memory:read"})
    assert principal.tenant == admin.tenant
    assert principal.actor_type == "oauth_app"
    assert bearer(token).post("/v1/memories", {"content": "x"}, format="json").status_code == 403


def test_a_wrong_secret_gets_no_token(admin: Persona) -> None:
    app = create_app(admin, "writer")
    app["client_secret"] = "not-the-secret"
    response = token_for(app)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_expired_and_revoked_tokens_get_401(admin: Persona) -> None:
    app = create_app(admin, "writer")
    expired = token_for(app).json()["access_token"]
    AccessToken.objects.update(expires=timezone.now() - timedelta(seconds=1))
    assert bearer(expired).get("/v1/memories").status_code == 401
    with pytest.raises(InvalidCredential):
        principal_for_bearer(expired)

    live = token_for(app).json()["access_token"]
    assert bearer(live).get("/v1/memories").status_code == 200
    revoke = APIClient().post(
        "/oauth/revoke", {"token": live, "client_id": app["client_id"], "client_secret": app["client_secret"]}
    )
    assert revoke.status_code == 200
    assert bearer(live).get("/v1/memories").status_code == 401
    with pytest.raises(InvalidCredential):
        principal_for_bearer(live)
    assert AuditEvent.objects.filter(tenant=admin.tenant, action="oauth.token_revoke").exists()


def test_an_unknown_bearer_gets_401(db) -> None:
    assert bearer("not-a-real-token").get("/v1/memories").status_code == 401
    with pytest.raises(InvalidCredential):
        principal_for_bearer("not-a-real-token")


def test_introspection_answers_only_for_the_callers_tenant(admin: Persona, outsider: Persona) -> None:
    app = create_app(admin, "writer")
    token = token_for(app).json()["access_token"]
    own = APIClient().post(
        "/oauth/introspect", {"token": token, "client_id": app["client_id"], "client_secret": app["client_secret"]}
    )
    assert own.status_code == 200
    assert own.json()["active"] is True
    assert set(own.json()["scope"].split()) == {"memory:read", "memory:write", "graph:read", "graph:write"}

    foreign = create_app(outsider, "admin")
    theirs = APIClient().post(
        "/oauth/introspect",
        {"token": token, "client_id": foreign["client_id"], "client_secret": foreign["client_secret"]},
    )
    assert theirs.status_code == 200
    assert theirs.json() == {"active": False}

    anonymous = APIClient().post("/oauth/introspect", {"token": token})
    assert anonymous.status_code == 401


def test_rotating_the_secret_revokes_old_tokens_and_secret(admin: Persona) -> None:
    app = create_app(admin, "writer")
    token = token_for(app).json()["access_token"]
    rotated = admin.client().post(f"/v1/admin/oauth-apps/{app['id']}/rotate-secret")
    assert rotated.status_code == 200
    assert bearer(token).get("/v1/memories").status_code == 401
    assert token_for(app).status_code == 401
    assert token_for({**app, "client_secret": rotated.json()["client_secret"]}).status_code == 200


def test_deleting_the_app_kills_its_tokens(admin: Persona, outsider: Persona) -> None:
    app = create_app(admin, "writer")
    token = token_for(app).json()["access_token"]
    assert outsider.client().delete(f"/v1/admin/oauth-apps/{app['id']}").status_code == 404
    assert admin.client().delete(f"/v1/admin/oauth-apps/{app['id']}").status_code == 204
    assert bearer(token).get("/v1/memories").status_code == 401

"""MCP authorization in-process: discovery metadata, registration, consent, PKCE, refresh
rotation, resource binding, revocation, and who may see and revoke a grant."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from accounts.models import Application, ConsentGrant, Membership, OAuthPolicy
from accounts.oauth import token_checksum
from accounts.roles import Role
from audit.models import AuditEvent
from memory.models import Memory
from tests.accounts.oauth_flow import (
    ORIGIN,
    REDIRECT,
    RESOURCE,
    api,
    approve,
    authorize_url,
    browser,
    connect,
    consent_form,
    exchange,
    pkce,
    refresh,
    register,
)
from tests.factories import MembershipFactory, TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(tenant: Any, other_tenant: Any) -> dict[str, Any]:
    """Users of the persona cast (owner, writer, reader of acme; an admin of globex)."""
    return {
        "owner": MembershipFactory(tenant=tenant, role=Role.ADMIN.value).user,
        "writer": MembershipFactory(tenant=tenant, role=Role.WRITER.value).user,
        "reader": MembershipFactory(tenant=tenant, role=Role.READER.value).user,
        "outsider": MembershipFactory(tenant=other_tenant, role=Role.ADMIN.value).user,
    }


# --- discovery --------------------------------------------------------------------------


def test_protected_resource_metadata_names_this_server_and_its_scopes() -> None:
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        body = browser().get(path).json()
        assert body["resource"] == RESOURCE
        assert body["authorization_servers"] == [ORIGIN]
        assert set(body["scopes_supported"]) >= {"memory:read", "memory:write"}
        assert body["bearer_methods_supported"] == ["header"]


def test_authorization_server_metadata_offers_s256_public_clients_and_registration() -> None:
    body = browser().get("/.well-known/oauth-authorization-server").json()
    assert body["issuer"] == ORIGIN
    assert body["authorization_endpoint"] == f"{ORIGIN}/oauth/authorize"
    assert body["token_endpoint"] == f"{ORIGIN}/oauth/token"
    assert body["registration_endpoint"] == f"{ORIGIN}/oauth/register"
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert "none" in body["token_endpoint_auth_methods_supported"]
    assert body["response_types_supported"] == ["code"]
    assert body["client_id_metadata_document_supported"] is False


# --- registration -----------------------------------------------------------------------


def test_a_client_registers_as_a_public_client_without_tenant() -> None:
    # What Cursor registers: its own scheme, a hosted https callback and a loopback one.
    uris = ["cursor://anysphere.cursor-mcp/oauth/callback", "https://app.example.com/cb", REDIRECT]
    response = register(redirect_uris=uris)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in body
    app = Application.objects.get(client_id=body["client_id"])
    assert app.tenant is None and app.client_type == "public"
    assert app.registered_from == "10.0.0.5"
    assert AuditEvent.objects.filter(action="oauth_client.register", target_id=str(app.pk)).exists()


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"redirect_uris": ["http://evil.example.com/cb"]}, "redirect_uris.0"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "redirect_uris.0"),
        ({"redirect_uris": ["https://ok.example/cb", "data:text/html,x"]}, "redirect_uris.1"),
        ({"redirect_uris": ["file:///etc/passwd"]}, "redirect_uris.0"),
        ({"redirect_uris": ["https://app.example.com/cb#frag"]}, "redirect_uris.0"),
        ({"redirect_uris": ["https://user@app.example.com/cb"]}, "redirect_uris.0"),
        ({"redirect_uris": []}, "redirect_uris"),
        ({"redirect_uris": ["https://a.example/" + "x" * 3000]}, "redirect_uris.0"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "token_endpoint_auth_method"),
        ({"grant_types": ["client_credentials"]}, "grant_types"),
        ({"response_types": ["token"]}, "response_types"),
        ({"client_name": ""}, "client_name"),
        ({"scope": "memory:read tenants:manage"}, "scope"),
    ],
)
def test_registration_refuses_bad_metadata_naming_the_field(metadata: dict[str, Any], field: str) -> None:
    before = Application.objects.count()
    response = register(**metadata)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert response.json()["error"] in {"invalid_redirect_uri", "invalid_client_metadata"}
    assert Application.objects.count() == before


def test_registration_refuses_non_json_and_oversized_bodies() -> None:
    client = browser()
    assert client.post("/oauth/register", data="x", content_type="text/plain").status_code == 415
    assert client.post("/oauth/register", data=b"\xff\xfe", content_type="application/json").status_code == 400
    assert client.post("/oauth/register", data="[1]", content_type="application/json").status_code == 400
    huge = json.dumps({"redirect_uris": [REDIRECT], "client_name": "x" * 20000})
    assert client.post("/oauth/register", data=huge, content_type="application/json").status_code == 413


def test_registration_is_limited_per_address(settings: Any) -> None:
    settings.EASYMEMORY_OAUTH_REGISTRATIONS_PER_HOUR = 2
    assert register(address="10.9.9.9").status_code == 201
    assert register(address="10.9.9.9").status_code == 201
    limited = register(address="10.9.9.9")
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert register(address="10.9.9.10").status_code == 201  # another address is not affected


def test_the_admin_switch_and_the_setting_turn_registration_off(settings: Any) -> None:
    OAuthPolicy.objects.update_or_create(pk=1, defaults={"registration_open": False})
    assert register().status_code == 403
    assert "registration_endpoint" not in browser().get("/.well-known/oauth-authorization-server").json()
    OAuthPolicy.objects.filter(pk=1).update(registration_open=True)
    assert register().status_code == 201
    settings.EASYMEMORY_OAUTH_REGISTRATION = False
    assert register().status_code == 403


def test_the_admin_switch_is_in_django_admin(admin_client: Any) -> None:
    response = admin_client.get("/django-admin/accounts/oauthpolicy/")
    assert response.status_code == 200


# --- authorization code + PKCE ------------------------------------------------------------


def test_the_full_flow_gives_a_token_acting_as_the_member_in_the_chosen_tenant(people: dict[str, Any]) -> None:
    writer = people["writer"]
    tenant = Membership.objects.get(user=writer).tenant
    client_id, tokens = connect(writer, tenant)
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
    assert set(tokens["scope"].split()) == {"memory:read", "memory:write", "graph:read", "graph:write"}
    created = api(tokens["access_token"]).post(
        "/v1/memories", data={"content": "written through an MCP client"}, content_type="application/json"
    )
    assert created.status_code == 201, created.content
    assert Memory.objects.get(id=created.json()["id"]).tenant == tenant
    grant = ConsentGrant.objects.get(user=writer, application__client_id=client_id)
    assert grant.tenant == tenant and grant.resource == RESOURCE
    token = AccessToken.objects.get(token_checksum=token_checksum(tokens["access_token"]))
    assert token.resource == [RESOURCE] and token.user == writer
    assert AuditEvent.objects.filter(tenant=tenant, action="oauth_grant.approve", actor_id=str(writer.pk)).exists()
    assert AuditEvent.objects.filter(tenant=tenant, action="oauth.token_issue", actor_id=str(writer.pk)).exists()


def test_consent_shows_client_name_tenants_and_scopes_narrowed_to_the_role(people: dict[str, Any]) -> None:
    reader = people["reader"]
    second = TenantFactory(name="Second", slug="second")
    MembershipFactory(user=reader, tenant=second, role=Role.WRITER.value)
    client_id = register(client_name="Claude Desktop").json()["client_id"]
    _, challenge = pkce()
    page = browser(reader).get(authorize_url(client_id, challenge))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Claude Desktop" in html
    assert "Acme (reader)" in html and "Second (writer)" in html
    assert "Add, change and delete memories" in html  # the writer tenant's list
    # Approving in the reader tenant narrows the token to reading.
    query = approve(browser(reader), client_id, challenge, Membership.objects.get(user=reader, role="reader").tenant)
    assert "code" in query and query["state"] == ["st-123"]


def test_a_reader_token_cannot_write_and_the_chosen_tenant_is_the_only_one_it_sees(
    people: dict[str, Any], other_tenant: Any
) -> None:
    reader = people["reader"]
    MembershipFactory(user=reader, tenant=other_tenant, role=Role.WRITER.value)
    acme = Membership.objects.get(user=reader, role="reader").tenant
    _, tokens = connect(reader, acme)
    assert set(tokens["scope"].split()) == {"memory:read", "graph:read"}
    client = api(tokens["access_token"])
    assert client.get("/v1/memories").status_code == 200
    refused = client.post("/v1/memories", data={"content": "x"}, content_type="application/json")
    assert refused.status_code == 403


def test_a_demoted_or_removed_member_loses_the_rights_at_once(people: dict[str, Any]) -> None:
    writer = people["writer"]
    membership = Membership.objects.get(user=writer)
    _, tokens = connect(writer, membership.tenant)
    client = api(tokens["access_token"])
    membership.role = Role.READER.value
    membership.save()
    assert client.post("/v1/memories", data={"content": "x"}, content_type="application/json").status_code == 403
    membership.delete()
    assert client.get("/v1/memories").status_code == 401


def test_a_wrong_pkce_verifier_is_refused(people: dict[str, Any]) -> None:
    client_id = register().json()["client_id"]
    _, challenge = pkce()
    tenant = Membership.objects.get(user=people["writer"]).tenant
    code = approve(browser(people["writer"]), client_id, challenge, tenant)["code"][0]
    other_verifier, _ = pkce()
    response = exchange(code, other_verifier, client_id)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.filter(application__client_id=client_id).exists()


def test_a_code_is_used_once(people: dict[str, Any]) -> None:
    client_id = register().json()["client_id"]
    verifier, challenge = pkce()
    tenant = Membership.objects.get(user=people["writer"]).tenant
    code = approve(browser(people["writer"]), client_id, challenge, tenant)["code"][0]
    assert exchange(code, verifier, client_id).status_code == 200
    again = exchange(code, verifier, client_id)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "override",
    [
        {"code_challenge_method": "plain"},
        {"code_challenge_method": None},
        {"code_challenge": None, "code_challenge_method": None},
    ],
)
def test_pkce_s256_is_required(people: dict[str, Any], override: dict[str, Any]) -> None:
    client_id = register().json()["client_id"]
    _, challenge = pkce()
    response = browser(people["writer"]).get(authorize_url(client_id, challenge, **override))
    assert response.status_code == 302
    assert response["Location"].startswith(REDIRECT) and "error=invalid_request" in response["Location"]


def test_an_unregistered_redirect_uri_is_refused_without_redirecting(people: dict[str, Any]) -> None:
    client_id = register().json()["client_id"]
    _, challenge = pkce()
    for uri in ("http://evil.example.com/callback", "https://127.0.0.1.evil.example/callback"):
        response = browser(people["writer"]).get(authorize_url(client_id, challenge, redirect_uri=uri))
        assert response.status_code == 400
        assert "Location" not in response


def test_a_loopback_redirect_may_use_another_port(people: dict[str, Any]) -> None:
    client_id = register(redirect_uris=["http://127.0.0.1/callback"]).json()["client_id"]
    _, challenge = pkce()
    response = browser(people["writer"]).get(
        authorize_url(client_id, challenge, redirect_uri="http://127.0.0.1:51234/callback")
    )
    assert response.status_code == 200


def test_a_resource_of_another_server_is_refused_at_authorization(people: dict[str, Any]) -> None:
    client_id = register().json()["client_id"]
    _, challenge = pkce()
    response = browser(people["writer"]).get(
        authorize_url(client_id, challenge, resource="https://other.example.com/mcp")
    )
    assert response.status_code == 302 and "error=invalid_target" in response["Location"]


def test_a_token_is_refused_at_another_resource(people: dict[str, Any]) -> None:
    writer = people["writer"]
    _, tokens = connect(writer, Membership.objects.get(user=writer).tenant)
    assert api(tokens["access_token"]).get("/v1/memories").status_code == 200
    # The same server reached under another name is another resource (RFC 8707): refused.
    assert api(tokens["access_token"], host="localhost").get("/v1/memories").status_code == 401


def test_a_token_request_cannot_widen_the_resource(people: dict[str, Any]) -> None:
    client_id = register().json()["client_id"]
    verifier, challenge = pkce()
    tenant = Membership.objects.get(user=people["writer"]).tenant
    code = approve(browser(people["writer"]), client_id, challenge, tenant)["code"][0]
    response = exchange(code, verifier, client_id, resource="https://other.example.com/mcp")
    assert response.status_code == 400 and response.json()["error"] == "invalid_target"


def test_an_expired_token_is_refused(people: dict[str, Any]) -> None:
    writer = people["writer"]
    _, tokens = connect(writer, Membership.objects.get(user=writer).tenant)
    AccessToken.objects.filter(token_checksum=token_checksum(tokens["access_token"])).update(
        expires=timezone.now() - timedelta(seconds=1)
    )
    assert api(tokens["access_token"]).get("/v1/memories").status_code == 401


def test_denying_consent_redirects_access_denied_and_grants_nothing(people: dict[str, Any]) -> None:
    client_id = register().json()["client_id"]
    _, challenge = pkce()
    tenant = Membership.objects.get(user=people["writer"]).tenant
    query = approve(browser(people["writer"]), client_id, challenge, tenant, allow=False)
    assert query["error"] == ["access_denied"]
    assert not ConsentGrant.objects.filter(application__client_id=client_id).exists()


def test_a_tampered_tenant_is_refused(people: dict[str, Any], other_tenant: Any) -> None:
    client_id = register().json()["client_id"]
    _, challenge = pkce()
    client = browser(people["writer"])
    page = client.get(authorize_url(client_id, challenge))
    for forged in (str(other_tenant.pk), "not-a-uuid", ""):
        response = client.post("/oauth/authorize", consent_form(page) | {"tenant": forged, "allow": "on"})
        assert response.status_code == 400, forged
    assert not ConsentGrant.objects.filter(application__client_id=client_id).exists()


def test_a_user_without_membership_cannot_consent(db: Any) -> None:
    from tests.factories import UserFactory

    loner = UserFactory()
    client_id = register().json()["client_id"]
    _, challenge = pkce()
    assert browser(loner).get(authorize_url(client_id, challenge)).status_code == 403


def test_anonymous_visitors_are_sent_to_the_login_page() -> None:
    client_id = register().json()["client_id"]
    _, challenge = pkce()
    response = browser().get(authorize_url(client_id, challenge))
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


# --- refresh --------------------------------------------------------------------------------


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_family(people: dict[str, Any]) -> None:
    writer = people["writer"]
    client_id, first = connect(writer, Membership.objects.get(user=writer).tenant)
    response = refresh(first["refresh_token"], client_id)
    assert response.status_code == 200, response.content
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert api(first["access_token"]).get("/v1/memories").status_code == 401
    token = AccessToken.objects.get(token_checksum=token_checksum(second["access_token"]))
    assert token.resource == [RESOURCE]  # the binding survives the refresh
    assert api(second["access_token"]).get("/v1/memories").status_code == 200
    # Replaying the first refresh token is theft or a bug: the whole family is revoked.
    assert refresh(first["refresh_token"], client_id).status_code == 400
    assert api(second["access_token"]).get("/v1/memories").status_code == 401
    assert refresh(second["refresh_token"], client_id).status_code == 400


# --- grants: listing and revocation -------------------------------------------------------


def test_the_member_revokes_a_grant_and_its_tokens_die_at_once(people: dict[str, Any]) -> None:
    writer = people["writer"]
    client_id, tokens = connect(writer, Membership.objects.get(user=writer).tenant)
    grant = ConsentGrant.objects.get(user=writer)
    page = browser(writer).get("/account/connected-apps/")
    assert page.status_code == 200 and "Test MCP client" in page.content.decode()
    response = browser(writer).post(f"/account/connected-apps/{grant.pk}/revoke/")
    assert response.status_code == 302
    assert api(tokens["access_token"]).get("/v1/memories").status_code == 401
    assert refresh(tokens["refresh_token"], client_id).status_code == 400
    assert not RefreshToken.objects.filter(user=writer).exists()
    grant.refresh_from_db()
    assert grant.revoked_at is not None
    assert AuditEvent.objects.filter(action="oauth_grant.revoke", target_id=str(grant.pk)).exists()


@pytest.mark.parametrize(("actor", "allowed"), [("owner", True), ("reader", False), ("outsider", False)])
def test_who_may_revoke_another_members_grant(people: dict[str, Any], actor: str, allowed: bool) -> None:
    writer = people["writer"]
    _, tokens = connect(writer, Membership.objects.get(user=writer).tenant)
    grant = ConsentGrant.objects.get(user=writer)
    listing = browser(people[actor]).get("/account/connected-apps/").content.decode()
    assert (str(grant.pk) in listing) is allowed
    response = browser(people[actor]).post(f"/account/connected-apps/{grant.pk}/revoke/")
    assert response.status_code == (302 if allowed else 404)
    assert (api(tokens["access_token"]).get("/v1/memories").status_code == 401) is allowed


def test_connected_apps_page_access_for_the_cast(people: dict[str, Any]) -> None:
    for name in ("owner", "writer", "reader", "outsider"):
        assert browser(people[name]).get("/account/connected-apps/").status_code == 200, name
    anonymous = browser().get("/account/connected-apps/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    assert browser(people["writer"]).post("/account/connected-apps/not-a-uuid/revoke/").status_code == 404


def test_approving_the_same_client_again_replaces_the_grant(people: dict[str, Any], other_tenant: Any) -> None:
    writer = people["writer"]
    MembershipFactory(user=writer, tenant=other_tenant, role=Role.READER.value)
    acme = Membership.objects.get(user=writer, role="writer").tenant
    client_id, first = connect(writer, acme)
    verifier, challenge = pkce()
    code = approve(browser(writer), client_id, challenge, other_tenant)["code"][0]
    second = exchange(code, verifier, client_id).json()
    assert api(first["access_token"]).get("/v1/memories").status_code == 401
    assert ConsentGrant.objects.get(user=writer, revoked_at__isnull=True).tenant == other_tenant
    assert set(second["scope"].split()) == {"memory:read", "graph:read"}


def test_a_registration_client_cannot_use_the_client_credentials_grant(db: Any) -> None:
    client_id = register().json()["client_id"]
    response = browser().post("/oauth/token", {"grant_type": "client_credentials", "client_id": client_id})
    assert response.status_code in {400, 401}
    assert not AccessToken.objects.filter(application__client_id=client_id).exists()


def test_a_native_app_scheme_receives_the_code(people: dict[str, Any]) -> None:
    native = "cursor://anysphere.cursor-mcp/oauth/callback"
    client_id = register(redirect_uris=[native]).json()["client_id"]
    _, challenge = pkce()
    client = browser(people["writer"])
    page = client.get(authorize_url(client_id, challenge, redirect_uri=native))
    assert page.status_code == 200
    tenant = Membership.objects.get(user=people["writer"]).tenant
    response = client.post("/oauth/authorize", consent_form(page) | {"tenant": str(tenant.pk), "allow": "on"})
    assert response.status_code == 302 and response["Location"].startswith(native + "?code=")


def test_the_asgi_doors_see_https_behind_the_proxy_exactly_when_django_does(settings: Any) -> None:
    from accounts.oauth_grants import asgi_origin

    scope = {"scheme": "http", "headers": [(b"host", b"Memory.LAN"), (b"x-forwarded-proto", b"https")]}
    settings.SECURE_PROXY_SSL_HEADER = None
    assert asgi_origin(scope) == "http://memory.lan"
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert asgi_origin(scope) == "https://memory.lan"
    assert asgi_origin({"scheme": "wss", "headers": [(b"host", b"m:8100")]}) == "https://m:8100"

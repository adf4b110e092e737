"""MCP clients on OAuth: registration (RFC 7591), consent grants, and the resource they bind to.

An MCP client registers itself (a public client with no tenant), then a member
approves it in one of their tenants. The approval is a ConsentGrant; the tokens
issued under it carry only the user and the application, and resolve through the
grant to the member's current role in that tenant. Revoking the grant deletes its
tokens, codes and refresh tokens in the same transaction, so they stop at once.

Tokens are bound (RFC 8707) to this server's MCP endpoint, `<origin>/mcp`; the
origin is the scheme and host the request arrived on (Host is checked against
ALLOWED_HOSTS before any of this runs).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_grant_model, get_refresh_token_model

from accounts.models import Application, ConsentGrant, Membership, OAuthPolicy, Tenant
from accounts.principal import Principal
from accounts.roles import OAUTH_SCOPES, scopes_for
from accounts.scoping import scoped
from core.errors import InvalidInput

MCP_PATH = "/mcp"
MAX_REDIRECT_URIS = 10
MAX_URI_LENGTH = 2000
MAX_CLIENT_NAME = 200
LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


# --- the resource ---------------------------------------------------------------------


def server_origin(scheme: str, host: str) -> str:
    """`scheme://host[:port]` of this server as the client reached it (ws → http, wss → https)."""
    scheme = {"ws": "http", "wss": "https"}.get(scheme.lower(), scheme.lower())
    return f"{scheme}://{host.lower()}"


def asgi_origin(scope: dict[str, Any]) -> str:
    """server_origin for an ASGI scope (MCP mount, websocket), honouring X-Forwarded-Proto exactly
    when Django does (EASYMEMORY_HTTPS sets SECURE_PROXY_SSL_HEADER), so both doors agree."""
    headers = {key: value.decode("latin-1") for key, value in scope.get("headers", [])}
    scheme = str(scope.get("scheme", "http"))
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy and headers.get(b"x-forwarded-proto", "").split(",")[0].strip().lower() == "https":
        scheme = "https"
    return server_origin(scheme, headers.get(b"host", ""))


def mcp_resource_url(origin: str) -> str:
    return origin + MCP_PATH


def canonical_resource(uri: str) -> str:
    """RFC 8707 comparison form: lower-case scheme and host, no trailing slash, no fragment."""
    parts = urlsplit(uri)
    path = parts.path.rstrip("/")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


def resource_allows(token_resources: list[str], audience: str) -> bool:
    """Whether a token bound to `token_resources` may be used at `audience` (exact, canonical)."""
    wanted = canonical_resource(audience)
    return any(canonical_resource(resource) == wanted for resource in token_resources)


# --- registration ---------------------------------------------------------------------


def registration_open() -> bool:
    """Dynamic registration is on: the setting allows it and the admin switch is not off."""
    return settings.EASYMEMORY_OAUTH_REGISTRATION and OAuthPolicy.current().registration_open


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Schemes a browser or OS acts on itself: never a place to deliver an authorization code.
FORBIDDEN_SCHEMES = {"javascript", "data", "file", "vbscript", "about", "blob", "ftp", "ws", "wss", "mailto", "tel"}
PRIVATE_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]{0,39}")


def redirect_uri_problem(uri: str) -> str | None:
    """Why `uri` cannot be a redirect URI, or None when it can.

    Accepted: http on a loopback host (RFC 8252 §7.3; any port at authorization
    time), https with a host, and a native app's private-use scheme (RFC 8252
    §7.1, e.g. `cursor://…` or `com.example.app:/cb`; the code it receives is
    useless without the PKCE verifier). Never a fragment, user info, or a scheme
    a browser handles itself (javascript:, data:, file:, …).
    """
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI_LENGTH:
        return f"must be a URI of at most {MAX_URI_LENGTH} characters"
    if not uri.isascii() or any(ch.isspace() or ord(ch) < 32 for ch in uri):
        return "must be ASCII without spaces or control characters"
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if "#" in uri:
        return "must not have a fragment"
    if "@" in parts.netloc:
        return "must not carry user info"
    if scheme == "http":
        if not _is_loopback(parts.hostname or ""):
            return "http is allowed only on a loopback address (127.0.0.1, [::1] or localhost)"
        return None
    if scheme == "https":
        return None if parts.hostname else "https URI needs a host"
    if scheme and scheme not in FORBIDDEN_SCHEMES and PRIVATE_SCHEME.fullmatch(scheme):
        return None
    return "scheme must be https, http on loopback, or a native app's own scheme (such as cursor:)"


@dataclass(frozen=True)
class ClientMetadata:
    client_name: str
    redirect_uris: list[str]


def client_metadata_parse(data: Any) -> ClientMetadata:
    """Validate an RFC 7591 registration request; InvalidInput names the offending field."""
    if not isinstance(data, dict):
        raise InvalidInput("(body)", "must be a JSON object")
    uris = data.get("redirect_uris")
    if not isinstance(uris, list) or not uris:
        raise InvalidInput("redirect_uris", "a non-empty array of URIs is required")
    if len(uris) > MAX_REDIRECT_URIS:
        raise InvalidInput("redirect_uris", f"at most {MAX_REDIRECT_URIS} URIs")
    for index, uri in enumerate(uris):
        problem = redirect_uri_problem(uri)
        if problem:
            raise InvalidInput(f"redirect_uris.{index}", problem)
    name = data.get("client_name", "MCP client")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_CLIENT_NAME:
        raise InvalidInput("client_name", f"a string of 1 to {MAX_CLIENT_NAME} characters")
    grant_types = data.get("grant_types", ["authorization_code", "refresh_token"])
    if (
        not isinstance(grant_types, list)
        or "authorization_code" not in grant_types
        or not set(grant_types) <= {"authorization_code", "refresh_token"}
    ):
        raise InvalidInput("grant_types", "only authorization_code (with refresh_token) is offered")
    response_types = data.get("response_types", ["code"])
    if response_types != ["code"]:
        raise InvalidInput("response_types", 'only ["code"] is offered')
    method = data.get("token_endpoint_auth_method", "none")
    if method != "none":
        raise InvalidInput("token_endpoint_auth_method", 'only "none" (a public client using PKCE) is offered')
    scope = data.get("scope")
    if scope is not None:
        if not isinstance(scope, str) or len(scope) > 500:
            raise InvalidInput("scope", "a space-separated string of scopes")
        unknown = sorted(set(scope.split()) - set(OAUTH_SCOPES))
        if unknown:
            raise InvalidInput("scope", f"unknown scope {unknown[0]!r}")
    return ClientMetadata(client_name=" ".join(name.split()), redirect_uris=list(uris))


class RegistrationLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("too many registrations from this address")
        self.retry_after = retry_after


@transaction.atomic
def client_register(*, metadata: ClientMetadata, address: str) -> Application:
    """A public authorization-code client with no tenant; at most N per address per hour."""
    from audit.services import audit_record

    window_start = timezone.now() - timedelta(hours=1)
    recent = Application.objects.filter(  # unscoped: registrations are server-wide, counted per address
        registered_from=address or None, created__gte=window_start
    ).order_by("created")
    count = recent.count()
    if count >= settings.EASYMEMORY_OAUTH_REGISTRATIONS_PER_HOUR:
        oldest = recent.first()
        wait = (oldest.created + timedelta(hours=1) - timezone.now()).total_seconds() if oldest else 3600
        raise RegistrationLimited(max(1, int(wait) + 1))
    application = Application(
        tenant=None,
        name=metadata.client_name,
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(metadata.redirect_uris),
        registration_source=Application.RegistrationSource.DCR,
        registered_from=address or None,
        skip_authorization=False,
    )
    application.full_clean(exclude=["client_secret", "user"])
    application.save()
    audit_record(
        principal=None,
        global_chain=True,
        action="oauth_client.register",
        target_type="oauth_app",
        target_id=str(application.pk),
        detail={"client_name": application.name, "redirect_uris": len(metadata.redirect_uris)},
    )
    return application


# --- consent grants -------------------------------------------------------------------


def consent_scopes(requested: list[str], role: str) -> list[str]:
    """The requested scopes this role may hold (all of the role's when none were asked for)."""
    allowed = scopes_for(role)
    wanted = set(requested) if requested else set(allowed)
    return sorted(wanted & allowed)


def _tokens_delete(*, user_id: object, application: Application) -> int:
    """End every token, refresh token and unused code `user` holds for `application`."""
    deleted, _ = get_access_token_model().objects.filter(user_id=user_id, application=application).delete()
    get_refresh_token_model().objects.filter(user_id=user_id, application=application).delete()
    get_grant_model().objects.filter(user_id=user_id, application=application).delete()
    return int(deleted)


def _principal_for(membership: Membership) -> Principal:
    return Principal.for_role(
        membership.tenant, membership.role, actor_type="user", actor_id=str(membership.user_id), user=membership.user
    )


@transaction.atomic
def consent_grant_approve(
    *, membership: Membership, application: Application, scopes: list[str], resource: str
) -> ConsentGrant:
    """The member approves `application` in the membership's tenant. A previous live grant of
    the same client by the same member ends first, with its tokens."""
    previous = ConsentGrant.objects.select_for_update().filter(  # unscoped: the member's own grants, any tenant
        user_id=membership.user_id, application=application, revoked_at__isnull=True
    )
    for old in previous:
        old.revoked_at = timezone.now()
        old.save(update_fields=["revoked_at"])
    if previous:
        _tokens_delete(user_id=membership.user_id, application=application)
    grant = ConsentGrant.objects.create(
        tenant=membership.tenant,
        user_id=membership.user_id,
        application=application,
        scope=" ".join(scopes),
        resource=resource,
    )
    from audit.services import audit_record

    audit_record(
        principal=_principal_for(membership),
        action="oauth_grant.approve",
        target_type="oauth_grant",
        target_id=str(grant.pk),
        detail={"client_id": application.client_id, "client_name": application.name, "scope": grant.scope},
    )
    return grant


@transaction.atomic
def consent_grant_revoke(*, principal: Principal, grant: ConsentGrant) -> ConsentGrant:
    """End a grant and every token issued under it, at once. The member or a tenant admin."""
    if grant.revoked_at is not None:
        return grant
    grant.revoked_at = timezone.now()
    grant.save(update_fields=["revoked_at"])
    revoked = _tokens_delete(user_id=grant.user_id, application=grant.application)
    from audit.services import audit_record

    audit_record(
        principal=principal,
        tenant=grant.tenant,
        action="oauth_grant.revoke",
        target_type="oauth_grant",
        target_id=str(grant.pk),
        detail={"client_id": grant.application.client_id, "tokens_revoked": revoked},
    )
    return grant


def consent_grants_of_user(user: User) -> QuerySet[ConsentGrant]:
    """A member's own live grants, in every tenant they belong to."""
    grants = ConsentGrant.objects.filter(user=user, revoked_at__isnull=True)  # unscoped: the user's own grants
    return grants.select_related("tenant", "application").order_by("-created_at")


def consent_grants_of_tenant(tenant: Tenant) -> QuerySet[ConsentGrant]:
    return (
        scoped(ConsentGrant, tenant)
        .filter(revoked_at__isnull=True)
        .select_related("user", "application")
        .order_by("-created_at")
    )


def consent_grant_for_revoke(principal: Principal, grant_id: UUID | str) -> ConsentGrant | None:
    """A live grant the principal may revoke: their own (any tenant), or any in the tenant they
    administer. None for everything else, foreign ones included (the caller answers 404)."""
    live = ConsentGrant.objects.select_related("application", "tenant")  # unscoped: checked below
    try:
        grant = live.filter(pk=grant_id, revoked_at__isnull=True).first()
    except (ValidationError, ValueError, TypeError):  # a malformed id is "not found"
        return None
    if grant is None:
        return None
    own = principal.user is not None and grant.user_id == principal.user.pk
    admin_here = principal.has_scope("admin") and grant.tenant_id == principal.tenant_id
    return grant if own or admin_here else None


def consent_grant_for_token(user_id: int | str, application: Application) -> ConsentGrant | None:
    """The live grant that names a user token's tenant, with the member's current role there as
    `member_role` (None once they left the tenant): one query on every request such a token makes."""
    role = Membership.objects.filter(  # unscoped: the grant's own tenant, from the outer row
        tenant_id=OuterRef("tenant_id"), user_id=OuterRef("user_id")
    ).values("role")[:1]
    grants = ConsentGrant.objects.select_related("tenant").annotate(member_role=Subquery(role))  # unscoped: credential
    return grants.filter(user_id=user_id, application=application, revoked_at__isnull=True).first()

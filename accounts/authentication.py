"""DRF authentication: API keys (Bearer or X-API-Key), OAuth2 access tokens, the optional
bootstrap admin token, and dashboard sessions."""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.principal import Principal
from accounts.selectors import InvalidCredential, api_key_resolve, membership_get_for, membership_list_for
from accounts.services import api_key_touch

SESSION_TENANT_KEY = "easymemory_tenant_id"


def bearer_token(request: Any) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def principal_for_api_key(secret: str, *, fresh: bool = False) -> Principal:
    api_key = api_key_resolve(secret, fresh=fresh)
    api_key_touch(api_key=api_key)
    return Principal.for_role(
        api_key.tenant,
        api_key.role,
        actor_type="api_key",
        actor_id=str(api_key.pk),
        rate_per_min=api_key.rate_limit_per_min,
        rate_burst=api_key.rate_limit_burst,
    )


def principal_for_bearer(token: str, *, audience: str | None = None, fresh: bool = False) -> Principal:
    """The principal for any bearer credential: an API key (`emk_…`) or an OAuth2 access token.

    Raises InvalidCredential (unknown, malformed, revoked or expired). Used by REST,
    MCP and websocket authentication alike; `audience` is this server's MCP resource URL
    as the caller reached it, which a resource-bound OAuth token must name. `fresh`: read an API
    key from the database even if this process has it cached (a long-lived socket's re-check).
    """
    from accounts.oauth import principal_for_access_token

    if not token:
        raise InvalidCredential("empty credential")
    if token.startswith("emk_"):
        return principal_for_api_key(token, fresh=fresh)
    return principal_for_access_token(token, audience=audience)


def request_audience(request: Any) -> str:
    """This server's MCP resource URL as a Django request reached it (see accounts/oauth_grants.py)."""
    from accounts.oauth_grants import mcp_resource_url, server_origin

    return mcp_resource_url(server_origin(request.scheme, request.get_host()))


def is_admin_token(token: str | None) -> bool:
    """True for the configured EASYMEMORY_ADMIN_TOKEN (off when unset); constant-time."""
    configured: str = getattr(settings, "EASYMEMORY_ADMIN_TOKEN", "")
    if not configured or not token:
        return False
    return hmac.compare_digest(token.encode("utf-8"), configured.encode("utf-8"))


class AdminTokenAuthentication(authentication.BaseAuthentication):
    """The bootstrap EASYMEMORY_ADMIN_TOKEN for automation (off by default).

    It acts as a superuser: tenants, and with `X-EasyMemory-Tenant: <slug>` the
    admin of that tenant. Every action it takes is audited as actor `admin_token`.
    """

    def authenticate(self, request: Request) -> tuple[Principal, Principal] | None:
        token = bearer_token(request)
        if not is_admin_token(token):
            return None
        slug = request.META.get("HTTP_X_EASYMEMORY_TENANT", "").strip()
        tenant = None
        if slug:
            from accounts.models import Tenant

            tenant = Tenant.objects.filter(slug=slug).first()
            if tenant is None:
                raise exceptions.AuthenticationFailed("X-EasyMemory-Tenant names no tenant")
        principal = Principal.superuser(tenant, actor_type="admin_token", actor_id="bootstrap")
        return principal, principal

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="easymemory"'


class OAuthBearerAuthentication(authentication.BaseAuthentication):
    """OAuth2 access tokens from POST /oauth/token (any bearer that is not an `emk_` key)."""

    def authenticate(self, request: Request) -> tuple[Principal, Principal] | None:
        token = bearer_token(request)
        if not token or token.startswith("emk_") or "HTTP_X_API_KEY" in request.META:
            return None
        from accounts.oauth import principal_for_access_token

        try:
            principal = principal_for_access_token(token, audience=request_audience(request._request))
        except InvalidCredential as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        return principal, principal

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="easymemory"'


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Principal, Principal] | None:
        secret = request.META.get("HTTP_X_API_KEY") or bearer_token(request)
        if not secret or (not secret.startswith("emk_") and "HTTP_X_API_KEY" not in request.META):
            return None  # not ours (an OAuth token is handled by its own class)
        try:
            principal = principal_for_api_key(secret)
        except InvalidCredential as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        return principal, principal

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="easymemory"'


def principal_for_session(request: Any) -> Principal | None:
    """The dashboard user's principal in the tenant chosen in their session (or their first)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    chosen = request.session.get(SESSION_TENANT_KEY)
    membership = membership_get_for(user, chosen) if chosen else None
    if membership is None:
        membership = membership_list_for(user).first()
    if user.is_superuser:
        return Principal.superuser(
            membership.tenant if membership else None, actor_type="user", actor_id=str(user.pk), user=user
        )
    if membership is None:
        return None
    return Principal.for_role(membership.tenant, membership.role, actor_type="user", actor_id=str(user.pk), user=user)


class SessionTenantAuthentication(authentication.SessionAuthentication):
    def authenticate(self, request: Request) -> tuple[Principal, Principal] | None:
        django_request = request._request
        if not getattr(django_request, "user", None) or not django_request.user.is_authenticated:
            return None
        principal = principal_for_session(django_request)
        if principal is None:
            return None
        self.enforce_csrf(request)
        return principal, principal


class BenchAuthentication(authentication.BaseAuthentication):
    """Only under config.bench_settings (refused in team mode): every request is
    the oldest admin API key's principal, resolved once per process, for bench/auth_overhead.py."""

    _principal: Principal | None = None

    def authenticate(self, request: Request) -> tuple[Principal, Principal] | None:
        if not settings.EASYMEMORY_SECURITY_DISABLED_FOR_BENCH:
            return None
        if BenchAuthentication._principal is None:
            from accounts.models import ApiKey

            # unscoped: bench only; the oldest admin key of any tenant.
            keys = ApiKey.objects.select_related("tenant")  # unscoped: see above
            key = keys.filter(role="admin").order_by("created_at").first()
            if key is None:
                return None
            BenchAuthentication._principal = Principal.for_role(
                key.tenant, key.role, actor_type="api_key", actor_id=str(key.pk)
            )
        return BenchAuthentication._principal, BenchAuthentication._principal

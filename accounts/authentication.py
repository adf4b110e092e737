"""DRF authentication: API keys (Bearer or X-API-Key) and dashboard sessions."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.principal import Principal
from accounts.selectors import InvalidCredential, api_key_resolve, membership_for, memberships_for
from accounts.services import api_key_touch

SESSION_TENANT_KEY = "easymemory_tenant_id"


def bearer_token(request: Any) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def principal_for_api_key(secret: str) -> Principal:
    api_key = api_key_resolve(secret)
    api_key_touch(api_key=api_key)
    return Principal.for_role(api_key.tenant, api_key.role, actor_type="api_key", actor_id=str(api_key.pk))


def principal_for_bearer(token: str) -> Principal:
    """The principal for any bearer credential (API key; OAuth tokens once that flow exists).

    Raises InvalidCredential. Used by REST, MCP and websocket authentication alike.
    """
    return principal_for_api_key(token)


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
    membership = membership_for(user, chosen) if chosen else None
    if membership is None:
        membership = memberships_for(user).first()
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

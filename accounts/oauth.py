"""OAuth2 client credentials on django-oauth-toolkit, bound to tenants.

An application's role caps the scopes it may request (accounts/roles.py); its
tokens resolve to a Principal of the application's tenant. The token,
revocation and introspection endpoints are audited like any other credential
use; introspection answers `active` only for tokens of the caller's own tenant.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
from typing import Any
from urllib.parse import unquote_plus

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.models import get_access_token_model
from oauth2_provider.oauth2_backends import OAuthLibCore
from oauth2_provider.scopes import BaseScopes
from oauth2_provider.views import RevokeTokenView, TokenView
from oauth2_provider.views.mixins import OAuthLibMixin
from oauthlib.common import Request as OauthlibRequest

from accounts.models import Application
from accounts.principal import Principal
from accounts.roles import OAUTH_SCOPES, scopes_for
from accounts.selectors import InvalidCredential


class RoleScopes(BaseScopes):
    """The scopes an application may ask for are those of its role."""

    def get_all_scopes(self) -> dict[str, str]:
        return dict(OAUTH_SCOPES)

    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        if application is None:
            return []
        if application.tenant_id is None:
            # A registered MCP client: what it gets is narrowed to the member's role at consent.
            return sorted(OAUTH_SCOPES)
        return sorted(scopes_for(application.role))

    def get_default_scopes(self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any) -> list[str]:
        return self.get_available_scopes(application, request)


def token_checksum(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def principal_for_access_token(raw: str, *, audience: str | None = None) -> Principal:
    """The principal of a live OAuth access token. Expired, revoked or unknown → InvalidCredential.

    A token a member granted to an MCP client acts as that member, with their current
    role in the tenant they chose (accounts/oauth_grants.py). A token bound to a
    resource (RFC 8707) is refused at any other `audience` (this server's `<origin>/mcp`
    for MCP, REST and the websocket alike).
    """
    from accounts.oauth_grants import consent_grant_for_token, resource_allows

    token = (
        get_access_token_model()
        .objects.select_related("application__tenant", "user")
        .filter(token_checksum=token_checksum(raw))
        .first()
    )
    if token is None or token.application is None:
        raise InvalidCredential("unknown or revoked access token")
    if token.is_expired():
        raise InvalidCredential("access token expired")
    if audience is not None and token.resource and not resource_allows(list(token.resource), audience):
        raise InvalidCredential("access token is for another resource")
    app: Application = token.application
    if token.user_id is not None:
        grant = consent_grant_for_token(token.user_id, app)
        if grant is None or not token.user.is_active:
            raise InvalidCredential("the grant behind this token was revoked")
        if audience is not None and not token.resource:
            raise InvalidCredential("access token is not bound to this resource")
        role = grant.member_role  # type: ignore[attr-defined]  # annotated by consent_grant_for_token
        if role is None:
            raise InvalidCredential("the member no longer belongs to this tenant")
        return Principal.for_role(
            grant.tenant,
            role,
            actor_type="user",
            actor_id=str(token.user_id),
            user=token.user,
            scopes=frozenset(token.scope.split()),
        )
    if app.tenant is None:
        raise InvalidCredential("unknown or revoked access token")  # e.g. a registration token
    return Principal.for_role(
        app.tenant,
        app.role,
        actor_type="oauth_app",
        actor_id=str(app.pk),
        scopes=frozenset(token.scope.split()),
        rate_per_min=app.rate_limit_per_min,
        rate_burst=app.rate_limit_burst,
    )


def _client_for(request: HttpRequest) -> Application | None:
    """The application a token request names (body or HTTP Basic), authenticated or not: for the audit."""
    client_id = request.POST.get("client_id", "")
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not client_id and header[:6].lower() == "basic ":
        try:
            client_id = unquote_plus(base64.b64decode(header[6:]).decode("utf-8").split(":", 1)[0])
        except (ValueError, UnicodeDecodeError):
            return None
    if not client_id:
        return None
    apps = Application.objects.select_related("tenant")  # unscoped: a client names itself by its client_id
    return apps.filter(client_id=client_id).first()


def _authenticated_client(request: HttpRequest) -> Application | None:
    core: OAuthLibCore = OAuthLibMixin.get_oauthlib_core()
    uri, method, body, headers = core._extract_params(request)
    oauth_request = OauthlibRequest(uri, method, body, headers)
    if not core.server.request_validator.authenticate_client(oauth_request):
        return None
    return Application.objects.select_related("tenant").get(pk=oauth_request.client.pk)  # unscoped: authenticated


def _member_principal(body: bytes) -> Principal | None:
    try:
        raw = json.loads(body)["access_token"]
        return principal_for_access_token(raw)
    except (ValueError, KeyError, TypeError, InvalidCredential):
        return None


def _app_principal(app: Application | None) -> Principal | None:
    if app is None or app.tenant is None:
        return None  # a registered MCP client has no tenant: its events go to the server-wide chain
    return Principal.for_role(app.tenant, app.role, actor_type="oauth_app", actor_id=str(app.pk))


@method_decorator(csrf_exempt, name="dispatch")
class AuditedTokenView(TokenView):
    """POST /oauth/token: client credentials, authorization code (PKCE) and refresh grants;
    every issue and refusal is audited."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        from audit.services import audit_record

        response = super().post(request, *args, **kwargs)
        if response.status_code != 200 and response.content.startswith(b"{"):
            # An error raised while saving the token (e.g. RFC 8707 invalid_target) comes without a type.
            response["Content-Type"] = "application/json"
        app = _client_for(request)
        ok = response.status_code == 200
        principal = _app_principal(app)
        if ok and app is not None and app.tenant_id is None:
            # A member's MCP client (code or refresh grant): recorded as that member, in the tenant they chose.
            principal = _member_principal(response.content)
        audit_record(
            principal=principal,
            action="oauth.token_issue",
            target_type="oauth_app",
            target_id=str(app.pk) if app else "",
            outcome="ok" if ok else "denied",
            detail={"grant_type": str(request.POST.get("grant_type", ""))[:40]}
            | ({} if ok else {"status": response.status_code, "client_known": app is not None}),
        )
        return response


@method_decorator(csrf_exempt, name="dispatch")
class AuditedRevokeTokenView(RevokeTokenView):
    """POST /oauth/revoke: a client revokes one of its own tokens (RFC 7009)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        from audit.services import audit_record

        response = super().post(request, *args, **kwargs)
        app = _client_for(request)
        audit_record(
            principal=_app_principal(app),
            action="oauth.token_revoke",
            target_type="oauth_app",
            target_id=str(app.pk) if app else "",
            outcome="ok" if response.status_code == 200 else "denied",
        )
        return response


@method_decorator(csrf_exempt, name="dispatch")
class IntrospectTokenApi(View):
    """POST /oauth/introspect (RFC 7662), authenticated with the caller's client credentials.

    DOT's own view answers for any token to any authenticated client; here a
    token of another tenant is reported inactive, exactly like an unknown one.
    """

    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        client = _authenticated_client(request)
        if client is None:
            response = JsonResponse({"error": "invalid_client"}, status=401)
            response["WWW-Authenticate"] = 'Basic realm="easymemory"'
            return response
        raw = request.POST.get("token")
        if not raw:
            return JsonResponse({"error": "invalid_request", "error_description": "token is required"}, status=400)
        token = (
            get_access_token_model()
            .objects.select_related("application")
            .filter(token_checksum=token_checksum(raw))
            .first()
        )
        if token is None or token.application is None or token.application.tenant_id != client.tenant_id:
            return JsonResponse({"active": False})
        if token.is_expired():
            return JsonResponse({"active": False})
        return JsonResponse(
            {
                "active": True,
                "scope": token.scope,
                "client_id": token.application.client_id,
                "exp": int(calendar.timegm(token.expires.timetuple())),
                "token_type": "Bearer",
            }
        )

"""The authorization server MCP clients discover: metadata, registration and consent.

- `/.well-known/oauth-protected-resource[/mcp]` (RFC 9728) names this server as
  the authorization server of its `/mcp` resource and lists the scopes.
- `/.well-known/oauth-authorization-server` (RFC 8414) lists the endpoints: PKCE
  S256 only, public clients (`none`) for the authorization code, client secrets
  for the tenant applications' client-credentials grant.
- `POST /oauth/register` (RFC 7591): public clients register themselves, unless an
  administrator turned it off; limited per client address.
- `GET/POST /oauth/authorize`: the member logs in (dashboard login), sees the
  client's name, picks the tenant, sees the scopes narrowed to their role there,
  and approves or denies. The client's own data comes only from its registration.

Client ID metadata documents are not offered (`client_id_metadata_document_supported`
is false): the server would have to fetch a URL the client names, from the internet.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.forms import AllowForm
from oauth2_provider.views import AuthorizationView
from oauthlib.oauth2.rfc6749.errors import CustomOAuth2Error

from accounts.models import Application
from accounts.oauth_grants import (
    RegistrationLimited,
    canonical_resource,
    client_metadata_parse,
    client_register,
    consent_grant_approve,
    consent_scopes,
    mcp_resource_url,
    registration_open,
    server_origin,
)
from accounts.requests import SignedInRequest
from accounts.roles import OAUTH_SCOPES
from accounts.selectors import membership_get_for, membership_list_for
from core.errors import InvalidInput

MAX_REGISTRATION_BYTES = 16 * 1024


def _origin(request: HttpRequest) -> str:
    return server_origin(request.scheme or "http", request.get_host())


def _cors(response: HttpResponse) -> HttpResponse:
    # Metadata is public and read by browser-based clients too (RFC 8414 §3, RFC 9728 §3).
    response["Access-Control-Allow-Origin"] = "*"
    return response


@never_cache
def protected_resource_metadata(request: HttpRequest, resource_path: str = "") -> HttpResponse:
    """RFC 9728 metadata for `/mcp` (also answered at the root well-known path)."""
    origin = _origin(request)
    return _cors(
        JsonResponse(
            {
                "resource": mcp_resource_url(origin),
                "authorization_servers": [origin],
                "scopes_supported": sorted(OAUTH_SCOPES),
                "bearer_methods_supported": ["header"],
                "resource_name": "EasyMemory",
            }
        )
    )


@never_cache
def authorization_server_metadata(request: HttpRequest) -> HttpResponse:
    """RFC 8414 metadata. The issuer is this server's origin, as the client reached it."""
    origin = _origin(request)
    data: dict[str, Any] = {
        "issuer": origin,
        "authorization_endpoint": f"{origin}/oauth/authorize",
        "token_endpoint": f"{origin}/oauth/token",
        "revocation_endpoint": f"{origin}/oauth/revoke",
        "introspection_endpoint": f"{origin}/oauth/introspect",
        "scopes_supported": sorted(OAUTH_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "client_id_metadata_document_supported": False,
    }
    if registration_open():
        data["registration_endpoint"] = f"{origin}/oauth/register"
    return _cors(JsonResponse(data))


def _registration_error(error: str, description: str, status: int = 400, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": error, "error_description": description, **extra}, status=status)


@method_decorator(csrf_exempt, name="dispatch")
class ClientRegistrationView(View):
    """POST /oauth/register (RFC 7591): an MCP client registers itself as a public client."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        if not registration_open():
            return _registration_error(
                "access_denied", "client registration is turned off on this server; ask an administrator", 403
            )
        if len(request.body) > MAX_REGISTRATION_BYTES:
            return _registration_error(
                "invalid_client_metadata", f"body larger than {MAX_REGISTRATION_BYTES} bytes", 413, field="(body)"
            )
        if request.content_type != "application/json":
            return _registration_error(
                "invalid_client_metadata", "send the metadata as application/json", 415, field="(body)"
            )
        try:
            data = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _registration_error("invalid_client_metadata", "body is not valid UTF-8 JSON", field="(body)")
        try:
            metadata = client_metadata_parse(data)
        except InvalidInput as exc:
            error = "invalid_redirect_uri" if exc.field.startswith("redirect_uris") else "invalid_client_metadata"
            return _registration_error(error, f"{exc.field}: {exc.message}", field=exc.field)
        try:
            application = client_register(metadata=metadata, address=request.META.get("REMOTE_ADDR", ""))
        except RegistrationLimited as exc:
            response = _registration_error(
                "too_many_requests", "too many client registrations from this address; retry later", 429
            )
            response["Retry-After"] = str(exc.retry_after)
            return response
        response = JsonResponse(
            {
                "client_id": application.client_id,
                "client_id_issued_at": int(application.created.timestamp()),
                "client_name": application.name,
                "redirect_uris": application.redirect_uris.split(),
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
                "scope": " ".join(sorted(OAUTH_SCOPES)),
            },
            status=201,
        )
        response["Cache-Control"] = "no-store"
        return response


class ConsentForm(AllowForm):
    tenant = forms.CharField(required=False, max_length=64)


def _invalid(description: str, credentials: dict[str, Any], error: str = "invalid_request") -> OAuthToolkitError:
    """An error sent back to the (already validated) redirect URI of the client."""
    return OAuthToolkitError(
        error=CustomOAuth2Error(error=error, description=description, state=credentials.get("state")),
        redirect_uri=credentials["redirect_uri"],
    )


@method_decorator(never_cache, name="dispatch")
class ConsentView(AuthorizationView):
    """GET/POST /oauth/authorize: django-oauth-toolkit's authorization endpoint with the
    dashboard's login and a consent page that chooses the tenant."""

    template_name = "dashboard/oauth/consent.html"
    form_class = ConsentForm

    def validate_authorization_request(self, request: HttpRequest) -> tuple[list[str], dict[str, Any]]:
        # DOT has checked the client and its redirect URI; what follows may redirect errors to it.
        scopes, credentials = super().validate_authorization_request(request)
        if credentials.get("response_type") != "code":
            raise _invalid("only response_type=code is offered", credentials, "unsupported_response_type")
        if not credentials.get("code_challenge") or credentials.get("code_challenge_method") != "S256":
            raise _invalid("PKCE with code_challenge_method=S256 is required", credentials)
        expected = canonical_resource(mcp_resource_url(_origin(request)))
        for resource in request.GET.getlist("resource"):
            if canonical_resource(resource) != expected:
                raise _invalid(f"this server issues tokens only for {expected}", credentials, "invalid_target")
        return scopes, credentials

    def get(self, request: SignedInRequest, *args: Any, **kwargs: Any) -> HttpResponse:  # signed in: DOT's login check
        if not membership_list_for(request.user).exists():
            return render(request, "dashboard/oauth/no_workspace.html", status=403)
        query = request.GET.copy()
        query.pop("approval_prompt", None)  # consent is asked every time: the tenant is chosen here
        if "resource" not in query:
            # Clients of older specifications send no resource: bind to this server's endpoint anyway.
            query["resource"] = mcp_resource_url(_origin(request))
        request.GET = query  # type: ignore[assignment]  # DOT reads the rewritten query from request.GET
        request.META["QUERY_STRING"] = query.urlencode()
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        requested = list(self.oauth2_data.get("scopes", []))
        choices = []
        for membership in membership_list_for(self.request.user):
            granted = consent_scopes(requested, membership.role)
            choices.append(
                {
                    "membership": membership,
                    "scopes": [OAUTH_SCOPES[name] for name in granted],
                    "usable": bool(granted),
                }
            )
        context.update(choices=choices, requested=[OAUTH_SCOPES.get(s, s) for s in requested])
        return context

    def form_valid(self, form: forms.Form) -> HttpResponse:
        from audit.services import audit_record

        data = form.cleaned_data
        application = (
            Application.objects.filter(client_id=data["client_id"]).first()  # unscoped: the client names itself
        )
        if application is None:
            return HttpResponse("unknown client", status=400, content_type="text/plain")
        if not data.get("allow"):
            audit_record(
                principal=None,
                global_chain=True,
                action="oauth_grant.deny",
                target_type="oauth_app",
                target_id=str(application.pk),
                actor=("user", str(self.request.user.pk)),
            )
            return super().form_valid(form)
        try:
            membership = membership_get_for(self.request.user, data["tenant"]) if data.get("tenant") else None
        except (ValidationError, ValueError):  # a malformed tenant id is no tenant of theirs
            membership = None
        if membership is None:
            return render(self.request, "dashboard/oauth/no_workspace.html", status=400)
        scopes = consent_scopes(data["scope"].split(), membership.role)
        expected = mcp_resource_url(_origin(self.request))
        resources = (data.get("resource") or expected).split()
        if not scopes or any(canonical_resource(r) != canonical_resource(expected) for r in resources):
            return render(self.request, "dashboard/oauth/no_workspace.html", status=400)
        data["scope"] = " ".join(scopes)
        data["resource"] = expected
        with transaction.atomic():
            consent_grant_approve(membership=membership, application=application, scopes=scopes, resource=expected)
            self.success_url = None
            response = super().form_valid(form)
            if not self.success_url:  # DOT refused (and redirected the error to the client): keep nothing
                transaction.set_rollback(True)
        return response

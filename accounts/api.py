"""The admin API: a tenant's API keys, OAuth applications and members (admin scope), and
tenants themselves (superusers). Validate, look up through the scoping helper, call one service."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.models import ApiKey, Application, Membership, Tenant
from accounts.permissions import principal_of
from accounts.principal import Principal
from accounts.roles import SUPERUSER_SCOPE
from accounts.scoping import get_scoped_or_404, scoped
from accounts.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    InvitationCreatedSerializer,
    InvitationCreateSerializer,
    InvitationSerializer,
    MemberInviteSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    OAuthAppCreateSerializer,
    OAuthAppSerializer,
    OAuthAppWithSecretSerializer,
    RateLimitSerializer,
    TenantCreateSerializer,
    TenantSerializer,
)
from audit.services import audit_record
from core.errors import InvalidInput

ADMIN = {"GET": "admin", "POST": "admin", "PATCH": "admin", "DELETE": "admin"}


def _validated(serializer_class: Any, data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _listed(principal: Principal, what: str, qs: QuerySet[Any]) -> QuerySet[Any]:
    audit_record(principal=principal, action=f"{what}.list", target_type=what)
    return qs


def _rate_limit_set(principal: Principal, credential: Any, body: Any) -> Any:
    if not isinstance(body, dict) or not set(body) & {"rate_limit_per_min", "rate_limit_burst"}:
        raise InvalidInput("rate_limit_per_min", "give rate_limit_per_min and/or rate_limit_burst (null: default)")
    unknown = sorted(set(body) - {"rate_limit_per_min", "rate_limit_burst"})
    if unknown:
        raise InvalidInput(unknown[0], "this field cannot be changed")
    data = _validated(RateLimitSerializer, body)
    per_min = data["rate_limit_per_min"] if "rate_limit_per_min" in body else credential.rate_limit_per_min
    burst = data["rate_limit_burst"] if "rate_limit_burst" in body else credential.rate_limit_burst
    return services.credential_rate_limit_set(principal=principal, credential=credential, per_min=per_min, burst=burst)


# --- API keys ------------------------------------------------------------------------


class ApiKeyCollectionApi(APIView):
    required_scopes = ADMIN

    @extend_schema(responses=ApiKeySerializer(many=True))
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        keys = _listed(principal, "api_key", scoped(ApiKey, principal.tenant).order_by("-created_at"))
        return Response(ApiKeySerializer(keys, many=True).data)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        data = _validated(ApiKeyCreateSerializer, request.data)
        if data["expires_at"] is not None and data["expires_at"] <= timezone.now():
            raise InvalidInput("expires_at", "must be in the future")
        created = services.api_key_create(
            tenant=principal.tenant,
            name=data["name"],
            role=data["role"],
            expires_at=data["expires_at"],
            created_by=principal.user if principal.user is not None else None,
            principal=principal,
            rate_limit_per_min=data["rate_limit_per_min"],
            rate_limit_burst=data["rate_limit_burst"],
        )
        body = ApiKeySerializer(created.api_key).data | {"secret": created.secret}
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyDetailApi(APIView):
    required_scopes = ADMIN

    @extend_schema(responses=ApiKeySerializer)
    def get(self, request: Request, key_id: str) -> Response:
        principal = principal_of(request)
        api_key = get_scoped_or_404(ApiKey, principal.tenant, pk=key_id)
        return Response(ApiKeySerializer(api_key).data)

    @extend_schema(request=RateLimitSerializer, responses=ApiKeySerializer, description="Sets the key's rate limit.")
    def patch(self, request: Request, key_id: str) -> Response:
        principal = principal_of(request)
        api_key = get_scoped_or_404(ApiKey, principal.tenant, pk=key_id)
        api_key = _rate_limit_set(principal, api_key, request.data)
        return Response(ApiKeySerializer(api_key).data)

    @extend_schema(responses=ApiKeySerializer, description="Revokes the key (it stays listed, revoked).")
    def delete(self, request: Request, key_id: str) -> Response:
        principal = principal_of(request)
        api_key = get_scoped_or_404(ApiKey, principal.tenant, pk=key_id)
        services.api_key_revoke(api_key=api_key, principal=principal)
        return Response(ApiKeySerializer(api_key).data)


# --- OAuth applications ----------------------------------------------------------------


class OAuthAppCollectionApi(APIView):
    required_scopes = ADMIN

    @extend_schema(responses=OAuthAppSerializer(many=True))
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        apps = _listed(principal, "oauth_app", scoped(Application, principal.tenant).order_by("-created"))
        return Response(OAuthAppSerializer(apps, many=True).data)

    @extend_schema(request=OAuthAppCreateSerializer, responses={201: OAuthAppWithSecretSerializer})
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        data = _validated(OAuthAppCreateSerializer, request.data)
        created = services.oauth_app_create(
            principal=principal,
            name=data["name"],
            role=data["role"],
            rate_limit_per_min=data["rate_limit_per_min"],
            rate_limit_burst=data["rate_limit_burst"],
        )
        body = OAuthAppSerializer(created.application).data | {"client_secret": created.client_secret}
        return Response(body, status=status.HTTP_201_CREATED)


class OAuthAppDetailApi(APIView):
    required_scopes = ADMIN

    @extend_schema(responses=OAuthAppSerializer)
    def get(self, request: Request, app_id: str) -> Response:
        principal = principal_of(request)
        return Response(OAuthAppSerializer(get_scoped_or_404(Application, principal.tenant, pk=app_id)).data)

    @extend_schema(request=RateLimitSerializer, responses=OAuthAppSerializer, description="Sets the rate limit.")
    def patch(self, request: Request, app_id: str) -> Response:
        principal = principal_of(request)
        application = get_scoped_or_404(Application, principal.tenant, pk=app_id)
        return Response(OAuthAppSerializer(_rate_limit_set(principal, application, request.data)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, app_id: str) -> Response:
        principal = principal_of(request)
        application = get_scoped_or_404(Application, principal.tenant, pk=app_id)
        services.oauth_app_delete(principal=principal, application=application)
        return Response(status=status.HTTP_204_NO_CONTENT)


class OAuthAppRotateSecretApi(APIView):
    required_scopes = ADMIN

    @extend_schema(request=None, responses=OAuthAppWithSecretSerializer)
    def post(self, request: Request, app_id: str) -> Response:
        principal = principal_of(request)
        application = get_scoped_or_404(Application, principal.tenant, pk=app_id)
        rotated = services.oauth_app_rotate_secret(principal=principal, application=application)
        return Response(OAuthAppSerializer(rotated.application).data | {"client_secret": rotated.client_secret})


# --- members ---------------------------------------------------------------------------


class MemberCollectionApi(APIView):
    required_scopes = ADMIN

    @extend_schema(responses=MemberSerializer(many=True))
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        qs = scoped(Membership, principal.tenant).select_related("user").order_by("user__username")
        return Response(MemberSerializer(_listed(principal, "membership", qs), many=True).data)

    @extend_schema(request=MemberInviteSerializer, responses={201: MemberSerializer})
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        data = _validated(MemberInviteSerializer, request.data)
        membership = services.member_invite(principal=principal, username=data["username"], role=data["role"])
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(APIView):
    required_scopes = ADMIN

    def _get(self, principal: Principal, member_id: str) -> Membership:
        members = scoped(Membership, principal.tenant).select_related("user")
        return get_scoped_or_404(members, principal.tenant, pk=member_id)

    @extend_schema(responses=MemberSerializer)
    def get(self, request: Request, member_id: str) -> Response:
        principal = principal_of(request)
        return Response(MemberSerializer(self._get(principal, member_id)).data)

    @extend_schema(request=MemberRoleSerializer, responses=MemberSerializer)
    def patch(self, request: Request, member_id: str) -> Response:
        principal = principal_of(request)
        membership = self._get(principal, member_id)
        data = _validated(MemberRoleSerializer, request.data)
        membership = services.member_set_role(principal=principal, membership=membership, role=data["role"])
        return Response(MemberSerializer(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, member_id: str) -> Response:
        principal = principal_of(request)
        services.member_remove(principal=principal, membership=self._get(principal, member_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- tenants (superusers) --------------------------------------------------------------

SUPERUSER = {"GET": SUPERUSER_SCOPE, "POST": SUPERUSER_SCOPE, "DELETE": SUPERUSER_SCOPE}


class TenantCollectionApi(APIView):
    required_scopes = SUPERUSER

    @extend_schema(responses=TenantSerializer(many=True))
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        audit_record(principal=principal, global_chain=True, action="tenant.list", target_type="tenant")
        return Response(TenantSerializer(Tenant.objects.order_by("slug"), many=True).data)

    @extend_schema(request=TenantCreateSerializer, responses={201: TenantSerializer})
    def post(self, request: Request) -> Response:
        data = _validated(TenantCreateSerializer, request.data)
        tenant = services.tenant_create(name=data["name"], slug=data["slug"] or None, principal=principal_of(request))
        return Response(TenantSerializer(tenant).data, status=status.HTTP_201_CREATED)


class TenantDetailApi(APIView):
    required_scopes = SUPERUSER

    def _get(self, tenant_id: str) -> Tenant:
        # Tenants are not tenant-owned rows: superusers see them all, so no scoping helper here.
        from django.http import Http404

        tenant = Tenant.objects.filter(pk=tenant_id).first() if _is_uuid(tenant_id) else None
        if tenant is None:
            raise Http404("not found")
        return tenant

    @extend_schema(responses=TenantSerializer)
    def get(self, request: Request, tenant_id: str) -> Response:
        return Response(TenantSerializer(self._get(tenant_id)).data)

    @extend_schema(responses={204: None}, description="Deletes the tenant and all its data; its audit events stay.")
    def delete(self, request: Request, tenant_id: str) -> Response:
        services.tenant_delete(tenant=self._get(tenant_id), principal=principal_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


# --- invitations (issue 19): how people join a tenant ----------------------------------


def _invitation_body(invitation: Any) -> dict[str, Any]:
    from accounts.invitations import invitation_state

    data = {name: getattr(invitation, name) for name in InvitationSerializer().fields.keys() if name != "state"}
    return dict(InvitationSerializer({**data, "state": invitation_state(invitation)}).data)


class InvitationCollectionApi(APIView):
    required_scopes = ADMIN

    @extend_schema(responses=InvitationSerializer(many=True))
    def get(self, request: Request) -> Response:
        from accounts.invitations import invitation_list_for

        principal = principal_of(request)
        invitations = _listed(principal, "invitation", invitation_list_for(principal.tenant))
        return Response([_invitation_body(invitation) for invitation in invitations])

    @extend_schema(request=InvitationCreateSerializer, responses={201: InvitationCreatedSerializer})
    def post(self, request: Request) -> Response:
        from django.urls import reverse

        from accounts.invitations import invitation_create

        principal = principal_of(request)
        data = _validated(InvitationCreateSerializer, request.data)
        link_base = request.build_absolute_uri(reverse("dashboard:invitation-accept", args=["TOKEN"])).replace(
            "TOKEN/", ""
        )
        created = invitation_create(
            principal=principal,
            role=data["role"],
            email=data["email"],
            expires_in_days=data["expires_in_days"],
            link_base=link_base,
        )
        body = _invitation_body(created.invitation) | {"url": f"{link_base}{created.token}/"}
        return Response(body, status=status.HTTP_201_CREATED)


class InvitationDetailApi(APIView):
    required_scopes = ADMIN

    @extend_schema(responses=InvitationSerializer)
    def get(self, request: Request, invitation_id: str) -> Response:
        from accounts.models import Invitation

        principal = principal_of(request)
        return Response(_invitation_body(get_scoped_or_404(Invitation, principal.tenant, pk=invitation_id)))

    @extend_schema(responses=InvitationSerializer, description="Revokes the invitation: its link stops working.")
    def delete(self, request: Request, invitation_id: str) -> Response:
        from accounts.invitations import invitation_revoke
        from accounts.models import Invitation

        principal = principal_of(request)
        invitation = get_scoped_or_404(Invitation, principal.tenant, pk=invitation_id)
        return Response(_invitation_body(invitation_revoke(principal=principal, invitation=invitation)))

"""/v1/admin/…: the admin API."""

from django.urls import path

from accounts import api

urlpatterns = [
    path("api-keys", api.ApiKeyCollectionApi.as_view(), name="admin-api-keys"),
    path("api-keys/<str:key_id>", api.ApiKeyDetailApi.as_view(), name="admin-api-key"),
    path("oauth-apps", api.OAuthAppCollectionApi.as_view(), name="admin-oauth-apps"),
    path("oauth-apps/<str:app_id>", api.OAuthAppDetailApi.as_view(), name="admin-oauth-app"),
    path("oauth-apps/<str:app_id>/rotate-secret", api.OAuthAppRotateSecretApi.as_view(), name="admin-oauth-app-rotate"),
    path("members", api.MemberCollectionApi.as_view(), name="admin-members"),
    path("members/<str:member_id>", api.MemberDetailApi.as_view(), name="admin-member"),
    path("invitations", api.InvitationCollectionApi.as_view(), name="admin-invitations"),
    path("invitations/<str:invitation_id>", api.InvitationDetailApi.as_view(), name="admin-invitation"),
    path("tenants", api.TenantCollectionApi.as_view(), name="admin-tenants"),
    path("tenants/<str:tenant_id>", api.TenantDetailApi.as_view(), name="admin-tenant"),
]

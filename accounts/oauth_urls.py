"""/oauth/…: client credentials token, revocation and introspection (all public: the
client authenticates with its own id and secret)."""

from django.urls import path

from accounts import oauth

urlpatterns = [
    path("token", oauth.AuditedTokenView.as_view(), name="oauth-token"),
    path("revoke", oauth.AuditedRevokeTokenView.as_view(), name="oauth-revoke"),
    path("introspect", oauth.IntrospectTokenApi.as_view(), name="oauth-introspect"),
]

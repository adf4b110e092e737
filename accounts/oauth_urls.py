"""/oauth/…: token (client credentials, authorization code, refresh), revocation and
introspection (the client authenticates itself), registration and the consent page."""

from django.urls import path

from accounts import oauth, oauth_server

urlpatterns = [
    path("token", oauth.AuditedTokenView.as_view(), name="oauth-token"),
    path("revoke", oauth.AuditedRevokeTokenView.as_view(), name="oauth-revoke"),
    path("introspect", oauth.IntrospectTokenApi.as_view(), name="oauth-introspect"),
    path("register", oauth_server.ClientRegistrationView.as_view(), name="oauth-register"),
    path("authorize", oauth_server.ConsentView.as_view(), name="oauth-authorize"),
]

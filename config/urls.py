from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import oauth_server
from config import health
from core.metrics import metrics_view

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("v1/", include("memory.urls")),
    path("v1/", include("ingest.urls")),
    path("v1/", include("graph.urls")),
    path("v1/", include("agent.urls")),  # sdk-clients: the OpenAI-compatible memory proxy
    path("v1/admin/", include("accounts.urls")),
    path("v1/audit", include("audit.urls")),
    path("oauth/", include("accounts.oauth_urls")),
    # MCP authorization discovery (issue 17): RFC 9728 at the root and for /mcp, RFC 8414.
    path(
        ".well-known/oauth-protected-resource",
        oauth_server.protected_resource_metadata,
        name="oauth-protected-resource",
    ),
    path(
        ".well-known/oauth-protected-resource/mcp",
        oauth_server.protected_resource_metadata,
        name="oauth-protected-resource-mcp",
    ),
    path(
        ".well-known/oauth-authorization-server",
        oauth_server.authorization_server_metadata,
        name="oauth-authorization-server",
    ),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("django-admin/", admin.site.urls),
    path("", include("dashboard.urls")),
]

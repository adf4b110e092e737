from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import health
from config.metrics import metrics_view

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("v1/", include("memory.urls")),
    path("v1/", include("ingest.urls")),
    path("v1/", include("graph.urls")),
    path("v1/admin/", include("accounts.urls")),
    path("v1/audit", include("audit.urls")),
    path("oauth/", include("accounts.oauth_urls")),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("django-admin/", admin.site.urls),
    path("", include("dashboard.urls")),
]

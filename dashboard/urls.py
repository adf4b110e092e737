from django.contrib.auth import views as auth_views
from django.urls import path

from dashboard import graph_views, ingest_views, oauth_grant_views, security_views, views

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="dashboard/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("tenant/", views.tenant_switch, name="tenant-switch"),
    path("search/", views.search_page, name="search"),
    path("memories/", views.memory_list, name="memories"),
    path("memories/new/", views.memory_new, name="memory-new"),
    path("memories/<uuid:memory_id>/", views.memory_detail, name="memory-detail"),
    path("memories/<uuid:memory_id>/state/", views.memory_state, name="memory-state"),
    path("memories/<uuid:memory_id>/edit/", views.memory_edit, name="memory-edit"),
    path("memories/<uuid:memory_id>/delete/", views.memory_delete, name="memory-delete"),
    path("stats/", views.stats_page, name="stats"),
    path("entities/", graph_views.entity_list, name="entities"),
    path("entities/<str:entity_id>/", graph_views.entity_detail, name="entity-detail"),
    path("entities/<str:entity_id>/neighbors.json", graph_views.entity_neighbors, name="entity-neighbors"),
    path("graph/", graph_views.graph_page, name="graph"),
    path("ingest/", ingest_views.jobs, name="ingest"),
    path("ingest/upload/", ingest_views.upload, name="ingest-upload"),
    path("ingest/index/", ingest_views.index_path, name="ingest-index"),
    path("ingest/roots/", ingest_views.import_root_new, name="ingest-root-add"),
    path("ingest/roots/<uuid:root_id>/delete/", ingest_views.import_root_delete, name="ingest-root-delete"),
    path("ingest/jobs/<uuid:job_id>/", ingest_views.job_detail, name="ingest-job"),
    path("ingest/jobs/<uuid:job_id>/row/", ingest_views.job_row, name="ingest-job-row"),
    path("admin/api-keys/", views.api_keys, name="api-keys"),
    path("admin/api-keys/<uuid:key_id>/revoke/", views.api_key_revoke, name="api-key-revoke"),
    path("admin/api-keys/<uuid:key_id>/rate-limit/", security_views.api_key_rate_limit, name="api-key-rate-limit"),
    path("admin/members/", views.members, name="members"),
    path("admin/members/<int:member_id>/", views.member_update, name="member-update"),
    path("admin/oauth-apps/", security_views.oauth_apps, name="oauth-apps"),
    path("admin/oauth-apps/<int:app_id>/rotate/", security_views.oauth_app_rotate, name="oauth-app-rotate"),
    path("admin/oauth-apps/<int:app_id>/delete/", security_views.oauth_app_delete, name="oauth-app-delete"),
    path("admin/oauth-apps/<int:app_id>/rate-limit/", security_views.oauth_app_rate_limit, name="oauth-app-rate-limit"),
    path("admin/audit/", security_views.audit_log, name="audit"),
    path("admin/tenants/", views.tenants, name="tenants"),
    # MCP clients a member approved (issue 17)
    path("account/connected-apps/", oauth_grant_views.oauth_grants, name="oauth-grants"),
    path(
        "account/connected-apps/<str:grant_id>/revoke/",
        oauth_grant_views.oauth_grant_revoke,
        name="oauth-grant-revoke",
    ),
]

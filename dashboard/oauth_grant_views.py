"""Connected apps: the MCP clients a member approved (consent grants), and revoking them.

A member sees and revokes their own grants in every tenant; a tenant admin also sees
and revokes every grant made in the tenant they are acting in. Anything else is 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect

from accounts.oauth_grants import (
    consent_grant_for_revoke,
    consent_grant_revoke,
    consent_grants_of_tenant,
    consent_grants_of_user,
)
from dashboard.access import DashboardRequest, dashboard_view, page


@dashboard_view(get="memory:read")
def oauth_grants(request: DashboardRequest) -> HttpResponse:
    principal = request.principal
    own = consent_grants_of_user(request.user)
    tenant_grants = consent_grants_of_tenant(principal.tenant) if principal.has_scope("admin") else None
    return page(request, "dashboard/oauth/grants.html", own=own, tenant_grants=tenant_grants, section="oauth-grants")


@dashboard_view(post="memory:read")
def oauth_grant_revoke(request: DashboardRequest, grant_id: str) -> HttpResponse:
    principal = request.principal
    grant = consent_grant_for_revoke(principal, grant_id)
    if grant is None:
        raise Http404("not found")
    consent_grant_revoke(principal=principal, grant=grant)
    messages.success(request, f"{grant.application.name} disconnected; its tokens no longer work.")
    return redirect("dashboard:oauth-grants")

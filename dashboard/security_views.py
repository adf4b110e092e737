"""Admin pages for OAuth applications and the audit log (tenant admins)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone

from accounts import services as account_services
from accounts.models import ApiKey, Application
from accounts.scoping import get_scoped_or_404, scoped
from audit.selectors import AuditFilters, audit_list_for
from core.errors import InvalidInput
from dashboard.access import DashboardRequest, dashboard_view, page
from dashboard.forms import AuditFilterForm, OAuthAppForm, RateLimitForm
from dashboard.selectors import actor_labels_for

NEW_APP_SESSION = "dashboard_new_oauth_secret"
AUDIT_PAGE_SIZE = 50


def _remember_secret(request: HttpRequest, application: Application, secret: str) -> None:
    # Post/redirect/get: the secret rides in the session for exactly one page view.
    request.session[NEW_APP_SESSION] = {
        "id": application.pk,
        "name": application.name,
        "client_id": application.client_id,
        "secret": secret,
    }


@dashboard_view(get="admin", post="admin")
def oauth_apps(request: DashboardRequest) -> HttpResponse:
    principal = request.principal
    form = OAuthAppForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = account_services.oauth_app_create(
                principal=principal, name=form.cleaned_data["name"], role=form.cleaned_data["role"]
            )
        except InvalidInput as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            _remember_secret(request, created.application, created.client_secret)
            return redirect("dashboard:oauth-apps")
    new_app = request.session.pop(NEW_APP_SESSION, None)
    apps = scoped(Application, principal.tenant).order_by("-created")
    response = page(
        request, "dashboard/admin/oauth_apps.html", form=form, apps=apps, new_app=new_app, section="oauth-apps"
    )
    if new_app:
        response["Cache-Control"] = "no-store"
    return response


@dashboard_view(post="admin")
def oauth_app_rotate(request: DashboardRequest, app_id: int) -> HttpResponse:
    principal = request.principal
    application = get_scoped_or_404(Application, principal.tenant, pk=app_id)
    rotated = account_services.oauth_app_rotate_secret(principal=principal, application=application)
    _remember_secret(request, rotated.application, rotated.client_secret)
    return redirect("dashboard:oauth-apps")


@dashboard_view(post="admin")
def oauth_app_delete(request: DashboardRequest, app_id: int) -> HttpResponse:
    principal = request.principal
    application = get_scoped_or_404(Application, principal.tenant, pk=app_id)
    name = application.name
    account_services.oauth_app_delete(principal=principal, application=application)
    messages.success(request, f"Application {name} deleted; its tokens no longer work.")
    return redirect("dashboard:oauth-apps")


def _rate_limit_post(request: DashboardRequest, credential: ApiKey | Application, label: str) -> None:
    form = RateLimitForm(request.POST)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        messages.error(request, f"{form.fields[field].label}: {' '.join(str(error) for error in errors)}")
        return
    account_services.credential_rate_limit_set(
        principal=request.principal,
        credential=credential,
        per_min=form.cleaned_data["rate_limit_per_min"],
        burst=form.cleaned_data["rate_limit_burst"],
    )
    messages.success(request, f"Rate limit of {label} saved.")


@dashboard_view(post="admin")
def api_key_rate_limit(request: DashboardRequest, key_id: str) -> HttpResponse:
    principal = request.principal
    api_key = get_scoped_or_404(ApiKey, principal.tenant, pk=key_id)
    _rate_limit_post(request, api_key, f"{api_key.prefix}…")
    return redirect("dashboard:api-keys")


@dashboard_view(post="admin")
def oauth_app_rate_limit(request: DashboardRequest, app_id: int) -> HttpResponse:
    principal = request.principal
    application = get_scoped_or_404(Application, principal.tenant, pk=app_id)
    _rate_limit_post(request, application, application.name)
    return redirect("dashboard:oauth-apps")


@dashboard_view(get="admin")
def audit_log(request: DashboardRequest) -> HttpResponse:
    principal = request.principal
    form = AuditFilterForm(request.GET or None)
    filters, before = AuditFilters(), None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data

        def day(value: date | None, shift: int = 0) -> datetime | None:
            if not value:
                return None
            return timezone.make_aware(datetime.combine(value, time.min)) + timedelta(days=shift)

        filters = AuditFilters(
            action=data.get("action") or "",
            actor_type=data.get("actor_type") or "",
            outcome=data.get("outcome") or "",
            target_id=data.get("target_id") or "",
            since=day(data.get("since")),
            until=day(data.get("until"), 1),
        )
        before = data.get("before")
    events = list(audit_list_for(principal.tenant, filters, before_seq=before)[: AUDIT_PAGE_SIZE + 1])
    more = len(events) > AUDIT_PAGE_SIZE
    events = events[:AUDIT_PAGE_SIZE]
    actors = [f"{event.actor_type}:{event.actor_id}" for event in events]
    labels = actor_labels_for(principal.tenant, set(actors))
    rows = [(event, labels.get(actor, actor)) for event, actor in zip(events, actors, strict=True)]
    query = request.GET.copy()
    query.pop("before", None)
    return page(
        request,
        "dashboard/admin/audit.html",
        form=form,
        rows=rows,
        next_before=events[-1].seq if more and events else None,
        query=query.urlencode(),
        section="audit",
    )

"""A tenant's life cycle (rename, export, delete) and its audit chain (verify, export a range).

Superusers manage every tenant; a tenant's admins manage their own. Anyone else gets a 404 for a
tenant they are not a member of (so tenant ids reveal nothing) and a 403 in one they belong to.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Tenant
from accounts.principal import Principal
from accounts.requests import SignedInRequest
from accounts.roles import Role
from accounts.selectors import membership_get_for
from audit.chain import canonical_content
from audit.selectors import AuditFilters, audit_list_for, audit_verify
from audit.services import audit_record
from core.errors import InvalidInput
from dashboard.access import DashboardRequest, dashboard_view, page
from dashboard.forms import AuditFilterForm, TenantDeleteForm, TenantRenameForm
from dashboard.selectors import tenant_counts_for
from ingest.portability import export_lines

AUDIT_EXPORT_MAX = 1_000_000  # events per download; narrow the range for more


def _managed_tenant(request: SignedInRequest, tenant_id: UUID | str) -> tuple[Tenant, Principal]:
    """The tenant and a principal acting in it, if the session user may manage it."""
    user = request.user
    tenant = Tenant.objects.filter(pk=tenant_id).first()  # unscoped: tenants are checked just below
    if tenant is None:
        raise Http404("not found")
    actor_id = str(user.pk)
    if user.is_superuser:
        return tenant, Principal.superuser(tenant, actor_type="user", actor_id=actor_id, user=user)
    membership = membership_get_for(user, tenant.pk)
    if membership is None:
        raise Http404("not found")
    if membership.role != Role.ADMIN:
        raise PermissionError
    return tenant, Principal.for_role(tenant, membership.role, actor_type="user", actor_id=actor_id, user=user)


def _forbidden(request: DashboardRequest) -> HttpResponse:
    return page(request, "dashboard/forbidden.html", status=403)


@dashboard_view(get="memory:read", post="memory:read")
def tenant_detail(request: DashboardRequest, tenant_id: str) -> HttpResponse:
    try:
        tenant, principal = _managed_tenant(request, tenant_id)
    except PermissionError:
        return _forbidden(request)
    rename = TenantRenameForm(request.POST or None, initial={"name": tenant.name})
    if request.method == "POST" and rename.is_valid():
        try:
            account_services.tenant_rename(tenant=tenant, name=rename.cleaned_data["name"], principal=principal)
        except InvalidInput as exc:
            rename.add_error("name", exc.message)
        else:
            messages.success(request, f"Renamed to {tenant.name}.")
            return redirect("dashboard:tenant-detail", tenant_id=tenant.pk)
    return page(
        request,
        "dashboard/admin/tenant.html",
        managed=tenant,
        rename=rename,
        delete_form=TenantDeleteForm(),
        counts=tenant_counts_for(tenant),
        verify=request.session.pop(f"verify:{tenant.pk}", None),
        section="tenants" if request.user.is_superuser else "tenant",
    )


@dashboard_view(get="memory:read")
def tenant_export(request: DashboardRequest, tenant_id: str) -> HttpResponseBase:
    """The tenant's memories in the portability format (JSON Lines), streamed as a download."""
    try:
        tenant, principal = _managed_tenant(request, tenant_id)
    except PermissionError:
        return _forbidden(request)
    audit_record(
        principal=principal, tenant=tenant, action="tenant.export", target_type="tenant", target_id=str(tenant.pk)
    )
    lines = export_lines(tenant, graph=principal.has_scope("graph:read"))
    response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="easymemory-{tenant.slug}-{stamp}.jsonl"'
    return response


@dashboard_view(post="memory:read")
def tenant_delete(request: DashboardRequest, tenant_id: str) -> HttpResponse:
    """Delete the tenant and all its data, after the slug is typed as confirmation."""
    try:
        tenant, principal = _managed_tenant(request, tenant_id)
    except PermissionError:
        return _forbidden(request)
    form = TenantDeleteForm(request.POST)
    if not form.is_valid() or form.cleaned_data["confirm"].strip() != tenant.slug:
        messages.error(request, f"Not deleted: type the slug {tenant.slug} exactly to confirm.")
        return redirect("dashboard:tenant-detail", tenant_id=tenant.pk)
    name = tenant.name
    account_services.tenant_delete(tenant=tenant, principal=principal)
    messages.success(request, f"Tenant {name} and all its data deleted. Its audit trail is kept.")
    return redirect("dashboard:tenants" if request.user.is_superuser else "dashboard:account")


@dashboard_view(post="memory:read")
def tenant_verify(request: DashboardRequest, tenant_id: str) -> HttpResponse:
    """Walk the tenant's audit hash chain and show the result."""
    try:
        tenant, principal = _managed_tenant(request, tenant_id)
    except PermissionError:
        return _forbidden(request)
    report = audit_verify(tenant.pk)
    problems = [p.message for p in report.problems[:20]]
    audit_record(
        principal=principal, tenant=tenant, action="audit.verify", target_type="tenant", target_id=str(tenant.pk),
        detail={"events": report.events, "ok": report.ok},
    )  # fmt: skip
    request.session[f"verify:{tenant.pk}"] = {
        "ok": report.ok,
        "events": report.events,
        "problems": problems,
        "at": timezone.now().isoformat(timespec="seconds"),
    }
    if report.ok:
        messages.success(request, f"Audit chain of {tenant.name} verified: {report.events} events, intact.")
    else:
        messages.error(request, f"Audit chain of {tenant.name} is BROKEN: {'; '.join(problems)}")
    back = request.POST.get("next") or ""
    if back == "audit":
        return redirect("dashboard:audit")
    return redirect("dashboard:tenant-detail", tenant_id=tenant.pk)


def audit_filters_from(form: AuditFilterForm) -> AuditFilters:
    if not (form.is_bound and form.is_valid()):
        return AuditFilters()
    data = form.cleaned_data

    def day(value: date | None, shift: int = 0) -> datetime | None:
        if not value:
            return None
        return timezone.make_aware(datetime.combine(value, time.min)) + timedelta(days=shift)

    return AuditFilters(
        action=data.get("action") or "",
        actor_type=data.get("actor_type") or "",
        outcome=data.get("outcome") or "",
        target_id=data.get("target_id") or "",
        since=day(data.get("since")),
        until=day(data.get("until"), 1),
    )


@dashboard_view(get="admin")
def audit_export(request: DashboardRequest) -> HttpResponseBase:
    """The events the audit page's filters select, oldest first, as JSON Lines with their hashes
    (so the range can be checked against the chain elsewhere)."""
    principal = request.principal
    form = AuditFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        return HttpResponse(json.dumps({"error": form.errors.get_json_data()}), status=400,
                            content_type="application/json")  # fmt: skip
    filters = audit_filters_from(form)
    audit_record(principal=principal, action="audit.export", target_type="audit", detail={"action": filters.action})
    events = audit_list_for(principal.tenant, filters).order_by("seq")[:AUDIT_EXPORT_MAX]

    def lines() -> Iterator[str]:
        for event in events.iterator(chunk_size=2000):
            record = {"id": event.id, "seq": event.seq, **canonical_content(event)}
            record.update(prev_hash=event.prev_hash, hash=event.hash)
            yield json.dumps(record, default=str, ensure_ascii=False) + "\n"

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="audit-{principal.tenant.slug}-{stamp}.jsonl"'
    return response

"""Dashboard pages. Thin: parse the form, fetch through access helpers, call one service, render."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from accounts import services as account_services
from accounts.authentication import SESSION_TENANT_KEY
from accounts.models import ApiKey, Membership
from accounts.scoping import get_scoped_or_404
from accounts.selectors import api_key_list_for, membership_get_for
from core.errors import InvalidInput
from dashboard import presenters
from dashboard.access import DashboardRequest, dashboard_view, page
from dashboard.forms import (
    ApiKeyForm,
    MemberRoleForm,
    MemoryForm,
    MemoryListForm,
    SearchForm,
    TenantCreateForm,
    TenantSwitchForm,
)
from dashboard.selectors import (
    actor_labels_for,
    entities_mentioned_in,
    failed_memories_for,
    memories_per_day_for,
    tenant_list_all,
    tenant_storage_for,
)
from graph.selectors import graph_stats_for
from memory import services as memory_services
from memory.search import CANDIDATE_LISTS, Hit, memory_search_for, resolve_weights
from memory.selectors import (
    MemoryFilters,
    memory_get_for,
    memory_history_for,
    memory_list_for,
    memory_read_for,
    memory_stats_for,
)

PAGE_SIZE = 25
NEW_KEY_SESSION = "dashboard_new_api_key"


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def safe_next(request: HttpRequest, candidate: str | None, default: str) -> str:
    if candidate and url_has_allowed_host_and_scheme(candidate, {request.get_host()}, request.is_secure()):
        return candidate
    return default


def form_error(form: forms.BaseForm, exc: InvalidInput) -> None:
    """Put a service's InvalidInput on the form field it names (or the whole form)."""
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, exc.message)


# --- session and tenant ---------------------------------------------------------


def tenant_switch(request: HttpRequest) -> HttpResponse:
    """Choose the tenant the session acts in: only one of the user's own memberships."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = TenantSwitchForm(request.POST)
    if not form.is_valid():
        raise Http404("not found")
    membership = membership_get_for(request.user, form.cleaned_data["tenant"])
    if membership is None:
        raise Http404("not found")
    request.session[SESSION_TENANT_KEY] = str(membership.tenant_id)
    # A page of the old tenant (a memory's detail) would 404 in the new one: go to the section root.
    return HttpResponseRedirect(safe_next(request, form.cleaned_data.get("next"), reverse("dashboard:search")))


@dashboard_view(get="memory:read")
def home(request: DashboardRequest) -> HttpResponse:
    return redirect("dashboard:search")


# --- search -----------------------------------------------------------------------


@dashboard_view(get="memory:read")
def search_page(request: DashboardRequest) -> HttpResponse:
    principal = request.principal
    form = SearchForm(request.GET or None)
    explained: list[tuple[Hit, Any]] | None = None
    took_ms = None
    if form.is_valid() and form.cleaned_data.get("q", "").strip():
        started = time.perf_counter()
        try:
            hits = memory_search_for(
                principal, form.cleaned_data["q"], k=form.cleaned_data.get("k") or 10, filters=form.to_filters()
            )
        except InvalidInput as exc:
            form_error(form, exc)
        else:
            took_ms = round((time.perf_counter() - started) * 1000, 1)
            weights, rrf_k = resolve_weights(None), settings.EASYMEMORY_RRF_K
            explained = [(hit, presenters.explain(hit.evidence, weights=weights, rrf_k=rrf_k)) for hit in hits]
    template = "dashboard/partials/search_results.html" if is_htmx(request) else "dashboard/search.html"
    return page(
        request,
        template,
        form=form,
        hits=explained,
        took_ms=took_ms,
        signal_names=list(CANDIDATE_LISTS),
        section="search",
    )


# --- memories ----------------------------------------------------------------------


@dashboard_view(get="memory:read")
def memory_list(request: DashboardRequest) -> HttpResponse:
    principal = request.principal
    form = MemoryListForm(request.GET or None)
    valid = not form.is_bound or form.is_valid()
    filters, state = MemoryFilters(), ""
    if form.is_bound and valid:
        filters, state = form.to_filters(), form.cleaned_data.get("state") or ""
    memories = memory_list_for(principal, filters)
    if state:
        memories = memories.filter(enrichment_state=state)
    if not valid:
        memories = memories.none()
    paginator = Paginator(memories, PAGE_SIZE)
    page_obj = paginator.get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    template = "dashboard/partials/memory_rows.html" if is_htmx(request) else "dashboard/memories/list.html"
    return page(request, template, form=form, page_obj=page_obj, query=query.urlencode(), section="memories")


@dashboard_view(get="memory:write", post="memory:write")
def memory_new(request: DashboardRequest) -> HttpResponse:
    principal = request.principal
    form = MemoryForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            result = memory_services.memory_create(principal=principal, data=form.to_input())
        except InvalidInput as exc:
            form_error(form, exc)
        else:
            if result.created:
                messages.success(request, "Memory saved. Enrichment runs in the background.")
            else:
                messages.info(request, "This content was already remembered in this scope: here it is.")
            assert result.memory is not None  # None only when the memory policy declines an item
            return redirect("dashboard:memory-detail", memory_id=result.memory.id)
    return page(request, "dashboard/memories/form.html", form=form, memory=None, section="memories")


@dashboard_view(get="memory:read")
def memory_detail(request: DashboardRequest, memory_id: str) -> HttpResponse:
    principal = request.principal
    memory = memory_read_for(principal, memory_id)
    entries = list(memory_history_for(principal, memory.id))
    labels = actor_labels_for(principal.tenant, {entry.actor for entry in entries})
    history = presenters.history_rows(entries, labels)
    return page(
        request,
        "dashboard/memories/detail.html",
        memory=memory,
        history=history,
        metadata=presenters.json_text(memory.metadata),
        entities=entities_mentioned_in(principal.tenant, memory),
        section="memories",
    )


@dashboard_view(get="memory:read")
def memory_state(request: DashboardRequest, memory_id: str) -> HttpResponse:
    """The enrichment badge alone, polled by htmx while enrichment is pending."""
    memory = memory_get_for(request.principal, memory_id)
    return page(request, "dashboard/partials/enrichment_state.html", memory=memory)


@dashboard_view(get="memory:write", post="memory:write")
def memory_edit(request: DashboardRequest, memory_id: str) -> HttpResponse:
    principal = request.principal
    memory = memory_get_for(principal, memory_id)
    initial = {
        "content": memory.content,
        "kind": memory.kind,
        "tags": ", ".join(memory.tags),
        "importance": memory.importance,
        "user_ref": memory.user_ref,
        "agent_id": memory.agent_id,
        "session_id": memory.session_id,
        "occurred_at": memory.occurred_at,
        "metadata": memory.metadata,
    }
    form = MemoryForm(request.POST or None, initial=initial, editing=True)
    if request.method == "POST" and form.is_valid():
        try:
            memory_services.memory_update(principal=principal, memory=memory, changes=form.to_changes())
        except InvalidInput as exc:
            form_error(form, exc)
        else:
            messages.success(request, "Memory updated; the previous version is in its history.")
            return redirect("dashboard:memory-detail", memory_id=memory.id)
    return page(request, "dashboard/memories/form.html", form=form, memory=memory, section="memories")


@dashboard_view(get="memory:write", post="memory:write")
def memory_delete(request: DashboardRequest, memory_id: str) -> HttpResponse:
    principal = request.principal
    memory = memory_get_for(principal, memory_id)
    if request.method == "POST":
        memory_services.memory_delete(principal=principal, memory=memory)
        messages.success(request, "Memory deleted. Its history is kept.")
        return redirect("dashboard:memories")
    return page(request, "dashboard/memories/delete.html", memory=memory, section="memories")


# --- stats -------------------------------------------------------------------------------


@dashboard_view(get="memory:read")
def stats_page(request: DashboardRequest) -> HttpResponse:
    tenant = request.principal.tenant
    stats = memory_stats_for(tenant)
    days = memories_per_day_for(tenant, days=30)
    storage = tenant_storage_for(tenant)
    graph = graph_stats_for(tenant)
    return page(
        request,
        "dashboard/stats.html",
        stats=stats,
        storage=storage,
        database_size=presenters.human_bytes(stats["database_bytes"]),
        content_size=presenters.human_bytes(storage["content_bytes"]),
        chart=presenters.bar_chart(days),
        last_30_days=sum(day.count for day in days),
        failed=failed_memories_for(tenant),
        graph=graph,
        section="stats",
    )


# --- admin: API keys and members ---------------------------------------------------------


@dashboard_view(get="admin", post="admin")
def api_keys(request: DashboardRequest) -> HttpResponse:
    principal = request.principal
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data.get("expires_in_days")
        created = account_services.api_key_create(
            tenant=principal.tenant,
            name=form.cleaned_data["name"],
            role=form.cleaned_data["role"],
            created_by=request.user,
            expires_at=timezone.now() + timedelta(days=days) if days else None,
            principal=principal,
        )
        # Post/redirect/get: the secret rides in the session for exactly one page view.
        request.session[NEW_KEY_SESSION] = {"id": str(created.api_key.pk), "secret": created.secret}
        return redirect("dashboard:api-keys")
    new_key = request.session.pop(NEW_KEY_SESSION, None)
    response = page(
        request,
        "dashboard/admin/api_keys.html",
        form=form,
        keys=api_key_list_for(principal.tenant).select_related("created_by"),
        new_key=new_key,
        now=timezone.now(),
        section="api-keys",
    )
    if new_key:
        response["Cache-Control"] = "no-store"
    return response


@dashboard_view(post="admin")
def api_key_revoke(request: DashboardRequest, key_id: str) -> HttpResponse:
    principal = request.principal
    api_key = get_scoped_or_404(ApiKey, principal.tenant, pk=key_id)
    account_services.api_key_revoke(api_key=api_key, principal=principal)
    messages.success(request, f"Key {api_key.prefix}… revoked.")
    return redirect("dashboard:api-keys")


@dashboard_view(post="admin")
def member_update(request: DashboardRequest, member_id: int) -> HttpResponse:
    principal = request.principal
    membership = get_scoped_or_404(Membership, principal.tenant, pk=member_id)
    if "remove" in request.POST:
        try:
            account_services.member_remove(principal=principal, membership=membership)
        except InvalidInput as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{membership.user.get_username()} removed from {principal.tenant.name}.")
        return redirect("dashboard:members")
    form = MemberRoleForm(request.POST)
    if form.is_valid():
        try:
            account_services.member_set_role(principal=principal, membership=membership, role=form.cleaned_data["role"])
        except InvalidInput as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{membership.user.get_username()} is now {form.cleaned_data['role']}.")
    return redirect("dashboard:members")


# --- superusers: tenants -------------------------------------------------------------------


@dashboard_view(get="memory:read", post="memory:read")
def tenants(request: DashboardRequest) -> HttpResponse:
    """Every tenant on the server, for superusers only; creating one makes its creator its admin."""
    if not request.user.is_superuser:
        return page(request, "dashboard/forbidden.html", status=403)
    form = TenantCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = account_services.tenant_create_with_admin(
                name=form.cleaned_data["name"],
                slug=form.cleaned_data.get("slug") or None,
                admin=request.user,
                principal=request.principal,
            )
        except InvalidInput as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Tenant {created.name} created; you are its admin. Switch to it on the left.")
            return redirect("dashboard:tenants")
    return page(request, "dashboard/admin/tenants.html", form=form, tenants=tenant_list_all(), section="tenants")


# --- the browser's /favicon.ico (issue 19) -------------------------------------------------

FAVICON = settings.BASE_DIR / "static" / "dashboard" / "favicon.ico"


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page says; public, no data."""
    response = HttpResponse(FAVICON.read_bytes(), content_type="image/x-icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response

"""Bulk actions on memories chosen in the list or the search results: checked rows, or all that
the list's filters match. Writes become one background job (memory/bulk.py); export is a download."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, QueryDict, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.utils import timezone

from accounts.scoping import get_scoped_or_404, scoped
from audit.services import audit_record
from core.errors import InvalidInput
from dashboard.access import DashboardRequest, dashboard_view, page
from dashboard.forms import BulkForm, MemoryListForm
from ingest.portability import export_lines
from memory.bulk import bulk_ids_from, bulk_job_create, bulk_params_validate
from memory.models import BulkStatus, MemoryBulkJob
from memory.selectors import MemoryFilters, memory_list_for


def _selected_ids(request: DashboardRequest, form: BulkForm) -> list:
    principal = request.principal
    if not form.cleaned_data.get("all"):
        return bulk_ids_from(principal, request.POST.getlist("ids"))
    # "All matching this filter": the memory list's own filters, read from its query string.
    filter_form = MemoryListForm(QueryDict(form.cleaned_data.get("filters") or ""))
    if not filter_form.is_valid():
        raise InvalidInput("filters", "the list's filters are not valid")
    filters, state = filter_form.to_filters(), filter_form.cleaned_data.get("state") or ""
    memories = memory_list_for(principal, filters if filter_form.active_count() else MemoryFilters())
    if state:
        memories = memories.filter(enrichment_state=state)
    limit = settings.EASYMEMORY_BULK_MAX
    ids = list(memories.order_by("created_at", "id").values_list("id", flat=True)[: limit + 1])
    if len(ids) > limit:
        raise InvalidInput("all", f"the filter matches more than {limit} memories; narrow it first")
    return ids


@dashboard_view(post="memory:read")
def bulk_start(request: DashboardRequest) -> HttpResponseBase:
    """Check the selection, ask to confirm a deletion by its count, then start the job (or download)."""
    principal = request.principal
    form = BulkForm(request.POST)
    back = form.data.get("next") or ""
    back = back if back.startswith("/") and not back.startswith("//") else "/memories/"
    if not form.is_valid():
        return page(request, "dashboard/memories/bulk_error.html", status=400, errors=form.errors, back=back)
    action = form.cleaned_data["action"]
    if action != "export" and not principal.has_scope("memory:write"):
        return page(request, "dashboard/forbidden.html", status=403)
    try:
        ids = _selected_ids(request, form)
        params = form.params() if action != "export" else {}
        if action != "export":
            bulk_params_validate(action, params)
        if not ids:
            raise InvalidInput("ids", "select at least one memory")
    except InvalidInput as exc:
        return page(request, "dashboard/memories/bulk_error.html", status=400, message=exc.message, back=back)
    if action == "export":
        audit_record(
            principal=principal, action="memory.bulk.export", target_type="memory", detail={"count": len(ids)}
        )
        lines = export_lines(principal.tenant, ids, graph=principal.has_scope("graph:read"))
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="memories-{len(ids)}-{stamp}.jsonl"'
        return response
    expected = request.POST.get("expected", "")
    if action == "delete" and not (form.cleaned_data.get("confirmed") and expected == str(len(ids))):
        # Deletions cannot be undone: confirm with the exact count (asked again if it changed meanwhile).
        return page(
            request,
            "dashboard/memories/bulk_confirm.html",
            form=form,
            ids=request.POST.getlist("ids") if not form.cleaned_data.get("all") else [],
            count=len(ids),
            changed=bool(expected) and expected != str(len(ids)),
            back=back,
            section="memories",
        )
    try:
        job = bulk_job_create(principal=principal, action=action, memory_ids=ids, params=params)
    except InvalidInput as exc:
        return page(request, "dashboard/memories/bulk_error.html", status=400, message=exc.message, back=back)
    return redirect("dashboard:bulk-job", job_id=job.id)


@dashboard_view(get="memory:read")
def bulk_job(request: DashboardRequest, job_id: str) -> HttpResponse:
    """A bulk job's progress; the card polls itself (htmx) until the job ends."""
    principal = request.principal
    jobs = scoped(MemoryBulkJob, principal.tenant).defer("memory_ids")
    job = get_scoped_or_404(jobs, principal.tenant, pk=job_id)
    finished = job.status in (BulkStatus.DONE, BulkStatus.FAILED)
    percent = round(100 * (job.done + job.skipped + job.failed) / job.total) if job.total else 100
    partial = request.headers.get("HX-Request") == "true"
    template = "dashboard/memories/bulk_card.html" if partial else "dashboard/memories/bulk_job.html"
    return page(request, template, job=job, finished=finished, percent=percent, section="memories")

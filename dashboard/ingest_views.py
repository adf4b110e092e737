"""Dashboard pages for imports: upload a file / Slack export / mbox / JSON, index a server path,
and the jobs list whose rows update live from the /ws/events websocket."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect

from accounts.principal import Principal
from accounts.scoping import get_scoped_or_404, scoped
from core.errors import InvalidInput
from dashboard.access import DashboardRequest, dashboard_view, page
from dashboard.forms import IndexPathForm, UploadForm
from ingest import services as ingest_services
from ingest.models import ImportRoot, JobKind
from ingest.roots import PathRefused, import_root_add, import_root_remove, import_roots_for
from ingest.selectors import job_get_for, job_list_for
from ingest.sources.files import SUPPORTED, extension_of

JOB_PAGE_SIZE = 25
# Which file names each upload kind accepts (None: any; the importer checks the content).
UPLOAD_EXTENSIONS: dict[str, set[str] | None] = {
    JobKind.FILE.value: SUPPORTED,
    JobKind.SLACK.value: {".zip"},
    JobKind.MBOX.value: None,
    JobKind.JSON.value: None,
}


def _jobs_page(
    request: DashboardRequest, *, upload: UploadForm, index: IndexPathForm, status: int = 200
) -> HttpResponse:
    principal = request.principal
    page_obj = Paginator(job_list_for(principal), JOB_PAGE_SIZE).get_page(request.GET.get("page"))
    return page(
        request,
        "dashboard/ingest/jobs.html",
        status=status,
        upload_form=upload,
        index_form=index,
        page_obj=page_obj,
        import_roots=import_roots_for(principal.tenant),
        import_root_rows=scoped_roots(principal) if principal.has_scope("admin") else [],
        max_upload_mb=settings.EASYMEMORY_MAX_UPLOAD_BYTES // 1_000_000,
        section="ingest",
    )


def scoped_roots(principal: Principal) -> list[ImportRoot]:
    return list(scoped(ImportRoot, principal.tenant).order_by("path"))


@dashboard_view(post="admin")
def import_root_new(request: DashboardRequest) -> HttpResponse:
    principal = request.principal
    try:
        root = import_root_add(principal=principal, path=request.POST.get("path", ""))
    except (PathRefused, InvalidInput) as exc:
        messages.error(request, getattr(exc, "message", None) or str(exc))
    else:
        messages.success(request, f"Import root {root.path} added.")
    return redirect("dashboard:ingest")


@dashboard_view(post="admin")
def import_root_delete(request: DashboardRequest, root_id: str) -> HttpResponse:
    principal = request.principal
    root = get_scoped_or_404(ImportRoot, principal.tenant, pk=root_id)
    import_root_remove(principal=principal, root=root)
    messages.success(request, f"Import root {root.path} removed.")
    return redirect("dashboard:ingest")


@dashboard_view(get="memory:read")
def jobs(request: DashboardRequest) -> HttpResponse:
    return _jobs_page(request, upload=UploadForm(), index=IndexPathForm())


@dashboard_view(post="memory:write")
def upload(request: DashboardRequest) -> HttpResponse:
    principal = request.principal
    form = UploadForm(request.POST, request.FILES)
    if form.is_valid():
        kind, file = form.cleaned_data["kind"], form.cleaned_data["file"]
        name = file.name or "upload"
        allowed = UPLOAD_EXTENSIONS[kind]
        limit = settings.EASYMEMORY_MAX_UPLOAD_BYTES
        if file.size > limit:
            form.add_error("file", f"the file is over the {limit}-byte limit")
        elif file.size == 0:
            form.add_error("file", "the file is empty")
        elif allowed is not None and extension_of(name) not in allowed:
            form.add_error("file", f"unsupported file type for this import; use {', '.join(sorted(allowed))}")
        else:
            job = ingest_services.job_create(
                principal=principal, kind=kind, params={"filename": name, "size": file.size}, upload=(name, file.read())
            )
            messages.success(request, f"Import of {name} queued.")
            return redirect("dashboard:ingest-job", job_id=job.id)
    return _jobs_page(request, upload=form, index=IndexPathForm(), status=400)


@dashboard_view(post="memory:write")
def index_path(request: DashboardRequest) -> HttpResponse:
    principal = request.principal
    form = IndexPathForm(request.POST)
    if form.is_valid():
        try:
            job = ingest_services.index_path_start(
                principal=principal,
                path=form.cleaned_data["path"],
                pattern=form.cleaned_data["pattern"],
                recursive=form.cleaned_data["recursive"],
            )
        except (PathRefused, InvalidInput) as exc:
            form.add_error("path", getattr(exc, "message", None) or str(exc))
        else:
            messages.success(request, f"Indexing {job.params['path']} queued.")
            return redirect("dashboard:ingest-job", job_id=job.id)
    return _jobs_page(request, upload=UploadForm(), index=form, status=400)


@dashboard_view(get="memory:read")
def job_detail(request: DashboardRequest, job_id: str) -> HttpResponse:
    job = job_get_for(request.principal, job_id)
    return page(request, "dashboard/ingest/job.html", job=job, section="ingest")


@dashboard_view(get="memory:read")
def job_row(request: DashboardRequest, job_id: str) -> HttpResponse:
    """One job's row (or, with ?card=1, its summary card), refreshed when a websocket event names it."""
    job = job_get_for(request.principal, job_id)
    template = "dashboard/ingest/job_card.html" if request.GET.get("card") else "dashboard/ingest/job_row.html"
    return page(request, template, job=job)

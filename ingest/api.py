"""REST endpoints for imports, jobs and export: validate, call one service, answer with the job."""

from __future__ import annotations

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import principal_of
from accounts.scoping import get_scoped_or_404, scoped
from audit.services import audit_record
from core.errors import InvalidInput, PayloadTooLarge
from core.pagination import StrictCursorPagination
from core.schema import paginated
from ingest import services
from ingest.models import ImportRoot, JobKind
from ingest.portability import export_lines
from ingest.roots import PathRefused, import_root_add, import_root_remove
from ingest.selectors import job_get_for, job_list_for
from ingest.serializers import (
    ImportRootCreateSerializer,
    ImportRootSerializer,
    IndexRequestSerializer,
    JobSerializer,
)
from ingest.sources.files import SUPPORTED, extension_of

MULTIPART_SLACK = 64 * 1024  # room for the multipart envelope around the file
UPLOAD_SCHEMA = {
    "multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
}


class JobCursorPagination(StrictCursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200


def _accepted(job: services.IngestJob) -> Response:
    response = Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
    response["Location"] = f"/v1/jobs/{job.id}"
    return response


class JobListApi(APIView):
    required_scopes = {"GET": "memory:read"}

    @extend_schema(responses=paginated(JobSerializer(many=True), "PaginatedJobList"), operation_id="jobs_list")
    def get(self, request: Request) -> Response:
        paginator = JobCursorPagination()
        page = paginator.paginate_queryset(job_list_for(principal_of(request)), request, view=self)
        return paginator.get_paginated_response(JobSerializer(page, many=True).data)


class JobDetailApi(APIView):
    required_scopes = {"GET": "memory:read"}

    @extend_schema(responses=JobSerializer, operation_id="job_retrieve")
    def get(self, request: Request, job_id: str) -> Response:
        return Response(JobSerializer(job_get_for(principal_of(request), job_id)).data)


class IndexApi(APIView):
    """Index a directory on the server (only below the tenant's import roots)."""

    required_scopes = {"POST": "memory:write"}

    @extend_schema(request=IndexRequestSerializer, responses={202: JobSerializer})
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        serializer = IndexRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            job = services.index_path_start(
                principal=principal, path=data["path"], pattern=data["pattern"], recursive=data["recursive"]
            )
        except PathRefused as exc:
            raise PermissionDenied(str(exc)) from exc
        return _accepted(job)


class _UploadApi(APIView):
    """A multipart upload (field `file`) that becomes a job of `kind`."""

    required_scopes = {"POST": "memory:write"}
    parser_classes = [MultiPartParser]
    kind: str = ""
    extensions: set[str] | None = None

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        super().initial(request, *args, **kwargs)
        # Refuse an oversized body before reading it.
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        limit = settings.EASYMEMORY_MAX_UPLOAD_BYTES
        if length > limit + MULTIPART_SLACK:
            raise PayloadTooLarge("file", f"the upload is over the {limit}-byte limit")

    @extend_schema(request=UPLOAD_SCHEMA, responses={202: JobSerializer})
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        upload = request.FILES.get("file")
        if upload is None:
            raise InvalidInput("file", "send the file as multipart form field 'file'")
        limit = settings.EASYMEMORY_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise PayloadTooLarge("file", f"the file is over the {limit}-byte limit")
        if upload.size == 0:
            raise InvalidInput("file", "the file is empty")
        name = upload.name or "upload"
        if self.extensions is not None and extension_of(name) not in self.extensions:
            response = Response(
                {"error": f"unsupported file type; use one of {', '.join(sorted(self.extensions))}", "field": "file"},
                status=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            )
            return response
        job = services.job_create(
            principal=principal,
            kind=self.kind,
            params={"filename": name, "size": upload.size},
            upload=(name, upload.read()),
        )
        return _accepted(job)


class FileUploadApi(_UploadApi):
    kind = JobKind.FILE
    extensions = SUPPORTED


class SlackImportApi(_UploadApi):
    kind = JobKind.SLACK
    extensions = {".zip"}


class MboxImportApi(_UploadApi):
    kind = JobKind.MBOX


class JsonImportApi(_UploadApi):
    kind = JobKind.JSON


class ExportApi(APIView):
    required_scopes = {"GET": "memory:read"}

    @extend_schema(responses={(200, "application/x-ndjson"): OpenApiTypes.STR})
    def get(self, request: Request) -> StreamingHttpResponse:
        principal = principal_of(request)
        audit_record(principal=principal, action="memory.export", target_type="tenant")
        lines = export_lines(principal.tenant, graph=principal.has_scope("graph:read"))
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="easymemory-{principal.tenant.slug}.jsonl"'
        return response


# --- import roots (tenant admins) --------------------------------------------------------

ADMIN = {"GET": "admin", "POST": "admin", "DELETE": "admin"}


class ImportRootCollectionApi(APIView):
    """The server directories this tenant may import from (inside EASYMEMORY_IMPORT_ROOTS)."""

    required_scopes = ADMIN

    @extend_schema(responses=ImportRootSerializer(many=True))
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        audit_record(principal=principal, action="import_root.list", target_type="import_root")
        return Response(ImportRootSerializer(scoped(ImportRoot, principal.tenant).order_by("path"), many=True).data)

    @extend_schema(request=ImportRootCreateSerializer, responses={201: ImportRootSerializer})
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        serializer = ImportRootCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            root = import_root_add(principal=principal, path=serializer.validated_data["path"])
        except PathRefused as exc:
            raise PermissionDenied(str(exc)) from exc
        return Response(ImportRootSerializer(root).data, status=status.HTTP_201_CREATED)


class ImportRootDetailApi(APIView):
    required_scopes = ADMIN

    @extend_schema(responses={204: None})
    def delete(self, request: Request, root_id: str) -> Response:
        principal = principal_of(request)
        import_root_remove(principal=principal, root=get_scoped_or_404(ImportRoot, principal.tenant, pk=root_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

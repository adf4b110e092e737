"""MCP tools for ingest: add a file, index a server directory. Both start an ingest job (the
worker does the reading); they answer with the job at once. See mcp_server/registry.py."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from django.conf import settings

from accounts.principal import Principal
from audit.services import audit_record
from core.errors import InvalidInput, PayloadTooLarge
from ingest import services
from ingest.models import JobKind, JobStatus
from ingest.roots import PathRefused, import_path_check
from ingest.selectors import job_get_for
from ingest.serializers import IndexRequestSerializer, JobSerializer
from ingest.sources.files import SUPPORTED, extension_of
from mcp_server.registry import NULLABLE_TIME_OUT, TIME_OUT, ToolError, out_object, tool

WRITE = "memory:write"
READ = "memory:read"

_COUNT = {"type": "integer", "minimum": 0}
# JobSerializer's fields.
JOB_OUT = out_object(
    {
        "id": {"type": "string", "description": "UUID; pass it to ingest_job_get."},
        "kind": {"type": "string", "enum": list(JobKind.values)},
        "status": {"type": "string", "enum": list(JobStatus.values)},
        "params": {"type": "object"},
        "total": {"type": ["integer", "null"], "minimum": 0, "description": "Items to read, once known."},
        "done": _COUNT,
        "skipped": _COUNT,
        "failed": _COUNT,
        "memories_created": _COUNT,
        "memories_deleted": _COUNT,
        "stats": {"type": "object", "description": "Skip counts by reason."},
        "errors": {
            "type": "array",
            "items": out_object({"item": {"type": "string"}, "error": {"type": "string"}}, ["item", "error"]),
        },
        "error": {"type": "string"},
        "created_at": TIME_OUT,
        "started_at": NULLABLE_TIME_OUT,
        "finished_at": NULLABLE_TIME_OUT,
    },
    ["id", "kind", "status", "params", "total", "done", "skipped", "failed", "memories_created",
     "memories_deleted", "stats", "errors", "error", "created_at", "started_at", "finished_at"],
)  # fmt: skip
JOB_RESULT_OUT = out_object({"job": JOB_OUT}, ["job"])


def _refused(exc: PathRefused) -> ToolError:
    return ToolError(f"forbidden: {exc}")


def _file_bytes(principal: Principal, args: dict[str, Any]) -> tuple[str, bytes]:
    limit = settings.EASYMEMORY_MAX_UPLOAD_BYTES
    if ("path" in args) == ("content_base64" in args):
        raise InvalidInput("path", "give either path or content_base64 (with filename)")
    if "path" in args:
        try:
            path = import_path_check(tenant=principal.tenant, path=args["path"])
        except PathRefused as exc:
            audit_record(principal=principal, action="ingest.add_file", target_type="path", outcome="denied")
            raise _refused(exc) from exc
        if not path.is_file():
            raise InvalidInput("path", "not a file")
        if path.stat().st_size > limit:
            raise PayloadTooLarge("path", f"the file is over the {limit}-byte limit")
        return path.name, path.read_bytes()
    name = Path(args.get("filename") or "").name
    if not name:
        raise InvalidInput("filename", "filename is required with content_base64 (its extension names the type)")
    if len(args["content_base64"]) > limit * 4 // 3 + 4:
        raise PayloadTooLarge("content_base64", f"the file is over the {limit}-byte limit")
    try:
        data = base64.b64decode(args["content_base64"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("content_base64", "not valid base64") from exc
    return name, data


@tool(
    "memory_add_file",
    output_schema=JOB_RESULT_OUT,
    scope=WRITE,
    read_only=False,
    subject="job",
    description=(
        "Remember a document (.md, .markdown, .txt, .pdf, .docx, .html): it is split into passages that become "
        "searchable memories. Give either `path` (a file on the server, below the tenant's import roots) or the "
        "file itself as `content_base64` with its `filename`. Returns the ingest job at once; the work runs in "
        "the background (check it with ingest_job_get)."
    ),
    schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "path": {"type": "string", "maxLength": 1000, "description": "A file on the server."},
            "content_base64": {"type": "string", "description": "The file's bytes, base64-encoded."},
            "filename": {"type": "string", "maxLength": 255, "description": "Its name, e.g. notes.pdf."},
        },
    },
)
def memory_add_file(principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
    name, data = _file_bytes(principal, args)
    if extension_of(name) not in SUPPORTED:
        raise InvalidInput("filename", f"unsupported file type; use one of {', '.join(sorted(SUPPORTED))}")
    if not data:
        raise InvalidInput("content_base64" if "content_base64" in args else "path", "the file is empty")
    job = services.job_create(
        principal=principal, kind=JobKind.FILE, params={"filename": name, "size": len(data)}, upload=(name, data)
    )
    return {"job": dict(JobSerializer(job).data)}


@tool(
    "memory_index_path",
    output_schema=JOB_RESULT_OUT,
    scope=WRITE,
    read_only=False,
    subject="job",
    description=(
        "Index a directory on the server (a markdown vault, a notes folder) below the tenant's import roots: "
        "every matching file becomes searchable memories, and indexing it again picks up changes. Returns the "
        "ingest job at once; the work runs in the background (check it with ingest_job_get)."
    ),
    schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": {"type": "string", "maxLength": 1000, "description": "A directory on the server."},
            "pattern": {"type": "string", "maxLength": 200, "description": "File name pattern (default *.md)."},
            "recursive": {"type": "boolean", "description": "Include sub-directories (default true)."},
        },
    },
)
def memory_index_path(principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
    serializer = IndexRequestSerializer(data=args)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    try:
        job = services.index_path_start(
            principal=principal, path=data["path"], pattern=data["pattern"], recursive=data["recursive"]
        )
    except PathRefused as exc:
        raise _refused(exc) from exc
    return {"job": dict(JobSerializer(job).data)}


@tool(
    "ingest_job_get",
    output_schema=JOB_RESULT_OUT,
    scope=READ,
    subject="job",
    description="The state of an ingest job started by memory_add_file or memory_index_path: status and counts.",
    schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["id"],
        "properties": {"id": {"type": "string", "description": "The job id."}},
    },
)
def ingest_job_get(principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
    return {"job": dict(JobSerializer(job_get_for(principal, args["id"])).data)}

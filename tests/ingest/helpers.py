"""Builders for test sources (Slack zips, mailboxes, PDFs) and a job runner shortcut."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from accounts.principal import Principal
from ingest.models import ImportRoot, IngestJob
from ingest.services import job_create, job_run


def grant_root(tenant: Any, path: Any) -> ImportRoot:
    """Give `tenant` an import root, as the operator's command line would."""
    return ImportRoot.objects.create(tenant=tenant, path=str(path.resolve()), created_by="test")


def run(
    principal: Principal, kind: str, params: dict[str, Any] | None = None, upload: tuple[str, bytes] | None = None
) -> IngestJob:
    job = job_create(principal=principal, kind=kind, params=params or {}, upload=upload, enqueue=False)
    finished = job_run(str(job.id))
    assert finished is not None
    return finished


def slack_zip(
    channels: dict[str, dict[str, Any]],
    users: list[dict[str, Any]] | None = None,
    extra: dict[str, bytes] | None = None,
) -> bytes:
    """channels: {"general": {"2024-03-01": [messages...] or raw bytes}}"""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            "users.json",
            json.dumps(
                users
                if users is not None
                else [
                    {"id": "U1", "name": "alice", "real_name": "Alice Smith", "profile": {"display_name": "Alice"}},
                    {"id": "U2", "name": "bob", "profile": {"real_name": "Bob Jones"}},
                ]
            ),
        )
        zf.writestr("channels.json", json.dumps([{"id": f"C{i}", "name": n} for i, n in enumerate(channels)]))
        for channel, days in channels.items():
            for day, messages in days.items():
                body = messages if isinstance(messages, bytes) else json.dumps(messages).encode()
                zf.writestr(f"{channel}/{day}.json", body)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buffer.getvalue()


def minimal_pdf(text: str, pad_to: int = 0) -> bytes:
    """A one-page PDF whose page shows `text` (Helvetica), built by hand so pypdf can read it back."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    if pad_to:
        out.write(b"%" + b"x" * max(0, pad_to - out.tell()) + b"\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()

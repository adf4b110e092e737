from __future__ import annotations

import io
import json
from io import StringIO
from pathlib import Path

import docx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from ingest.models import IngestJob, IngestUpload
from ingest.services import job_run
from memory.models import Memory
from tests.conftest import Persona
from tests.ingest.helpers import grant_root, minimal_pdf

pytestmark = pytest.mark.django_db


def post_index(persona: Persona, path: Path | str):
    return persona.client().post("/v1/index", json.dumps({"path": str(path)}), content_type="application/json")


def test_index_refuses_paths_outside_the_allowlist_and_symlinks_leaving_it(writer: Persona, tmp_path: Path) -> None:
    root = tmp_path / "allowed"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "a.md").write_text("# A\nallowed text")
    secret = tmp_path / "private"
    secret.mkdir()
    (root / "escape").symlink_to(secret)
    assert post_index(writer, root).status_code == 403  # no roots configured: off
    grant_root(writer.tenant, root)
    for refused in (secret, root / "escape", root / ".." / "private", "/etc"):
        response = post_index(writer, refused)
        assert response.status_code == 403, refused
        assert "import roots" in response.json()["error"]
    assert post_index(writer, root / "missing").status_code == 422
    response = post_index(writer, root / "notes")
    assert response.status_code == 202
    job = job_run(response.json()["id"])
    assert job is not None and job.status == "done"
    assert Memory.objects.filter(tenant=writer.tenant, content__contains="allowed text").exists()
    assert not IngestJob.objects.filter(tenant=writer.tenant).exclude(pk=job.pk).exists()


def test_a_queued_index_job_rechecks_the_allowlist_when_it_runs(writer: Persona, tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\ntext")
    root = grant_root(writer.tenant, tmp_path)
    job_id = post_index(writer, tmp_path).json()["id"]
    root.delete()
    job = job_run(job_id)  # the tenant's root was removed in between
    assert job is not None and job.status == "failed"
    assert "import roots" in job.error
    assert not Memory.objects.exists()


def upload(persona: Persona, name: str, data: bytes):
    return persona.client().post("/v1/files", {"file": SimpleUploadedFile(name, data)}, format="multipart")


def upload_and_run(persona: Persona, name: str, data: bytes) -> IngestJob:
    response = upload(persona, name, data)
    assert response.status_code == 202, response.content
    job = job_run(response.json()["id"])
    assert job is not None
    return job


def docx_bytes(text: str) -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("plan.md", b"# Plan\nShip the parser in June.", "plan > Plan\n\nShip the parser in June."),
        ("notes.txt", "Caf\u00e9 opens at nine.".encode(), "notes.txt\n\nCaf\u00e9 opens at nine."),
        (
            "page.html",
            b"<html><head><style>p{}</style></head><body><p>Hello <b>web</b></p>"
            b"<script>alert(1)</script></body></html>",
            "page.html\n\nHello web",
        ),
        ("report.pdf", minimal_pdf("Quarterly revenue grew"), "report.pdf\n\nQuarterly revenue grew"),
        ("memo.docx", docx_bytes("The memo says hello"), "memo.docx\n\nThe memo says hello"),
    ],
)
def test_it_stores_the_text_of_each_supported_file_type(writer: Persona, name: str, data: bytes, expected: str) -> None:
    job = upload_and_run(writer, name, data)
    assert job.status == "done", job.error
    memory = Memory.objects.get(tenant=writer.tenant)
    assert memory.content == expected
    assert memory.kind == "document"
    assert memory.metadata["filename"] == name
    assert not IngestUpload.objects.filter(job=job).exists()  # the bytes go when the job ends
    again = upload_and_run(writer, name, data)
    assert again.memories_created == 0 and Memory.objects.count() == 1


def test_bad_files_get_clear_errors_and_store_nothing(writer: Persona) -> None:
    assert upload(writer, "empty.md", b"").status_code == 422
    response = upload(writer, "tool.exe", b"MZ\x90\x00")
    assert response.status_code == 415 and response.json()["field"] == "file"
    missing = writer.client().post("/v1/files", {}, format="multipart")
    assert missing.status_code == 422 and missing.json()["field"] == "file"
    assert writer.client().post("/v1/files", b"raw", content_type="text/plain").status_code == 415
    binary = upload_and_run(writer, "photo.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert binary.status == "failed"
    assert "binary" in binary.error
    broken_pdf = upload_and_run(writer, "broken.pdf", b"%PDF-1.4\nnot really")
    assert broken_pdf.status == "failed" and "PDF" in broken_pdf.error
    assert not Memory.objects.exists()


def test_a_pdf_over_the_upload_cap_is_refused(writer: Persona, tmp_path: Path) -> None:
    big = minimal_pdf("too big", pad_to=60_000)
    with override_settings(EASYMEMORY_MAX_UPLOAD_BYTES=50_000):
        response = upload(writer, "big.pdf", big)
        assert response.status_code == 413
        assert response.json()["field"] == "file"
        path = tmp_path / "big.pdf"
        path.write_bytes(big)
        with pytest.raises(CommandError, match="limit"):
            call_command("addfile", str(path), "--tenant", "acme", stdout=StringIO())
    assert not IngestJob.objects.exists() and not Memory.objects.exists()


def test_add_file_cli(writer: Persona, tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(minimal_pdf("Board approved the budget"))
    out = StringIO()
    call_command("addfile", str(path), "--tenant", "acme", stdout=out)
    assert "1 imported" in out.getvalue()
    assert Memory.objects.get(tenant=writer.tenant).content.endswith("Board approved the budget")

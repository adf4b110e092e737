"""Ingest pages: uploads and server-path indexing become jobs; the job pages show progress and per-item errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.principal import Principal
from ingest.models import ImportRoot, IngestJob, IngestUpload, JobStatus
from ingest.services import job_create, job_run
from memory.models import Memory
from tests.dashboard.conftest import Person

pytestmark = pytest.mark.django_db


def test_it_turns_an_upload_into_a_job_that_imports(people: dict[str, Person], tenant: Any) -> None:
    client = people["writer"].client()
    upload = SimpleUploadedFile("standup.md", b"# Standup\n\nThe Orion release is blocked on QA sign-off.\n")
    response = client.post("/ingest/upload/", {"kind": "file", "file": upload})
    job = IngestJob.objects.get(tenant=tenant)
    assert response.status_code == 302 and response["Location"] == f"/ingest/jobs/{job.id}/"
    assert job.kind == "file" and job.params["filename"] == "standup.md"
    assert bytes(IngestUpload.objects.get(job=job).data).startswith(b"# Standup")
    page = client.get(response["Location"]).content.decode()
    assert "queued" in page and "standup.md" in page

    job_run(str(job.id))  # what the worker does with the queued job
    assert Memory.objects.filter(tenant=tenant, content__contains="Orion release").exists()
    card = client.get(f"/ingest/jobs/{job.id}/row/?card=1").content.decode()
    assert "status-done" in card and "<html" not in card
    row = client.get(f"/ingest/jobs/{job.id}/row/").content.decode()
    assert row.strip().startswith("<tr") and "status-done" in row


@pytest.mark.parametrize(
    ("kind", "name", "body", "error"),
    [
        ("slack", "export.tar", b"not a zip", "unsupported file type"),
        ("file", "notes.exe", b"MZ", "unsupported file type"),
        ("mbox", "empty.mbox", b"", "empty"),
    ],
)
def test_it_refuses_bad_uploads_on_the_field(
    people: dict[str, Person], tenant: Any, kind: str, name: str, body: bytes, error: str
) -> None:
    response = people["writer"].client().post(
        "/ingest/upload/", {"kind": kind, "file": SimpleUploadedFile(name, body)}
    )
    assert response.status_code == 400
    assert error in " ".join(response.context["upload_form"].errors["file"])
    assert not IngestJob.objects.filter(tenant=tenant).exists()


def test_it_indexes_only_below_the_import_roots(
    people: dict[str, Person], tenant: Any, tmp_path: Path, settings: Any
) -> None:
    client = people["writer"].client()
    settings.EASYMEMORY_IMPORT_ROOTS = []
    assert "Server-side indexing is off" in client.get("/ingest/").content.decode()
    response = client.post("/ingest/index/", {"path": str(tmp_path), "pattern": "*.md"})
    assert response.status_code == 400 and "import roots" in str(response.context["index_form"].errors)

    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "idea.md").write_text("# Idea\n\nA memory layer for agents.\n")
    settings.EASYMEMORY_IMPORT_ROOTS = [str(vault)]
    ImportRoot.objects.create(tenant=tenant, path=str(vault.resolve()))
    response = client.post("/ingest/index/", {"path": str(tmp_path), "pattern": "*.md"})
    assert response.status_code == 400 and "outside" in str(response.context["index_form"].errors)
    response = client.post("/ingest/index/", {"path": str(vault), "pattern": "*.md", "recursive": "on"})
    job = IngestJob.objects.get(tenant=tenant)
    assert response.status_code == 302 and job.kind == "vault" and job.params["path"] == str(vault.resolve())
    assert not IngestJob.objects.exclude(pk=job.pk).exists()


def test_it_shows_per_item_errors_and_failures(people: dict[str, Person], tenant: Any) -> None:
    job = job_create(principal=Principal.system(tenant), kind="mbox", params={"filename": "mail.mbox"}, enqueue=False)
    IngestJob.objects.filter(pk=job.pk).update(
        status=JobStatus.DONE,
        total=3,
        done=1,
        failed=2,
        errors=[{"item": "<msg-1@x>", "error": "undecodable body"}, {"item": "<msg-2@x>", "error": "no date"}],
    )
    client = people["reader"].client()
    page = client.get(f"/ingest/jobs/{job.id}/").content.decode()
    assert "undecodable body" in page and "&lt;msg-2@x&gt;" in page
    listing = client.get("/ingest/").content.decode()
    assert "mail.mbox" in listing and f"/ingest/jobs/{job.id}/#errors" in listing
    assert 'action="/ingest/upload/"' not in listing  # a reader gets no import forms

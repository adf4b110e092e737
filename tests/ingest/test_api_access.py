"""Every ingest endpoint against the persona cast."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from ingest.models import IngestJob
from tests.conftest import Persona
from tests.ingest.helpers import grant_root, slack_zip

pytestmark = pytest.mark.django_db

UPLOADS = {
    "/v1/files": ("note.md", b"# Hello\nworld"),
    "/v1/integrations/slack/import": ("export.zip", None),
    "/v1/integrations/mbox/import": ("mail.mbox", b"From a@b Mon Jan  1 00:00:00 2024\nSubject: hi\n\nbody\n"),
    "/v1/import": ("mem0.json", b'[{"memory": "likes tea", "user_id": "u1"}]'),
}


def upload(client: APIClient, path: str):
    name, data = UPLOADS[path]
    data = data if data is not None else slack_zip({"general": {"2024-01-01": []}})
    return client.post(path, {"file": SimpleUploadedFile(name, data)}, format="multipart")


@pytest.mark.parametrize("path", list(UPLOADS))
def test_uploads_need_a_writer(cast: dict[str, Persona], path: str) -> None:
    assert upload(APIClient(), path).status_code == 401
    assert upload(cast["reader"].client(), path).status_code == 403
    for name in ("writer", "admin", "outsider"):
        response = upload(cast[name].client(), path)
        assert response.status_code == 202, response.content
        job = IngestJob.objects.get(pk=response.json()["id"])
        assert job.tenant == cast[name].tenant
        assert response["Location"] == f"/v1/jobs/{job.id}"


def test_index_needs_a_writer(cast: dict[str, Persona], tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\ntext")
    body = json.dumps({"path": str(tmp_path)})
    grant_root(cast["writer"].tenant, tmp_path)
    assert APIClient().post("/v1/index", body, content_type="application/json").status_code == 401
    reader = cast["reader"].client().post("/v1/index", body, content_type="application/json")
    assert reader.status_code == 403
    for name in ("writer", "admin"):
        response = cast[name].client().post("/v1/index", body, content_type="application/json")
        assert response.status_code == 202
    # The other tenant has no root there: refused, and nothing queued for it.
    outsider = cast["outsider"].client().post("/v1/index", body, content_type="application/json")
    assert outsider.status_code == 403
    assert not IngestJob.objects.filter(tenant=cast["outsider"].tenant).exists()


def test_jobs_are_visible_only_inside_their_tenant(cast: dict[str, Persona]) -> None:
    job_id = upload(cast["writer"].client(), "/v1/files").json()["id"]
    assert APIClient().get("/v1/jobs").status_code == 401
    assert APIClient().get(f"/v1/jobs/{job_id}").status_code == 401
    for name in ("reader", "writer", "admin"):
        client = cast[name].client()
        assert [j["id"] for j in client.get("/v1/jobs").json()["results"]] == [job_id]
        detail = client.get(f"/v1/jobs/{job_id}")
        assert detail.status_code == 200
        assert detail.json()["status"] == "queued"
    outsider = cast["outsider"].client()
    assert outsider.get("/v1/jobs").json()["results"] == []
    assert outsider.get(f"/v1/jobs/{job_id}").status_code == 404
    assert outsider.get("/v1/jobs/not-a-uuid").status_code == 404


def test_export_is_readable_by_members_and_holds_only_their_tenant(cast: dict[str, Persona]) -> None:
    cast["writer"].client().post("/v1/memories", {"content": "acme secret plan"}, format="json")
    assert APIClient().get("/v1/export").status_code == 401
    for name in ("reader", "writer", "admin"):
        response = cast[name].client().get("/v1/export")
        assert response.status_code == 200
        body = b"".join(response.streaming_content).decode()
        assert "acme secret plan" in body
    outsider = b"".join(cast["outsider"].client().get("/v1/export").streaming_content).decode()
    assert "acme secret plan" not in outsider
    assert json.loads(outsider.splitlines()[0])["tenant"] == "globex"


def test_the_exported_graph_is_the_members_tenants_alone(cast: dict[str, Persona]) -> None:
    from tests.graph.helpers import remember

    remember(cast["writer"], "Marco Rossi works at Acme Robotics.")
    remember(cast["outsider"], "Wanda Moss lives in Hidden Valley.")
    for name in ("reader", "writer", "admin", "outsider"):
        body = b"".join(cast[name].client().get("/v1/export").streaming_content).decode()
        entities = {r["name"] for r in map(json.loads, body.splitlines()) if r["type"] == "entity"}
        mine = {"Wanda Moss", "Hidden Valley"} if name == "outsider" else {"Marco Rossi", "Acme Robotics"}
        assert entities == mine, name


def test_export_is_read_only(cast: dict[str, Persona]) -> None:
    assert cast["admin"].client().post("/v1/export", {}, format="json").status_code == 403

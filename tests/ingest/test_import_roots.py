"""Import roots per tenant: a writer imports server files only below its own tenant's roots,
from every door (REST, MCP, dashboard); tenant admins manage the roots inside the operator's."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from accounts.models import Tenant
from audit.models import AuditEvent
from core.request_context import RequestInfo
from ingest.models import ImportRoot, IngestJob
from ingest.services import job_run
from mcp_server.registry import ToolError, autodiscover
from mcp_server.server import invoke_tool
from memory.models import Memory
from tests.conftest import Persona
from tests.dashboard.conftest import Person, make_person
from tests.ingest.helpers import grant_root

pytestmark = pytest.mark.django_db


@pytest.fixture
def dirs(tmp_path: Path, cast: dict[str, Persona]) -> dict[str, Path]:
    """acme's root, globex's root, and a directory nobody was given."""
    out = {}
    for name in ("acme", "globex", "nobody"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "secret.md").write_text(f"# {name}\n{name} private notes", encoding="utf-8")
        out[name] = folder
    grant_root(cast["writer"].tenant, out["acme"])
    grant_root(cast["outsider"].tenant, out["globex"])
    return out


def mcp(persona: Persona, name: str, args: dict[str, Any]) -> Any:
    return invoke_tool(autodiscover()[name], persona.principal, args, RequestInfo(request_id="t"))


def rest_index(persona: Persona, path: Path) -> Any:
    return persona.client().post("/v1/index", json.dumps({"path": str(path)}), content_type="application/json")


def test_a_writer_cannot_index_another_tenants_root_or_an_unassigned_directory_over_rest(
    cast: dict[str, Persona], dirs: dict[str, Path]
) -> None:
    writer = cast["writer"]
    for refused in (dirs["globex"], dirs["nobody"], dirs["acme"] / ".." / "globex"):
        response = rest_index(writer, refused)
        assert response.status_code == 403, refused
        assert response.json()["error"] == "the path is outside this tenant's import roots"
    response = rest_index(writer, dirs["acme"])
    assert response.status_code == 202
    assert job_run(response.json()["id"]).status == "done"  # type: ignore[union-attr]
    assert set(Memory.objects.values_list("tenant__slug", flat=True)) == {"acme"}
    assert not Memory.objects.filter(content__contains="globex").exists()
    assert AuditEvent.objects.filter(tenant=writer.tenant, action="ingest.index", outcome="denied").count() == 3


def test_a_writer_cannot_read_files_of_another_tenants_root_over_mcp(
    cast: dict[str, Persona], dirs: dict[str, Path]
) -> None:
    writer = cast["writer"]
    for tool, path in (
        ("memory_index_path", dirs["globex"]),
        ("memory_index_path", dirs["nobody"]),
        ("memory_add_file", dirs["globex"] / "secret.md"),
        ("memory_add_file", dirs["nobody"] / "secret.md"),
    ):
        with pytest.raises(ToolError, match="^forbidden: the path is outside this tenant's import roots"):
            mcp(writer, tool, {"path": str(path)})
    assert not IngestJob.objects.exists()
    assert mcp(writer, "memory_add_file", {"path": str(dirs["acme"] / "secret.md")})["job"]["kind"] == "file"
    assert mcp(writer, "memory_index_path", {"path": str(dirs["acme"])})["job"]["kind"] == "vault"
    with pytest.raises(ToolError, match="forbidden"):
        mcp(cast["outsider"], "memory_index_path", {"path": str(dirs["acme"])})


def test_a_writer_cannot_index_another_tenants_root_from_the_dashboard(
    cast: dict[str, Persona], dirs: dict[str, Path], tenant: Tenant
) -> None:
    client = make_person("dash-writer", tenant, "writer").client()
    for refused in (dirs["globex"], dirs["nobody"]):
        response = client.post("/ingest/index/", {"path": str(refused), "pattern": "*.md", "recursive": "on"})
        assert response.status_code == 400
        assert response.context["index_form"].errors["path"] == ["the path is outside this tenant's import roots"]
    assert not IngestJob.objects.exists()
    response = client.post("/ingest/index/", {"path": str(dirs["acme"]), "pattern": "*.md", "recursive": "on"})
    assert response.status_code == 302
    assert IngestJob.objects.get().params == {
        "path": str(dirs["acme"].resolve()), "pattern": "*.md", "recursive": True, "trusted": False
    }  # fmt: skip


def test_a_job_forged_without_the_trusted_flag_is_checked_when_it_runs(
    cast: dict[str, Persona], dirs: dict[str, Path]
) -> None:
    """Old jobs marked only `restricted`, or any job not started by the command line, are re-checked."""
    from ingest.services import job_create

    job = job_create(
        principal=cast["writer"].principal, kind="vault", params={"path": str(dirs["globex"])}, enqueue=False
    )
    finished = job_run(str(job.id))
    assert finished is not None and finished.status == "failed" and "import roots" in finished.error
    assert not Memory.objects.exists()


def test_tenant_admins_manage_roots_inside_the_operators_directories(
    cast: dict[str, Persona], tmp_path: Path, settings: Any
) -> None:
    allowed = tmp_path / "shared"
    (allowed / "acme").mkdir(parents=True)
    (allowed / "globex").mkdir()
    settings.EASYMEMORY_IMPORT_ROOTS = [str(allowed.resolve())]
    url = "/v1/admin/import-roots"
    body = json.dumps({"path": str(allowed / "acme")})
    assert APIClient().get(url).status_code == 401
    for name in ("reader", "writer"):
        assert cast[name].client().get(url).status_code == 403
        assert cast[name].client().post(url, body, content_type="application/json").status_code == 403
    admin = cast["admin"].client()
    created = admin.post(url, body, content_type="application/json")
    assert created.status_code == 201 and created.json()["path"] == str((allowed / "acme").resolve())
    assert [r["path"] for r in admin.get(url).json()] == [created.json()["path"]]
    # Outside the operator's directories, or overlapping another tenant's root: refused.
    outsider = cast["outsider"].client()
    for path in (tmp_path, allowed, allowed / "acme"):
        response = outsider.post(url, json.dumps({"path": str(path)}), content_type="application/json")
        assert response.status_code == 403, path
    assert outsider.post(url, json.dumps({"path": "relative/dir"}), content_type="application/json").status_code == 422
    too_long = json.dumps({"path": str(allowed / ("x" * 300))})  # a name the file system refuses
    assert outsider.post(url, too_long, content_type="application/json").status_code == 422
    assert outsider.get(url).json() == []
    assert outsider.delete(f"{url}/{created.json()['id']}").status_code == 404
    assert ImportRoot.objects.count() == 1
    assert admin.delete(f"{url}/{created.json()['id']}").status_code == 204
    assert not ImportRoot.objects.exists()


def test_the_operator_sets_roots_on_the_command_line(tenant: Tenant, tmp_path: Path, settings: Any) -> None:
    settings.EASYMEMORY_IMPORT_ROOTS = []  # the operator is not bound by the tenant admins' ceiling
    out = StringIO()
    call_command("importroot", "add", "--tenant", "acme", str(tmp_path), stdout=out)
    call_command("importroot", "list", "--tenant", "acme", stdout=out)
    assert out.getvalue().splitlines() == [f"added {tmp_path.resolve()}", str(tmp_path.resolve())]
    with pytest.raises(CommandError, match="already has"):
        call_command("importroot", "add", "--tenant", "acme", str(tmp_path))
    call_command("importroot", "remove", "--tenant", "acme", str(tmp_path), stdout=out)
    assert not ImportRoot.objects.exists()


def test_a_tenant_admin_manages_roots_on_the_dashboard(
    tenant: Tenant, other_tenant: Tenant, tmp_path: Path, settings: Any
) -> None:
    settings.EASYMEMORY_IMPORT_ROOTS = [str(tmp_path.resolve())]
    admin: Person = make_person("dash-admin", tenant, "admin")
    writer: Person = make_person("dash-writer2", tenant, "writer")
    assert writer.client().post("/ingest/roots/", {"path": str(tmp_path)}).status_code == 403
    response = admin.client().post("/ingest/roots/", {"path": str(tmp_path)}, follow=True)
    assert f"Import root {tmp_path.resolve()} added." in response.content.decode()
    root = ImportRoot.objects.get(tenant=tenant)
    stranger = make_person("dash-stranger", other_tenant, "admin")
    assert stranger.client().post(f"/ingest/roots/{root.pk}/delete/").status_code == 404
    assert writer.client().post(f"/ingest/roots/{root.pk}/delete/").status_code == 403
    assert admin.client().post(f"/ingest/roots/{root.pk}/delete/").status_code == 302
    assert not ImportRoot.objects.exists()

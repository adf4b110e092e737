from __future__ import annotations

import os
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ingest.models import IndexedFile
from memory.models import Memory, MemoryHistory
from tests.conftest import Persona
from tests.ingest.helpers import run

pytestmark = pytest.mark.django_db


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    alpha = "---\ntags: [project]\n---\n# Alpha\nAlpha launches in May. #launch\n\n## Risks\nSupply chain."
    write(root / "alpha.md", alpha)
    write(root / "sub" / "beta.md", "# Beta\nBeta links to [[alpha]].")
    write(root / "notes.txt", "not markdown: ignored by the pattern")
    write(root / ".obsidian" / "workspace.md", "# settings: ignored")
    return root


def index(persona: Persona, root: Path, **params: object):
    # A job as the local command line starts it (trusted: no import-root check, see test_import_roots).
    params = {"path": str(root), "pattern": "*.md", "recursive": True, "trusted": True, **params}
    return run(persona.principal, "vault", params)


def memories(persona: Persona):
    return Memory.objects.filter(tenant=persona.tenant)


def test_it_indexes_a_vault_with_metadata(writer: Persona, vault: Path) -> None:
    job = index(writer, vault)
    assert job.status == "done", job.error
    assert (job.total, job.done, job.failed) == (2, 2, 0)
    risks = memories(writer).get(metadata__heading=["Alpha", "Risks"])
    assert risks.kind == "note"
    assert risks.content == "alpha > Alpha > Risks\n\nSupply chain."
    assert risks.metadata["path"] == "alpha.md"
    assert risks.metadata["frontmatter"] == {"tags": ["project"]}
    assert set(risks.tags) == {"project", "launch"}
    beta = memories(writer).get(metadata__path="sub/beta.md")
    assert beta.metadata["links"] == ["alpha"]
    assert not memories(writer).filter(metadata__path__startswith=".obsidian").exists()


def test_a_second_run_skips_unchanged_files_and_changes_replace_or_remove_chunks(writer: Persona, vault: Path) -> None:
    index(writer, vault)
    ids_before = set(memories(writer).values_list("id", flat=True))
    again = index(writer, vault)
    assert (again.done, again.skipped, again.memories_created) == (0, 2, 0)
    assert set(memories(writer).values_list("id", flat=True)) == ids_before

    alpha = vault / "alpha.md"
    alpha.write_text("# Alpha\nAlpha launches in May. #launch\n\n## Risks\nWeather only.", encoding="utf-8")
    (vault / "sub" / "beta.md").unlink()
    write(vault / "gamma.md", "# Gamma\nNew note.")
    third = index(writer, vault)
    assert third.done == 2  # alpha changed, gamma new
    paths = sorted(set(memories(writer).values_list("metadata__path", flat=True)))
    assert paths == ["alpha.md", "gamma.md"]
    contents = set(memories(writer).values_list("content", flat=True))
    assert "alpha > Alpha > Risks\n\nWeather only." in contents
    assert "alpha > Alpha > Risks\n\nSupply chain." not in contents
    # The unchanged first section kept its memory (and its embedding).
    assert memories(writer).get(metadata__heading=["Alpha"]).id in ids_before
    assert third.memories_deleted == 2  # the old "Risks" chunk and beta's chunk
    assert MemoryHistory.objects.filter(tenant=writer.tenant, event="DELETE").count() == 2
    assert sorted(IndexedFile.objects.filter(tenant=writer.tenant).values_list("rel_path", flat=True)) == [
        "alpha.md",
        "gamma.md",
    ]


def test_a_touched_but_unchanged_file_is_skipped_by_hash(writer: Persona, vault: Path) -> None:
    index(writer, vault)
    os.utime(vault / "alpha.md", (1_700_000_000, 1_700_000_000))
    again = index(writer, vault)
    assert (again.done, again.skipped) == (0, 2)


def test_binary_empty_and_escaping_files_are_reported_and_the_rest_indexed(
    writer: Persona, vault: Path, tmp_path: Path
) -> None:
    (vault / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    (vault / "empty.md").write_bytes(b"")
    outside = write(tmp_path / "secret" / "passwords.md", "# Secret\nhunter2 lives here")
    (vault / "link.md").symlink_to(outside)
    job = index(writer, vault)
    assert job.status == "done"
    errors = {e["item"]: e["error"] for e in job.errors}
    assert "binary" in errors["image.md"]
    assert "leaves the indexed directory" in errors["link.md"]
    assert job.stats["empty file"] == 1
    assert (job.done, job.failed) == (2, 2)
    assert not memories(writer).filter(content__contains="hunter2").exists()
    assert not memories(writer).filter(metadata__path="image.md").exists()
    assert index(writer, vault).memories_created == 0  # the re-run duplicates nothing


def test_non_recursive_indexing_and_a_custom_pattern(writer: Persona, vault: Path) -> None:
    job = index(writer, vault, recursive=False, pattern="*.txt")
    assert job.done == 1
    assert memories(writer).get().metadata["path"] == "notes.txt"


def test_the_cli_indexes_with_a_progress_report(writer: Persona, vault: Path) -> None:
    out, err = StringIO(), StringIO()
    call_command("index", "--path", str(vault), "--tenant", "acme", stdout=out, stderr=err)
    assert "2 imported" in out.getvalue()
    assert memories(writer).filter(metadata__path="sub/beta.md").exists()
    with pytest.raises(CommandError):
        call_command("index", "--path", str(vault / "missing"), "--tenant", "acme", stdout=out)

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from accounts.principal import Principal
from ingest.portability import export_lines
from memory.models import Memory, MemoryHistory
from memory.services import MemoryInput, memory_create, memory_delete, memory_update
from tests.conftest import Persona
from tests.factories import TenantFactory
from tests.ingest.helpers import run

pytestmark = pytest.mark.django_db

MEM0 = [
    {
        "id": "7f1c",
        "memory": "Likes green tea",
        "user_id": "alice",
        "metadata": {"mood": "calm"},
        "created_at": "2024-05-01T10:00:00-07:00",
        "categories": ["food"],
    },
    {"id": "8a2d", "content": "Works at Acme", "user_id": "alice", "agent_id": "helper", "run_id": "r1"},
    {"id": "9b3e", "memory": "", "user_id": "bob"},
    "not an object",
]


def import_json(persona: Persona, data: bytes, name: str = "data.json"):
    return run(persona.principal, "json", {}, upload=(name, data))


def test_it_imports_mem0_json_and_reports_bad_records(writer: Persona) -> None:
    job = import_json(writer, json.dumps({"results": MEM0}).encode())
    assert job.status == "done", job.error
    assert (job.done, job.failed) == (2, 2)
    tea = Memory.objects.get(content="Likes green tea")
    assert (tea.user_ref, tea.kind, tea.tags) == ("alice", "fact", ["food"])
    assert tea.metadata["mood"] == "calm" and tea.metadata["source"] == "mem0"
    assert tea.occurred_at.isoformat() == "2024-05-01T17:00:00+00:00"
    acme = Memory.objects.get(content="Works at Acme")
    assert (acme.agent_id, acme.session_id) == ("helper", "r1")
    assert import_json(writer, json.dumps(MEM0).encode()).memories_created == 0


def test_broken_json_fails_the_job_clearly(writer: Persona) -> None:
    job = import_json(writer, b'[{"memory": "x"')
    assert job.status == "failed" and "invalid JSON" in job.error
    assert not Memory.objects.exists()


def build_history(principal: Principal) -> None:
    kept = memory_create(
        principal=principal,
        data=MemoryInput(content="Alice moved to Lyon", user_ref="alice", tags=["move"], metadata={"k": 1}),
    ).memory
    assert kept is not None
    memory_update(principal=principal, memory=kept, changes={"content": "Alice moved to Paris", "importance": 0.9})
    gone = memory_create(principal=principal, data=MemoryInput(content="temporary note")).memory
    assert gone is not None
    memory_delete(principal=principal, memory=gone)
    memory_create(principal=principal, data=MemoryInput(content="Le caf\u00e9 \u2615 \u4e2d\u6587", kind="fact"))


def comparable(lines: list[str]) -> list[dict]:
    records = [json.loads(line) for line in lines]
    for record in records:
        record.pop("id", None)
        record.pop("tenant", None)
        for entry in record.get("history", []):
            entry.pop("actor")  # an import records its importer, not the exporting side's actors
    return records


def test_export_then_import_into_an_empty_tenant_reproduces_it(writer: Persona) -> None:
    build_history(writer.principal)
    first = list(export_lines(writer.tenant))
    assert json.loads(first[0])["format"] == "easymemory-export"
    assert len(first) == 3  # header + two live memories
    paris = json.loads(next(line for line in first if "Paris" in line))
    assert [h["event"] for h in paris["history"]] == ["ADD", "UPDATE"]

    copy = TenantFactory(slug="copy")
    job = run(Principal.system(copy), "json", {}, upload=("export.jsonl", "".join(first).encode()))
    assert job.status == "done", job.error
    assert job.done == 2
    second = list(export_lines(copy))
    assert comparable(second) == comparable(first)
    # the same export again duplicates nothing
    again = run(Principal.system(copy), "json", {}, upload=("export.jsonl", "".join(first).encode()))
    assert (again.done, again.skipped) == (0, 2)
    assert Memory.objects.filter(tenant=copy).count() == 2
    assert MemoryHistory.objects.filter(tenant=copy).count() == 3


def test_invalid_lines_in_an_export_are_reported_and_the_rest_imported(writer: Persona) -> None:
    build_history(writer.principal)
    lines = list(export_lines(writer.tenant))
    lines.insert(2, "{this is not json\n")
    lines.append(json.dumps({"type": "annotation", "name": "Alice"}) + "\n")
    lines.append(json.dumps({"type": "memory", "id": "not-a-uuid", "content": "x"}) + "\n")
    copy = TenantFactory(slug="copy")
    job = run(Principal.system(copy), "json", {}, upload=("export.jsonl", "".join(lines).encode()))
    assert job.status == "done"
    assert (job.done, job.failed, job.skipped) == (2, 2, 1)
    assert [e["item"] for e in job.errors] == ["line 3", "line 6"]
    assert job.stats == {"record type 'annotation' not importable here": 1}


def test_the_cli_exports_and_imports(writer: Persona, tmp_path: Path) -> None:
    build_history(writer.principal)
    out = StringIO()
    call_command("export", "--tenant", "acme", stdout=out)
    path = tmp_path / "acme.jsonl"
    path.write_text(out.getvalue(), encoding="utf-8")
    TenantFactory(slug="copy")
    report = StringIO()
    call_command("import", "json", str(path), "--tenant", "copy", stdout=report)
    assert "2 imported" in report.getvalue()
    again = StringIO()
    call_command("export", "--tenant", "copy", stdout=again)
    assert comparable(again.getvalue().splitlines()) == comparable(out.getvalue().splitlines())


def export_record(**overrides: object) -> dict:
    record = {
        "type": "memory",
        "id": "0b9d7a52-3c1e-4f0a-9d43-6f1e2a1b0c01",
        "content": "Bob prefers window seats",
        "kind": "fact",
        "version": 2,
        "history": [
            {"event": "ADD", "version": 1, "new_content": "Bob likes seats", "actor": "user:1"},
            {"event": "UPDATE", "version": 2, "new_content": "Bob prefers window seats", "actor": "user:7"},
        ],
    }
    record.update(overrides)
    return record


def export_file(*records: dict) -> bytes:
    header = {"type": "header", "format": "easymemory-export", "version": 1}
    return "".join(json.dumps(r) + "\n" for r in (header, *records)).encode()


def test_bad_values_in_an_export_refuse_only_their_record(writer: Persona) -> None:
    """A negative version used to crash the whole job; every value read from the file is checked."""
    bad = [
        (export_record(id="0b9d7a52-3c1e-4f0a-9d43-6f1e2a1b0c02", version=-3), "version"),
        (export_record(id="0b9d7a52-3c1e-4f0a-9d43-6f1e2a1b0c03", version="2"), "version"),
        (export_record(id="0b9d7a52-3c1e-4f0a-9d43-6f1e2a1b0c04", history=[{"event": "ADD", "version": -1}]),
         "history[0].version"),
        (export_record(id="0b9d7a52-3c1e-4f0a-9d43-6f1e2a1b0c05", history=[{"event": "DROP", "version": 1}]),
         "history[0].event"),
        (export_record(id="0b9d7a52-3c1e-4f0a-9d43-6f1e2a1b0c06", history=[{"event": "ADD", "new_content": "a\x00"}]),
         "history[0].new_content"),
        (export_record(id="0b9d7a52-3c1e-4f0a-9d43-6f1e2a1b0c07", created_at="yesterday"), "created_at"),
        (export_record(id="0b9d7a52-3c1e-4f0a-9d43-6f1e2a1b0c08", importance="high"), "importance"),
        (export_record(id="0b9d7a52-3c1e-4f0a-9d43-6f1e2a1b0c09", user_ref=["x"]), "user_ref"),
        (export_record(id="0b9d7a52-3c1e-4f0a-9d43-6f1e2a1b0c0a", history="lots"), "history"),
        (export_record(id="0b9d7a52-3c1e-4f0a-9d43-6f1e2a1b0c0b", content=7), "content"),
    ]  # fmt: skip
    good = export_record()
    job = import_json(writer, export_file(*(record for record, _ in bad), good), "export.jsonl")
    assert job.status == "done", job.error
    assert (job.done, job.failed) == (1, len(bad))
    fields = {e["item"]: e["error"].split(": ", 1)[0] for e in job.errors}
    assert fields == {f"line {index + 2}": field for index, (_, field) in enumerate(bad)}
    assert list(Memory.objects.values_list("content", "version")) == [("Bob prefers window seats", 2)]


def test_an_import_goes_through_the_memory_services(writer: Persona, django_capture_on_commit_callbacks) -> None:
    """Events, redaction and history actor labels: the same as any other write."""
    import asyncio

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from core.events import tenant_group

    layer = get_channel_layer()

    async def subscribe() -> str:
        channel = await layer.new_channel()
        await layer.group_add(tenant_group(writer.tenant.id), channel)
        return channel

    async def created(channel: str) -> list[str]:
        while True:
            event = await asyncio.wait_for(layer.receive(channel), timeout=30)
            if event["event"] == "memory.created":
                return event["data"]["ids"]

    channel = async_to_sync(subscribe)()
    secret = export_record(
        id="0b9d7a52-3c1e-4f0a-9d43-6f1e2a1b0c10",
        content="db_password=hunter2 and user=bob",
        history=[{"event": "ADD", "version": 1, "new_content": "db_password=hunter2", "actor": "user:1"}],
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = import_json(writer, export_file(export_record(), secret), "export.jsonl")
    assert job.status == "done" and job.done == 2, job.errors
    ids = async_to_sync(created)(channel)
    assert sorted(ids) == sorted(str(i) for i in Memory.objects.values_list("id", flat=True))
    assert Memory.objects.get(pk=secret["id"]).content == "db_password=[REDACTED] and user=bob"
    history = MemoryHistory.objects.filter(tenant=writer.tenant)
    assert "hunter2" not in "".join(h.new_content or "" for h in history)
    # The file's actors (users of the exporting installation) are never carried over.
    assert set(history.values_list("actor", flat=True)) == {writer.principal.actor}

"""The audit trail: append-only table, per-tenant hash chain, verify, export, JSONL sink."""

from __future__ import annotations

import json
import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.db.utils import DatabaseError

from accounts.principal import Principal
from audit.models import AuditEvent
from audit.selectors import audit_verify
from audit.services import audit_record
from audit.sink import jsonl_path
from tests.conftest import Persona

pytestmark = pytest.mark.django_db


def record_some(principal: Principal, n: int) -> list[AuditEvent]:
    return [
        audit_record(principal=principal, action="memory.read", target_type="memory", target_id=str(i))
        for i in range(n)
    ]


def tamper(sql: str, params: list | None = None) -> None:
    """Change the table behind the trigger's back, as someone with database access could."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_append_only")
        cursor.execute(sql, params or [])
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_append_only")


def test_the_database_refuses_update_and_delete(admin: Persona) -> None:
    event = record_some(admin.principal, 1)[0]
    for sql in ("UPDATE audit_auditevent SET action = 'x' WHERE id = %s", "DELETE FROM audit_auditevent WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), connection.cursor() as cursor:
            # A savepoint, so the refused statement does not poison the test's transaction.
            from django.db import transaction

            with transaction.atomic():
                cursor.execute(sql, [event.id])


def test_each_tenant_has_its_own_chain(admin: Persona, outsider: Persona) -> None:
    before = AuditEvent.objects.filter(tenant=admin.tenant).count()
    ours = record_some(admin.principal, 3)
    theirs = record_some(outsider.principal, 2)
    assert [e.seq for e in ours] == [before + 1, before + 2, before + 3]
    assert ours[1].prev_hash == ours[0].hash and ours[2].prev_hash == ours[1].hash
    assert theirs[1].prev_hash == theirs[0].hash
    assert audit_verify(admin.tenant.pk).ok
    assert audit_verify(outsider.tenant.pk).ok


def test_verify_names_an_edited_event(admin: Persona) -> None:
    events = record_some(admin.principal, 4)
    tamper("UPDATE audit_auditevent SET actor_id = 'someone-else' WHERE id = %s", [events[1].id])
    report = audit_verify(admin.tenant.pk)
    assert [(p.kind, p.event_id) for p in report.problems] == [("edited", events[1].id)]


def test_verify_names_a_removed_event(admin: Persona) -> None:
    events = record_some(admin.principal, 4)
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[2].id])
    report = audit_verify(admin.tenant.pk)
    assert [(p.kind, p.seq) for p in report.problems] == [("removed", events[3].seq)]
    assert f"seq {events[2].seq} missing" in report.problems[0].message


def test_verify_names_a_removed_event_even_when_seq_is_renumbered(admin: Persona) -> None:
    events = record_some(admin.principal, 4)
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[1].id])
    renumber = "UPDATE audit_auditevent SET seq = seq - 1 WHERE tenant_id = %s AND seq > %s"
    tamper(renumber, [admin.tenant.pk, events[1].seq])
    report = audit_verify(admin.tenant.pk)
    assert [(p.kind, p.event_id) for p in report.problems] == [("removed", events[2].id)]


def test_verify_names_reordered_events(admin: Persona) -> None:
    events = record_some(admin.principal, 4)
    a, b = events[1], events[2]
    # Swap the positions of two events (unique (tenant, seq) needs a detour).
    tamper("UPDATE audit_auditevent SET seq = -1 WHERE id = %s", [a.id])
    tamper("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [a.seq, b.id])
    tamper("UPDATE audit_auditevent SET seq = %s WHERE id = %s", [b.seq, a.id])
    report = audit_verify(admin.tenant.pk)
    kinds = {p.kind for p in report.problems}
    assert kinds == {"reordered"}
    assert {p.event_id for p in report.problems} >= {a.id, b.id}


def test_the_cli_verifies_and_exports(admin: Persona, tmp_path) -> None:
    events = record_some(admin.principal, 3)
    out = StringIO()
    call_command("audit", "verify", stdout=out)
    assert "BROKEN" not in out.getvalue()
    target = tmp_path / "acme.jsonl"
    call_command("audit", "export", "--tenant", "acme", "--output", str(target), stderr=StringIO())
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert lines[-1]["hash"] == events[-1].hash
    tamper("UPDATE audit_auditevent SET outcome = 'denied' WHERE id = %s", [events[0].id])
    out = StringIO()
    with pytest.raises(CommandError, match="1 audit chain"):
        call_command("audit", "verify", stdout=out)
    assert f"edited: event id {events[0].id}" in out.getvalue()


def test_queries_are_kept_only_as_configured(admin: Persona, settings) -> None:
    settings.EASYMEMORY_AUDIT_QUERIES = "off"
    assert audit_record(principal=admin.principal, action="memory.search", query="secret plans").detail == {}
    settings.EASYMEMORY_AUDIT_QUERIES = "hash"
    detail = audit_record(principal=admin.principal, action="memory.search", query="secret plans").detail
    assert set(detail) == {"query_sha256"} and "secret" not in json.dumps(detail)
    settings.EASYMEMORY_AUDIT_QUERIES = "full"
    assert audit_record(principal=admin.principal, action="memory.search", query="q").detail == {"query": "q"}
    assert audit_verify(admin.tenant.pk).ok


def test_search_and_writes_leave_events_without_content(writer: Persona) -> None:
    created = writer.client().post("/v1/memories", {"content": "the vault code is 4711"}, format="json")
    assert created.status_code == 201
    writer.client().post("/v1/search", {"query": "vault code"}, format="json")
    events = AuditEvent.objects.filter(tenant=writer.tenant, actor_id=writer.principal.actor_id)
    assert {"memory.create", "memory.search"} <= set(events.values_list("action", flat=True))
    dumped = json.dumps(list(events.values("detail", "target_id", "target_type")))
    assert "4711" not in dumped and "vault" not in dumped


def test_the_jsonl_sink_appends_and_rotates(admin: Persona, settings, django_capture_on_commit_callbacks) -> None:
    path = jsonl_path()
    for old in path.parent.glob(path.name + "*"):
        old.unlink()
    settings.EASYMEMORY_AUDIT_LOG_MAX_BYTES = 2000
    settings.EASYMEMORY_AUDIT_LOG_BACKUPS = 2
    with django_capture_on_commit_callbacks(execute=True):
        events = record_some(admin.principal, 20)
    files = sorted(path.parent.glob(path.name + "*"))
    names = {f.name for f in files}
    assert names == {path.name, path.name + ".1", path.name + ".2", path.name + ".lock"}
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[-1]["hash"] == events[-1].hash and lines[-1]["action"] == "memory.read"
    assert all(f.stat().st_size <= 2000 for f in files)


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_keep_one_chain(tenant) -> None:
    principal = Principal.system(tenant)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(15):
                audit_record(principal=principal, action="memory.read")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    report = audit_verify(tenant.pk)
    assert report.ok, report.problems
    assert report.events == 60

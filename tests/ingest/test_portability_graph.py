"""The graph in export and import: entities, aliases, relations with both time axes, mentions and
provenance come back in another tenant under new ids; a bad graph section changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from accounts.models import Tenant
from accounts.principal import Principal
from audit.models import AuditEvent
from graph.models import Entity, GraphExtraction, Mention, Relation, RelationSource
from graph.services import entity_merge, graph_extract_memories, relation_add, relation_delete
from ingest.models import IngestJob
from ingest.portability import export_lines
from memory.models import Memory, MemoryHistory
from memory.services import MemoryInput, memory_create, memory_update
from tests.conftest import Persona
from tests.factories import TenantFactory
from tests.graph.helpers import remember
from tests.ingest.helpers import run

pytestmark = pytest.mark.django_db

Y2019 = datetime(2019, 1, 1, tzinfo=UTC)
Y2021 = datetime(2021, 3, 1, tzinfo=UTC)
Y2023 = datetime(2023, 5, 1, tzinfo=UTC)


def build_graph(persona: Persona) -> None:
    """A graph made the way a tenant gets one: extraction, a move that closes a fact, a merge that
    leaves aliases, a hand-made relation, a retired relation, and a memory edited after extraction."""
    remember(persona, "Alice lives in Milan.", occurred_at=Y2019)
    remember(persona, "Alice moved to Berlin.", occurred_at=Y2023)
    remember(persona, "Marco Rossi works at Acme Robotics since 2021. #robots")
    remember(persona, "Vincent Furnier lives in Turin.")
    remember(persona, "Marco Rossi met Alice in Berlin.")
    tenant = persona.tenant
    marco = Entity.objects.get(tenant=tenant, key="marco rossi")
    vincent = Entity.objects.get(tenant=tenant, key="vincent furnier")
    entity_merge(principal=persona.principal, target=marco, sources=[vincent])
    relation_add(
        principal=persona.principal, source=marco.pk, target={"name": "Vim", "type": "tool"}, predicate="uses",
        fact="Marco edits in Vim", confidence=0.8, valid_at=Y2021,
    )  # fmt: skip
    retired = relation_add(
        principal=persona.principal, source=marco.pk, target={"name": "Emacs", "type": "tool"}, predicate="uses"
    )
    relation_delete(principal=persona.principal, relation=retired)
    edited = remember(persona, "Bob Smith works at Globex.")
    memory_update(principal=persona.principal, memory=edited, changes={"content": "Bob Smith works at Initech."})
    graph_extract_memories([str(edited.pk)])


def graph_of(tenant: Tenant) -> dict[str, Any]:
    """The tenant's graph with every id replaced by what it stands for (entity keys, memory contents)."""
    content = dict(Memory.objects.filter(tenant=tenant).values_list("id", "content"))

    def rel_sig(rel: Relation | None) -> tuple[Any, ...] | None:
        if rel is None:
            return None
        return (rel.source.key, rel.target.key, rel.predicate, rel.valid_at, rel.invalid_at, rel.expired_at)

    relations = Relation.objects.filter(tenant=tenant).select_related("source", "target", "invalidated_by")
    return {
        "entities": sorted(
            (e.key, e.name, e.type, tuple(e.aliases), tuple(e.alias_keys), e.origin, e.summary, e.mention_count,
             e.first_seen_at, e.last_seen_at)
            for e in Entity.objects.filter(tenant=tenant)
        ),  # fmt: skip
        "relations": sorted(
            (*rel_sig(r), r.fact, r.confidence, r.origin, r.created_at, rel_sig(r.invalidated_by))  # type: ignore[misc]
            for r in relations
        ),
        "mentions": sorted(
            (m.entity.key, content[m.memory_id], m.text)
            for m in Mention.objects.filter(tenant=tenant).select_related("entity")
        ),
        "supports": sorted(
            (rel_sig(s.relation), content[s.memory_id])
            for s in RelationSource.objects.filter(tenant=tenant).select_related("relation__source", "relation__target")
        ),
        "extracted": sorted(
            (content[g.memory_id], g.provider, g.model, g.entities, g.relations)
            for g in GraphExtraction.objects.filter(tenant=tenant)
        ),
    }


def import_into(tenant: Tenant, lines: list[str]) -> IngestJob:
    job = run(Principal.system(tenant), "json", {}, upload=("export.jsonl", "".join(lines).encode()))
    assert job.status == "done", job.error
    return job


def test_a_graph_exported_and_imported_into_another_tenant_is_the_same_graph(writer: Persona) -> None:
    build_graph(writer)
    original = graph_of(writer.tenant)
    assert len(original["entities"]) >= 8 and any(r[4] is not None for r in original["relations"])  # a closed fact
    assert any(r[5] is not None for r in original["relations"])  # a retired one
    assert any(e[3] for e in original["entities"])  # aliases from the merge
    lines = list(export_lines(writer.tenant))
    assert json.loads(lines[0])["version"] == 2

    copy = TenantFactory(slug="copy")
    job = import_into(copy, lines)
    assert job.done == Memory.objects.filter(tenant=writer.tenant).count()
    assert graph_of(copy) == original
    # New ids everywhere: memories (the ids are taken in this instance) and graph rows.
    assert not set(Memory.objects.filter(tenant=copy).values_list("id", flat=True)) & set(
        Memory.objects.filter(tenant=writer.tenant).values_list("id", flat=True)
    )
    assert not set(Entity.objects.filter(tenant=copy).values_list("id", flat=True)) & set(
        Entity.objects.filter(tenant=writer.tenant).values_list("id", flat=True)
    )
    for mention in Mention.objects.filter(tenant=copy).select_related("memory", "entity"):
        assert mention.memory.tenant_id == copy.pk and mention.entity.tenant_id == copy.pk
    assert job.stats["graph entities created"] == len(original["entities"])
    assert AuditEvent.objects.filter(tenant=copy, action="graph.import").count() == 1

    # The worker's enrichment finds the graph already there and leaves it as imported.
    outcome = graph_extract_memories([str(i) for i in Memory.objects.filter(tenant=copy).values_list("id", flat=True)])
    assert outcome.extracted == 0
    assert graph_of(copy) == original
    # Exporting the copy gives the same file, but for ids; importing it again adds nothing.
    assert len(list(export_lines(copy))) == len(lines)
    again = import_into(copy, lines)
    assert (again.done, again.skipped) == (0, job.done)
    assert graph_of(copy) == original


def test_history_is_carried_only_when_there_is_more_than_the_creation(writer: Persona) -> None:
    plain = memory_create(principal=writer.principal, data=MemoryInput(content="Plain note")).memory
    edited = memory_create(principal=writer.principal, data=MemoryInput(content="First words")).memory
    assert plain is not None and edited is not None
    memory_update(principal=writer.principal, memory=edited, changes={"content": "Second words"})
    records = {r["content"]: r for r in map(json.loads, export_lines(writer.tenant)) if r["type"] == "memory"}
    assert "history" not in records["Plain note"]
    assert [h["event"] for h in records["Second words"]["history"]] == ["ADD", "UPDATE"]
    copy = TenantFactory(slug="copy")
    import_into(copy, list(export_lines(writer.tenant)))
    copied = Memory.objects.get(tenant=copy, content="Plain note")
    rebuilt = MemoryHistory.objects.get(tenant=copy, memory_id=copied.pk)
    assert (rebuilt.event, rebuilt.new_content) == ("ADD", "Plain note")
    assert rebuilt.created_at == copied.created_at


def test_an_import_merges_into_the_entities_and_facts_a_tenant_already_has(writer: Persona) -> None:
    build_graph(writer)
    lines = list(export_lines(writer.tenant))
    target = TenantFactory(slug="target")
    principal = Principal.system(target)
    # The target already knows Alice, living in Paris since 2024, and Acme.
    remember(principal, "Alice lives in Paris.", occurred_at=datetime(2024, 1, 1, tzinfo=UTC))
    relation_add(principal=principal, source={"name": "Acme Robotics", "type": "organisation"},
                 target={"name": "Turin", "type": "place"}, predicate="located in")  # fmt: skip
    acme_before = Entity.objects.get(tenant=target, key="acme robotics")
    job = import_into(target, lines)
    assert job.stats["graph entities merged"] >= 2
    assert Entity.objects.filter(tenant=target, key="alice").count() == 1
    assert Entity.objects.get(tenant=target, key="acme robotics").pk == acme_before.pk
    alice = Entity.objects.get(tenant=target, key="alice")
    mentioned = Entity.objects.get(tenant=writer.tenant, key="alice").mention_count
    assert alice.mention_count == mentioned + 1
    # The imported Berlin (2023) is older than the tenant's Paris (2024): Paris stays current.
    current = Relation.objects.filter(source=alice, predicate="lives_in", invalid_at__isnull=True)
    assert list(current.values_list("target__key", flat=True)) == ["paris"]
    berlin = Relation.objects.get(source=alice, predicate="lives_in", target__key="berlin")
    assert berlin.invalid_at == datetime(2024, 1, 1, tzinfo=UTC)


def test_the_export_holds_only_the_exporting_tenants_graph(writer: Persona, outsider: Persona) -> None:
    remember(writer, "Marco Rossi works at Acme Robotics.")
    remember(outsider, "Wanda Secret lives in Hidden Valley.")
    text = "".join(export_lines(writer.tenant))
    assert "Wanda" not in text and "Hidden Valley" not in text
    names = {r["name"] for r in map(json.loads, text.splitlines()) if r["type"] == "entity"}
    assert names == set(Entity.objects.filter(tenant=writer.tenant).values_list("name", flat=True))


def test_a_subset_export_carries_the_graph_of_its_memories(writer: Persona) -> None:
    kept = remember(writer, "Marco Rossi works at Acme Robotics.")
    remember(writer, "Alice lives in Milan.")
    records = [json.loads(line) for line in export_lines(writer.tenant, [kept.pk])]
    entities = {r["name"] for r in records if r["type"] == "entity"}
    assert entities == {"Marco Rossi", "Acme Robotics"}
    assert [r["predicate"] for r in records if r["type"] == "relation"] == ["works_at"]


def test_a_version_1_export_still_imports(writer: Persona) -> None:
    header = {"type": "header", "format": "easymemory-export", "version": 1, "tenant": "old"}
    record = {
        "type": "memory", "id": "0b9d7a52-3c1e-4f0a-9d43-6f1e2a1b0c01", "kind": "note", "content": "Old note",
        "metadata": {}, "tags": [], "user_ref": "", "agent_id": "", "session_id": "", "importance": 0.5,
        "occurred_at": None, "created_at": "2024-01-01T00:00:00+00:00", "updated_at": "2024-01-02T00:00:00+00:00",
        "expires_at": None, "version": 2,
        "history": [
            {"event": "ADD", "version": 1, "old_content": None, "new_content": "Old", "old_metadata": None,
             "new_metadata": {}, "actor": "user:1", "created_at": "2024-01-01T00:00:00+00:00"},
            {"event": "UPDATE", "version": 2, "old_content": "Old", "new_content": "Old note", "old_metadata": {},
             "new_metadata": {}, "actor": "user:1", "created_at": "2024-01-02T00:00:00+00:00"},
        ],
    }  # fmt: skip
    entity = {"type": "entity", "name": "Old"}  # unknown in version 1: skipped, as it always was
    lines = [json.dumps(r) + "\n" for r in (header, record, entity)]
    job = import_into(writer.tenant, lines)
    assert (job.done, job.skipped) == (1, 1)
    memory = Memory.objects.get(tenant=writer.tenant)
    assert (memory.content, memory.version) == ("Old note", 2)
    assert MemoryHistory.objects.filter(memory_id=memory.pk).count() == 2
    newer = [json.dumps({**header, "version": 3}) + "\n", json.dumps(record) + "\n"]
    refused = run(Principal.system(writer.tenant), "json", {}, upload=("x.jsonl", "".join(newer).encode()))
    assert refused.status == "failed" and "version" in refused.error


def _hostile(lines: list[str]) -> list[tuple[str, list[str], str]]:
    """(what, file lines, the words the error must contain)."""
    records = [json.loads(line) for line in lines]
    entity = next(r for r in records if r["type"] == "entity")
    relation = next(r for r in records if r["type"] == "relation")
    memory = next(r for r in records if r["type"] == "memory" and r.get("graph", {}).get("mentions"))

    def swap(old: dict, new: dict) -> list[str]:
        return [json.dumps(new if r is old else r) + "\n" for r in records]

    return [
        ("dangling source", swap(relation, {**relation, "source": 987654}), "entity 987654 is not in the file"),
        ("dangling mention", swap(memory, {**memory, "graph": {"mentions": [[987654]]}}), "entity 987654"),
        ("dangling support", swap(memory, {**memory, "graph": {"supports": [987654]}}), "relation 987654"),
        ("dangling closer", swap(relation, {**relation, "invalidated_by": 987654}), "relation 987654"),
        ("the graph of a memory twice", [*swap(memory, memory), json.dumps(memory) + "\n"], "appears twice"),
        ("id as a string", swap(entity, {**entity, "id": str(entity["id"])}), "entity.id"),
        ("name as a number", swap(entity, {**entity, "name": 42}), "name must be a string"),
        ("confidence as text", swap(relation, {**relation, "confidence": "high"}), "confidence"),
        ("confidence out of range", swap(relation, {**relation, "confidence": 7}), "between 0 and 1"),
        ("bad date", swap(relation, {**relation, "valid_at": "last spring"}), "valid_at"),
        ("unknown origin", swap(entity, {**entity, "origin": "magic"}), "origin must be one of"),
        ("duplicate id", [*swap(entity, entity), json.dumps(entity) + "\n"], "appears twice"),
        ("huge name", swap(entity, {**entity, "name": "x" * 5000}), "over 300 characters"),
        ("huge alias list", swap(entity, {**entity, "aliases": ["a"] * 5000}), "at most 1000"),
        ("huge mention list", swap(memory, {**memory, "graph": {"mentions": [[entity["id"]]] * 5000}}), "at most"),
        ("mention shape", swap(memory, {**memory, "graph": {"mentions": [{"entity": 1}]}}), "[entity id]"),
        ("self loop", swap(relation, {**relation, "target": relation["source"]}), "different entities"),
        ("lone surrogate", swap(entity, {**entity, "aliases": ["\ud800"]}), "not valid Unicode"),
        ("NUL in a fact", swap(relation, {**relation, "fact": "a\x00b"}), "NUL"),
    ]  # fmt: skip


def test_a_hostile_or_inconsistent_graph_section_is_refused_whole_and_changes_nothing(writer: Persona) -> None:
    build_graph(writer)
    lines = list(export_lines(writer.tenant))
    target = TenantFactory(slug="target")
    for what, bad, words in _hostile(lines):
        job = run(Principal.system(target), "json", {}, upload=("export.jsonl", "".join(bad).encode()))
        assert job.status == "failed", what
        assert words in job.error, (what, job.error)
        assert not Memory.objects.filter(tenant=target).exists(), what
        assert not Entity.objects.filter(tenant=target).exists(), what
        assert not Relation.objects.filter(tenant=target).exists(), what


def test_a_credential_without_graph_scopes_exports_and_imports_memories_only(admin: Persona) -> None:
    """memory:read alone exports no graph; memory:write alone imports the memories, not the graph."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from accounts.services import oauth_app_create
    from ingest.services import job_run
    from tests.accounts.test_oauth import bearer, create_app, token_for

    build_graph(admin)
    app = create_app(admin, "writer")
    narrow = bearer(token_for(app, scope="memory:read memory:write").json()["access_token"])
    full = bearer(token_for(app).json()["access_token"])
    exported = b"".join(narrow.get("/v1/export").streaming_content).decode()
    assert {json.loads(line)["type"] for line in exported.splitlines()} == {"header", "memory"}
    assert '"graph"' not in exported
    complete = b"".join(full.get("/v1/export").streaming_content)
    assert {"entity", "relation"} <= {json.loads(line)["type"] for line in complete.splitlines()}

    copy = TenantFactory(slug="copy")
    made = oauth_app_create(principal=Principal.system(copy), name="sync", role="writer")
    credentials = {"client_id": made.application.client_id, "client_secret": made.client_secret}
    importer = bearer(token_for(credentials, scope="memory:read memory:write").json()["access_token"])
    upload = SimpleUploadedFile("export.jsonl", complete, content_type="application/x-ndjson")
    response = importer.post("/v1/import", {"file": upload}, format="multipart")
    assert response.status_code == 202, response.content
    job = job_run(response.json()["id"])
    assert job is not None and job.status == "done", job and job.error
    assert Memory.objects.filter(tenant=copy).count() == Memory.objects.filter(tenant=admin.tenant).count()
    assert not Entity.objects.filter(tenant=copy).exists()
    assert job.stats["graph records not imported (no graph:write)"] > 0

"""The dashboard runs a team (issue 19): invitations, accounts and sessions, the tenant life cycle,
bulk actions, the graph viewer's controls, audit verify/export, and the rough edges."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client, override_settings

from accounts.invitations import invitation_create
from accounts.models import Invitation, Membership, Tenant, UserSession
from accounts.principal import Principal
from accounts.services import api_key_create, oauth_app_create
from audit.models import AuditEvent
from graph.models import Entity, Relation
from ingest.services import job_create
from memory.bulk import bulk_job_run
from memory.models import Memory, MemoryBulkJob, MemoryHistory
from memory.services import MemoryInput, memory_create
from tests.dashboard.conftest import PASSWORD, Person, make_person
from tests.factories import UserFactory
from tests.graph.helpers import remember

pytestmark = pytest.mark.django_db


def body_of(response: Any) -> str:
    return (b"".join(response.streaming_content) if response.streaming else response.content).decode()


def add(tenant: Tenant, content: str, **extra: Any) -> Memory:
    return memory_create(principal=Principal.system(tenant), data=MemoryInput(content=content, **extra)).memory


# --- invitations ------------------------------------------------------------------------------


def invite(tenant: Tenant, role: str = "writer") -> str:
    return invitation_create(principal=Principal.system(tenant), role=role).token


def test_an_invited_person_creates_an_account_and_joins_with_the_role(tenant: Tenant) -> None:
    token = invite(tenant, "writer")
    client = Client()
    page = client.get(f"/invite/{token}/")
    assert page.status_code == 200 and b"Join Acme" in page.content
    assert page["Referrer-Policy"] == "same-origin"
    mismatch = client.post(f"/invite/{token}/", {"step": "create", "username": "nora", "password": "long enough pw 1",
                                                   "password_again": "other"})  # fmt: skip
    assert mismatch.status_code == 200 and not get_user_model().objects.filter(username="nora").exists()
    joined = client.post(f"/invite/{token}/", {"step": "create", "username": "nora", "password": "long enough pw 1",
                                                 "password_again": "long enough pw 1"})  # fmt: skip
    assert joined.status_code == 302 and joined["Location"] == "/search/"
    nora = get_user_model().objects.get(username="nora")
    assert Membership.objects.get(user=nora, tenant=tenant).role == "writer"
    assert client.get("/memories/new/").status_code == 200  # signed in, as a writer
    # The link worked once.
    again = Client().get(f"/invite/{token}/")
    assert again.status_code == 404 and b"not valid" in again.content


def test_an_existing_account_signs_in_and_accepts_keeping_its_other_tenants(
    people: dict[str, Person], tenant: Tenant, other_tenant: Tenant
) -> None:
    token = invite(tenant, "reader")
    otto = people["outsider"]
    anonymous = Client().post(f"/invite/{token}/", {"step": "accept"})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    client = otto.client()
    assert b"Join as otto" in client.get(f"/invite/{token}/").content
    assert client.post(f"/invite/{token}/", {"step": "accept"}).status_code == 302
    roles = dict(Membership.objects.filter(user=otto.user).values_list("tenant__slug", "role"))
    assert roles == {"acme": "reader", "globex": "admin"}  # one role per tenant
    assert client.get("/memories/new/").status_code == 403  # acting in acme now, as a reader
    events = AuditEvent.objects.filter(tenant=tenant, action="invitation.accept")
    assert events.count() == 1 and events.get().detail["role"] == "reader"


def test_revoked_and_unknown_invitation_links_do_nothing(people: dict[str, Person], tenant: Tenant) -> None:
    created = invitation_create(principal=Principal.system(tenant), role="admin")
    admin = people["admin"].client()
    assert admin.post(f"/admin/invitations/{created.invitation.pk}/revoke/").status_code == 302
    assert Invitation.objects.get(pk=created.invitation.pk).revoked_at is not None
    for token in (created.token, "emi_" + "x" * 43, "garbage", "emi_" + "y" * 5000):
        form = {"step": "create", "username": "mallory", "password": "long pw 12345", "password_again": "long pw 12345"}
        response = Client().post(f"/invite/{token}/", form)
        assert response.status_code == 404
    assert not get_user_model().objects.filter(username="mallory").exists()


@override_settings(EMAIL_HOST="127.0.0.1", EASYMEMORY_EMAIL_ENABLED=True,
                   EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")  # fmt: skip
def test_an_invitation_by_e_mail_is_mailed_only_when_mail_is_configured(
    people: dict[str, Person], django_capture_on_commit_callbacks: Any
) -> None:
    from django.core import mail

    with django_capture_on_commit_callbacks(execute=True):
        response = people["admin"].client().post("/admin/members/", {"email": "new@example.org", "role": "reader",
                                                                       "expires_in_days": "3"})  # fmt: skip
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and "/invite/emi_" in mail.outbox[0].body
    assert mail.outbox[0].to == ["new@example.org"]
    event = AuditEvent.objects.get(action="invitation.create")
    assert "new@example.org" not in json.dumps(event.detail)  # the address stays out of the trail


# --- your account -------------------------------------------------------------------------------


def test_a_password_change_ends_the_other_sessions_and_sign_out_everywhere_too(people: dict[str, Person]) -> None:
    rita = people["reader"]
    here, elsewhere, third = Client(), Client(), Client()
    for client in (here, elsewhere, third):
        assert client.login(username="rita", password=PASSWORD)
    page = here.get("/account/").content.decode()
    assert page.count("<tr") >= 4  # header + three sessions
    wrong = here.post("/account/", {"old_password": "nope", "new_password": "a new passphrase 9",
                                    "new_password_again": "a new passphrase 9"})  # fmt: skip
    assert wrong.status_code == 200 and "not correct" in wrong.content.decode()
    changed = here.post("/account/", {"old_password": PASSWORD, "new_password": "a new passphrase 9",
                                      "new_password_again": "a new passphrase 9"})  # fmt: skip
    assert changed.status_code == 302
    assert here.get("/search/").status_code == 200  # this browser stays in
    assert elsewhere.get("/search/").status_code == 302  # the others are out
    assert third.get("/search/").status_code == 302
    fourth = Client()
    assert fourth.login(username="rita", password="a new passphrase 9")
    assert here.post("/account/sessions/end/").status_code == 302
    assert fourth.get("/search/").status_code == 302 and here.get("/search/").status_code == 200
    live = Session.objects.filter(session_key__in=UserSession.objects.filter(user=rita.user).values("session_key"))
    assert live.count() == 1
    assert AuditEvent.objects.filter(action="account.sign_out_everywhere", target_id=str(rita.user.pk)).exists()


def test_superusers_manage_accounts_and_hand_out_one_time_set_password_links(
    people: dict[str, Person], tenant: Tenant
) -> None:
    root = make_person("root", tenant, "admin")
    root.user.is_superuser = True
    root.user.save(update_fields=["is_superuser"])
    client = root.client()
    assert client.post("/admin/accounts/", {"username": "newbie", "email": "n@example.org"}).status_code == 302
    page = client.get("/admin/accounts/").content.decode()
    link = page.split('id="new-reset-url">', 1)[1].split("<", 1)[0]
    assert "/reset/" in link and "/reset/" not in client.get("/admin/accounts/").content.decode()
    path = link.split("testserver", 1)[1]
    visitor = Client()
    form_page = visitor.get(path, follow=True)
    assert b"Set your password" in form_page.content
    done = visitor.post(form_page.redirect_chain[-1][0], {"new_password1": "fresh passphrase 7",
                                                          "new_password2": "fresh passphrase 7"})  # fmt: skip
    assert done.status_code == 302
    assert Client().login(username="newbie", password="fresh passphrase 7")
    assert b"not valid" in Client().get(path, follow=True).content  # used once
    newbie = get_user_model().objects.get(username="newbie")
    client.post(f"/admin/accounts/{newbie.pk}/", {"action": "membership", "tenant": str(tenant.pk), "role": "writer"})
    assert Membership.objects.get(user=newbie, tenant=tenant).role == "writer"
    client.post(f"/admin/accounts/{newbie.pk}/", {"action": "deactivate"})
    assert not Client().login(username="newbie", password="fresh passphrase 7")
    # A tenant admin cannot reach any of this.
    admin = people["admin"].client()
    assert admin.get("/admin/accounts/").status_code == 403
    assert admin.post(f"/admin/accounts/{newbie.pk}/", {"action": "reset"}).status_code == 403


# --- tenant life cycle -----------------------------------------------------------------------------


def tenant_models() -> list[Any]:
    owned = [m for m in apps.get_models() if any(f.name == "tenant" for f in m._meta.get_fields())]
    return [m for m in owned if m is not AuditEvent]


def test_a_tenant_is_renamed_exported_and_deleted_with_every_row_but_its_audit_trail(
    people: dict[str, Person], tenant: Tenant, other_tenant: Tenant
) -> None:
    with override_settings(EASYMEMORY_GRAPH_SIMILARITY=2.0):
        remember(Principal.system(tenant), "Alice works at Acme Robotics.")
    add(other_tenant, "globex keeps this")
    api_key_create(tenant=tenant, name="ci")
    oauth_app_create(principal=Principal.system(tenant), name="sync", role="reader")
    job_create(principal=Principal.system(tenant), kind="json", params={}, upload=("a.json", b"[]"), enqueue=False)
    invitation_create(principal=Principal.system(tenant), role="reader")
    admin = people["admin"].client()

    assert admin.post(f"/admin/tenants/{tenant.pk}/", {"name": "Acme Labs"}).status_code == 302
    assert Tenant.objects.get(pk=tenant.pk).name == "Acme Labs"
    export = admin.get(f"/admin/tenants/{tenant.pk}/export/")
    lines = [json.loads(line) for line in body_of(export).splitlines()]
    assert export["Content-Disposition"].startswith("attachment;")
    assert lines[0]["format"] == "easymemory-export"
    assert [r["content"] for r in lines if r["type"] == "memory"] == ["Alice works at Acme Robotics."]
    assert {r["name"] for r in lines if r["type"] == "entity"} == {"Alice", "Acme Robotics"}  # the graph too
    assert [r["predicate"] for r in lines if r["type"] == "relation"] == ["works_at"]

    assert b"memories" in admin.get(f"/admin/tenants/{tenant.pk}/").content  # the counts it will remove
    admin.post(f"/admin/tenants/{tenant.pk}/delete/", {"confirm": "Acme Labs"})  # the name is not the slug
    assert Tenant.objects.filter(pk=tenant.pk).exists()
    before = AuditEvent.objects.filter(tenant_id=tenant.pk).count()
    assert admin.post(f"/admin/tenants/{tenant.pk}/delete/", {"confirm": "acme"}).status_code == 302
    assert not Tenant.objects.filter(pk=tenant.pk).exists()
    leftovers = {m.__name__: m._default_manager.filter(tenant_id=tenant.pk).count() for m in tenant_models()}
    assert not any(leftovers.values()), leftovers
    from oauth2_provider.models import get_access_token_model

    assert not get_access_token_model().objects.filter(application__tenant_id=tenant.pk).exists()
    assert AuditEvent.objects.filter(tenant_id=tenant.pk).count() == before  # the trail stays
    deleted = AuditEvent.objects.get(tenant=None, action="tenant.delete")
    assert deleted.detail["rows"]["memory.Memory"] == 1
    assert Memory.objects.filter(tenant=other_tenant, content="globex keeps this").exists()


def test_the_audit_chain_is_verified_and_a_filtered_range_exported(people: dict[str, Person], tenant: Tenant) -> None:
    add(tenant, "one")
    add(tenant, "two")
    admin = people["admin"].client()
    response = admin.post(f"/admin/tenants/{tenant.pk}/verify/", {"next": "audit"}, follow=True)
    assert b"verified" in response.content and b"intact" in response.content
    export = admin.get("/admin/audit/export/?action=memory.create")
    rows = [json.loads(line) for line in body_of(export).splitlines()]
    assert [row["action"] for row in rows] == ["memory.create", "memory.create"]
    assert rows[0]["seq"] < rows[1]["seq"] and rows[1]["prev_hash"] and rows[1]["hash"]
    assert admin.get("/admin/audit/export/?since=not-a-date").status_code == 400


# --- bulk actions ------------------------------------------------------------------------------------


def test_a_bulk_deletion_is_confirmed_by_its_count_and_runs_as_one_audited_job(
    people: dict[str, Person], tenant: Tenant, other_tenant: Tenant
) -> None:
    ours = [add(tenant, f"note {i}", tags=["old"] if i < 3 else []) for i in range(5)]
    theirs = add(other_tenant, "not yours")
    writer = people["writer"].client()
    ids = [str(m.id) for m in ours[:3]] + [str(theirs.id)]
    confirm = writer.post("/memories/bulk/", {"action": "delete", "ids": ids})
    assert confirm.status_code == 200 and b"Delete 3 memories?" in confirm.content  # the foreign id drops out
    assert Memory.objects.filter(tenant=tenant).count() == 5
    started = writer.post("/memories/bulk/", {"action": "delete", "ids": ids, "confirmed": "on", "expected": "3"})
    job = MemoryBulkJob.objects.get(tenant=tenant)
    assert started.status_code == 302 and started["Location"] == f"/memories/bulk/{job.id}/"
    assert job.total == 3 and job.status == "queued"
    bulk_job_run(str(job.id))  # the worker's part
    job.refresh_from_db()
    assert (job.status, job.done, job.skipped, job.failed) == ("done", 3, 0, 0)
    assert Memory.objects.filter(tenant=tenant).count() == 2 and Memory.objects.filter(pk=theirs.pk).exists()
    assert MemoryHistory.objects.filter(tenant=tenant, event="DELETE").count() == 3
    card = writer.get(f"/memories/bulk/{job.id}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'data-status="done"' in card and "3 done" in card
    bulk_events = AuditEvent.objects.filter(tenant=tenant, action__startswith="memory.bulk")
    actions = list(bulk_events.order_by("seq").values_list("action", flat=True))
    assert actions == ["memory.bulk.create", "memory.bulk.done"]
    assert bulk_job_run(str(job.id)) is None  # a redelivered task finds it done


def test_all_matching_a_filter_and_the_count_asked_again_when_it_changed(
    people: dict[str, Person], tenant: Tenant
) -> None:
    for i in range(4):
        add(tenant, f"project note {i}", tags=["project"])
    add(tenant, "unrelated", tags=["misc"])
    writer = people["writer"].client()
    form = {"action": "delete", "all": "on", "filters": "tags=project"}
    assert b"Delete 4 memories?" in writer.post("/memories/bulk/", form).content
    add(tenant, "one more project note", tags=["project"])
    again = writer.post("/memories/bulk/", form | {"confirmed": "on", "expected": "4"})
    assert b"Delete 5 memories?" in again.content and b"selection changed" in again.content
    assert not MemoryBulkJob.objects.exists()


def test_bulk_tags_scope_and_export(people: dict[str, Person], tenant: Tenant) -> None:
    notes = [add(tenant, f"meeting {i}", tags=["draft"]) for i in range(3)]
    clash = add(tenant, "meeting 0", user_ref="ana", agent_id="bot")  # same content already in the target scope
    writer = people["writer"].client()
    ids = [str(m.id) for m in notes]
    for action, extra in (("tags_add", {"tags": "final, q3"}), ("tags_remove", {"tags": "draft"}),
                          ("rescope", {"user_ref": "ana", "agent_id": "bot"})):  # fmt: skip
        writer.post("/memories/bulk/", {"action": action, "ids": ids, **extra})
        bulk_job_run(str(MemoryBulkJob.objects.latest("created_at").id))
    for memory in notes:
        memory.refresh_from_db()
        assert memory.tags == ["final", "q3"]
    moved = Memory.objects.filter(pk__in=ids, user_ref="ana", agent_id="bot")
    assert moved.count() == 2  # "meeting 0" clashes with the copy already in ana's scope
    failed = MemoryBulkJob.objects.get(action="rescope")
    assert failed.failed == 1 and "already holds" in failed.errors[0]["error"]
    assert Memory.objects.get(pk=clash.pk).version == 1 and Memory.objects.get(pk=notes[0].pk).user_ref == ""
    empty_tags = writer.post("/memories/bulk/", {"action": "tags_add", "ids": ids, "tags": " , "})
    assert empty_tags.status_code == 400 and MemoryBulkJob.objects.count() == 3
    export = people["reader"].client().post("/memories/bulk/", {"action": "export", "ids": ids[:2]})
    lines = body_of(export).splitlines()
    assert len(lines) == 3 and {json.loads(line)["id"] for line in lines[1:]} == set(ids[:2])
    assert people["reader"].client().post("/memories/bulk/", {"action": "tags_add", "ids": ids,
                                                              "tags": "x"}).status_code == 403  # fmt: skip


# --- graph viewer ------------------------------------------------------------------------------------


@pytest.fixture
def graph(tenant: Tenant) -> dict[str, Entity]:
    system = Principal.system(tenant)
    with override_settings(EASYMEMORY_GRAPH_SIMILARITY=2.0):
        remember(system, "Alice lives in Milan.", occurred_at=datetime(2019, 1, 1, tzinfo=UTC))
        remember(system, "Alice moved to Berlin.", occurred_at=datetime(2023, 5, 1, tzinfo=UTC))
        remember(system, "Alice works at Acme Robotics. Bob Smith works at Acme Robotics.")
    return {e.key: e for e in Entity.objects.filter(tenant=tenant)}


def names(data: dict[str, Any]) -> set[str]:
    return {node["name"] for node in data["nodes"]}


def test_the_viewer_follows_depth_as_of_and_relation_type(people: dict[str, Person], graph: dict[str, Entity]) -> None:
    client = people["reader"].client()
    alice = graph["alice"].pk
    now = client.get(f"/entities/{alice}/neighbors.json?depth=1").json()
    assert names(now) == {"Alice", "Berlin", "Acme Robotics"}
    then = client.get(f"/entities/{alice}/neighbors.json?depth=1&as_of=2020-06-01").json()
    assert names(then) == {"Alice", "Milan"}
    deeper = client.get(f"/entities/{alice}/neighbors.json?depth=2").json()
    assert "Bob Smith" in names(deeper)
    works = client.get(f"/entities/{alice}/neighbors.json?depth=2&predicate=works_at").json()
    assert names(works) == {"Alice", "Acme Robotics", "Bob Smith"}
    for bad in ("depth=0", "depth=4", "as_of=yesterday", "as_of=" + "9" * 500):
        response = client.get(f"/entities/{alice}/neighbors.json?{bad}")
        assert response.status_code == 400, bad
    page = client.get(f"/graph/?entity={alice}&depth=2&as_of=2020-06-01&predicate=lives_in").content.decode()
    assert "depth=2&amp;as_of=2020-06-01&amp;predicate=lives_in" in page and 'data-legend="graph-legend"' in page


def test_a_large_neighbourhood_is_summarised_not_drawn(
    people: dict[str, Person], graph: dict[str, Entity], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboard import graph_views

    monkeypatch.setattr(graph_views, "DRAW_MAX_NODES", 2)
    data = people["reader"].client().get(f"/entities/{graph['alice'].pk}/neighbors.json").json()
    assert [node["name"] for node in data["nodes"]] == ["Alice"] and data["edges"] == []
    assert data["summary"]["relations"] == 2 and data["summary"]["nodes"] == 3
    assert {row["predicate"] for row in data["summary"]["by_predicate"]} == {"lives_in", "works_at"}


def test_a_relation_shows_its_validity_history_and_source_memories(
    people: dict[str, Person], graph: dict[str, Entity], other_tenant: Tenant
) -> None:
    berlin = Relation.objects.get(source=graph["alice"], target=graph["berlin"])
    data = people["reader"].client().get(f"/graph/relations/{berlin.pk}.json").json()
    assert [(r["target"]["name"], r["current"]) for r in data["history"]] == [("Milan", False), ("Berlin", True)]
    assert data["history"][0]["invalid_at"].startswith("2023-05-01")
    assert [m["content"] for m in data["source_memories"]] == ["Alice moved to Berlin."]
    assert data["source_memories"][0]["url"].startswith("/memories/")
    outsider = make_person("olga", other_tenant, "admin").client()
    assert outsider.get(f"/graph/relations/{berlin.pk}.json").status_code == 404


# --- rough edges ------------------------------------------------------------------------------------------


def test_the_filters_badge_shows_only_for_a_real_filter(people: dict[str, Person], tenant: Tenant) -> None:
    add(tenant, "alpha")
    client = people["reader"].client()
    assert b"badge\">active" not in client.get("/search/?q=alpha&k=10").content
    assert b"badge\">active" in client.get("/search/?q=alpha&kind=note").content
    assert b"badge\">active" not in client.get("/memories/?kind=").content


def test_the_stats_chart_keeps_its_last_label_inside(people: dict[str, Person]) -> None:
    chart = people["reader"].client().get("/stats/").context["chart"]
    last = chart.rsplit('<text class="tick"', 1)[1]
    assert 'x="720' in last and 'text-anchor="end"' in last


@override_settings(DEBUG=False)
def test_error_pages_are_styled_and_there_is_a_favicon(people: dict[str, Person]) -> None:
    missing = people["reader"].client().get("/memories/00000000-0000-0000-0000-000000000000/")
    assert missing.status_code == 404 and b"app.css" in missing.content and b"Not found" in missing.content
    icon = Client().get("/favicon.ico")
    assert icon.status_code == 200 and icon["Content-Type"] == "image/x-icon" and icon.content[:4] == b"\0\0\1\0"
    from django.template.loader import render_to_string

    assert "app.css" in render_to_string("500.html") and "app.css" in render_to_string("403.html")


def test_it_never_reveals_accounts_of_other_tenants_on_member_pages(
    people: dict[str, Person], tenant: Tenant
) -> None:
    UserFactory(username="hidden-elsewhere")
    page = people["admin"].client().get("/admin/members/").content.decode()
    assert "hidden-elsewhere" not in page and "otto" not in page
    accounts = people["admin"].client().get("/admin/accounts/")
    assert accounts.status_code == 403 and b"hidden-elsewhere" not in accounts.content


def test_a_bulk_job_already_running_elsewhere_is_not_run_twice(people: dict[str, Person], tenant: Tenant) -> None:
    from django.db import connections

    from memory.bulk import _LOCK_CLASS, bulk_job_create

    memory = add(tenant, "only once")
    job = bulk_job_create(principal=people["writer"].principal, action="tags_add", memory_ids=[memory.id],
                          params={"tags": ["x"]}, enqueue=False)  # fmt: skip
    # Another worker holds the job's lock (a second database session, as another process would).
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [_LOCK_CLASS, str(job.id)])
        assert bulk_job_run(str(job.id)) is None
        job.refresh_from_db()
        assert job.status == "queued" and job.done == 0
    finally:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [_LOCK_CLASS, str(job.id)])
        other.close()
    assert bulk_job_run(str(job.id)).done == 1  # type: ignore[union-attr]

"""What the dashboard pages do, through Django's test client (the browser tests cover the rest)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client

from accounts.authentication import SESSION_TENANT_KEY
from accounts.models import ApiKey, Membership
from accounts.principal import Principal
from accounts.roles import Role
from memory.models import Memory
from memory.services import MemoryInput, memory_create, memory_mark_failed, memory_update
from tests.dashboard.conftest import Person
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def remember(tenant: Any, content: str, **fields: Any) -> Memory:
    return memory_create(principal=Principal.system(tenant), data=MemoryInput(content=content, **fields)).memory


def test_it_switches_only_to_the_users_own_tenants(people: dict[str, Person], tenant: Any, other_tenant: Any) -> None:
    writer = people["writer"]
    MembershipFactory(user=writer.user, tenant=other_tenant, role=Role.READER.value)
    remember(other_tenant, "globex quarterly numbers")
    client = writer.client()
    page = client.get("/memories/").content.decode()
    assert "Globex" in page and "globex quarterly numbers" not in page  # offered in the switcher, not shown

    response = client.post("/tenant/", {"tenant": str(other_tenant.id), "next": "/memories/"})
    assert response.status_code == 302 and response["Location"] == "/memories/"
    page = client.get("/memories/").content.decode()
    assert "globex quarterly numbers" in page
    assert "+ Add memory" not in page  # a reader there

    stranger = people["outsider"].client()
    assert stranger.post("/tenant/", {"tenant": str(tenant.id)}).status_code == 404
    assert stranger.session.get(SESSION_TENANT_KEY) is None
    response = client.post("/tenant/", {"tenant": str(tenant.id), "next": "https://evil.example/"})
    assert response["Location"] == "/search/"


def test_it_shows_an_api_key_secret_exactly_once(people: dict[str, Person], tenant: Any) -> None:
    client = people["admin"].client()
    response = client.post("/admin/api-keys/", {"name": "laptop", "role": "writer", "expires_in_days": "30"})
    assert response.status_code == 302
    key = ApiKey.objects.get(tenant=tenant, name="laptop")
    first = client.get("/admin/api-keys/")
    secret = first.context["new_key"]["secret"]
    assert secret.startswith(key.prefix) and secret in first.content.decode()
    assert first["Cache-Control"] == "no-store"
    second = client.get("/admin/api-keys/").content.decode()
    assert secret not in second and f"{key.prefix}…" in second
    assert key.expires_at is not None and key.created_by == people["admin"].user


def test_it_reports_bad_input_on_the_field_and_writes_nothing(people: dict[str, Person], tenant: Any) -> None:
    client = people["writer"].client()
    for payload, field in [
        ({"content": "   ", "kind": "note", "importance": "0.5"}, "content"),
        ({"content": "bad\x00byte", "kind": "note", "importance": "0.5"}, "content"),
        ({"content": "ok", "kind": "note", "importance": "7"}, "importance"),
        ({"content": "ok", "kind": "note", "importance": "0.5", "metadata": "[1, 2]"}, "metadata"),
    ]:
        response = client.post("/memories/new/", payload)
        assert response.status_code == 200
        assert response.context["form"].errors.get(field), (payload, response.context["form"].errors)
    assert not Memory.objects.filter(tenant=tenant).exists()


def test_it_shows_enrichment_state_and_failure_reason(people: dict[str, Person], tenant: Any) -> None:
    memory = remember(tenant, "will fail")
    client = people["reader"].client()
    page = client.get(f"/memories/{memory.id}/").content.decode()
    assert "state-pending" in page and 'hx-trigger="every 2s"' in page
    memory_mark_failed(memory_ids=[str(memory.id)], error="extractor timed out after 30 s")
    state = client.get(f"/memories/{memory.id}/state/").content.decode()
    assert "state-failed" in state and "extractor timed out after 30 s" in state and "every 2s" not in state
    assert "extractor timed out" in client.get("/stats/").content.decode()
    listing = client.get("/memories/?state=failed").content.decode()
    assert "will fail" in listing
    assert "will fail" not in client.get("/memories/?state=done").content.decode()


def test_it_diffs_history_and_escapes_content(people: dict[str, Person], tenant: Any) -> None:
    memory = remember(tenant, "meet <b>Bob</b> on Friday")
    principal = people["writer"].principal
    memory_update(principal=principal, memory=memory, changes={"content": "meet <b>Bob</b> on Monday"})
    page = people["reader"].client().get(f"/memories/{memory.id}/").content.decode()
    assert "<del>Friday</del><ins>Monday</ins>" in page
    assert "<b>Bob</b>" not in page and "&lt;b&gt;Bob&lt;/b&gt;" in page


def test_it_filters_the_list_and_search(people: dict[str, Person], tenant: Any) -> None:
    remember(tenant, "budget review notes", kind="note", tags=["finance"])
    remember(tenant, "budget is approved", kind="fact", user_ref="ana")
    client = people["reader"].client()
    page = client.get("/memories/?kind=fact").content.decode()
    assert "budget is approved" in page and "budget review notes" not in page
    page = client.get("/memories/?tags=finance").content.decode()
    assert "budget review notes" in page and "budget is approved" not in page
    remember(tenant, "budget draft from 2019", occurred_at=datetime(2019, 3, 1, tzinfo=UTC))
    then = client.get("/search/?q=budget&as_of=2019-12-31").context["hits"]
    assert [hit.memory.content for hit, _ in then] == ["budget draft from 2019"]
    bad = client.get("/search/?q=budget&as_of=someday")
    assert bad.context["hits"] is None and "Enter a valid date" in bad.content.decode()
    response = client.get("/search/?q=budget&user_ref=ana")
    hits = response.context["hits"]
    assert [hit.memory.content for hit, _ in hits] == ["budget is approved"]
    hit, why = hits[0]
    assert "fulltext" in hit.evidence and {s.name for s in why.signals} <= set(hit.evidence)
    assert 99 <= sum(s.share for s in why.signals) <= 101
    partial = client.get("/search/?q=budget", headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in partial and "budget review notes" in partial


def test_its_search_results_say_which_memories_wait_for_their_embedding(people: dict[str, Person], tenant: Any) -> None:
    from tests.conftest import embed_pending

    remember(tenant, "the zeppelin hangar opens on Thursday")
    client = people["reader"].client()
    page = client.get("/search/?q=zeppelin").content.decode()
    assert "the zeppelin hangar opens on Thursday" in page and "not embedded yet" in page
    embed_pending()
    page = client.get("/search/?q=zeppelin").content.decode()
    assert "the zeppelin hangar opens on Thursday" in page and "not embedded yet" not in page


def test_it_keeps_at_least_one_admin(people: dict[str, Person], tenant: Any) -> None:
    admin = people["admin"]
    own = Membership.objects.get(user=admin.user, tenant=tenant)
    client = admin.client()
    client.post(f"/admin/members/{own.id}/", {"role": "reader"})
    client.post(f"/admin/members/{own.id}/", {"remove": "1"})
    own.refresh_from_db()
    assert own.role == Role.ADMIN.value
    reader = Membership.objects.get(user=people["reader"].user, tenant=tenant)
    client.post(f"/admin/members/{reader.id}/", {"role": "admin"})
    client.post(f"/admin/members/{own.id}/", {"role": "writer"})  # allowed now: another admin exists
    own.refresh_from_db()
    assert own.role == Role.WRITER.value


def test_it_never_adds_an_account_by_name_it_invites_instead(people: dict[str, Person], tenant: Any) -> None:
    """Issue 13 item 8: an admin cannot discover or add another tenant's account by its name."""
    client = people["admin"].client()
    existing = client.post("/admin/members/", {"username": "otto", "role": "reader"})
    missing = client.post("/admin/members/", {"username": "nobody", "role": "reader"})
    assert not Membership.objects.filter(tenant=tenant, user=people["outsider"].user).exists()
    # The form has no username field at all: both answers are the same invitation form again.
    assert existing.status_code == missing.status_code == 200
    assert b"otto" not in existing.content
    response = client.post("/admin/members/", {"role": "writer", "expires_in_days": "7"})
    assert response.status_code == 302
    page = client.get("/admin/members/").content.decode()
    assert "/invite/emi_" in page
    assert "/invite/emi_" not in client.get("/admin/members/").content.decode()  # shown once


def test_it_logs_in_and_out_with_the_login_page(people: dict[str, Person], settings: Any) -> None:
    user = people["reader"].user
    user.set_password("correct horse battery")
    user.save(update_fields=["password"])
    client = Client()
    response = client.post("/login/?next=/stats/", {"username": user.username, "password": "wrong", "next": "/stats/"})
    assert response.status_code == 200 and response.context["form"].errors
    good = {"username": user.username, "password": "correct horse battery", "next": "/stats/"}
    response = client.post("/login/", good)
    assert response.status_code == 302 and response["Location"] == "/stats/"
    assert client.get("/stats/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert client.get("/stats/").status_code == 302


def test_it_tells_a_user_without_tenants_to_ask_an_admin(db: Any) -> None:
    loner = UserFactory(username="loner")
    loner.save(update_fields=["password"])
    client = Client()
    client.force_login(loner)
    response = client.get("/search/")
    assert response.status_code == 403 and "not a member of any tenant" in response.content.decode()


def test_it_lets_superusers_list_and_create_tenants(people: dict[str, Person]) -> None:
    boss = people["admin"].user
    boss.is_superuser = True
    boss.save(update_fields=["is_superuser"])
    client = people["admin"].client()
    page = client.get("/admin/tenants/").content.decode()
    assert "Acme" in page and "Globex" in page
    assert client.post("/admin/tenants/", {"name": "Initech"}).status_code == 302
    created = Membership.objects.get(user=boss, tenant__slug="initech")
    assert created.role == Role.ADMIN.value
    response = client.post("/admin/tenants/", {"name": "Initech again", "slug": "initech"})
    assert response.status_code == 200 and response.context["form"].errors["slug"]


def test_it_names_the_people_and_keys_in_history(people: dict[str, Person], tenant: Any, admin: Any) -> None:
    memory = memory_create(principal=admin.principal, data=MemoryInput(content="added by key")).memory
    memory_update(principal=people["writer"].principal, memory=memory, changes={"content": "edited by wes"})
    page = people["reader"].client().get(f"/memories/{memory.id}/").content.decode()
    assert "API key admin (" in page and "· wes" in page


def test_it_explains_each_signals_share_of_the_score() -> None:
    from dashboard.presenters import explain

    evidence = {
        "vector": {"rank": 1, "score": 0.8},
        "fulltext": {"rank": 3, "score": 0.1},
        "context": {"score": 0.002},
        "adjustment": {"importance": 0.01, "recency": -0.02},
    }
    why = explain(evidence, weights={"vector": 1.0, "fulltext": 1.0}, rrf_k=60)
    assert [s.name for s in why.signals] == ["vector", "fulltext", "context"]
    assert why.signals[0].share > why.signals[1].share > why.signals[2].share
    assert why.signals[2].rank is None
    assert why.adjustment == {"importance": 0.01, "recency": -0.02}

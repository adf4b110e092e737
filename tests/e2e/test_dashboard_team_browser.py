"""Issue 19's flows in a real headless Chromium against the real ASGI server (uvicorn) and database:
invite → accept → sign in as the new member with the right role; a bulk deletion confirmed by its
count; a tenant deleted leaving no rows; the graph viewer's depth and as-of changing what is drawn;
the narrow-screen menu and both colour themes (screenshots under tests/e2e/screenshots/)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.apps import apps
from django.test import override_settings
from playwright.sync_api import Browser, expect

from accounts.models import Tenant
from accounts.principal import Principal
from accounts.roles import Role
from accounts.services import api_key_create
from audit.models import AuditEvent
from graph.models import Entity, Relation
from memory.bulk import bulk_job_run
from memory.models import Memory, MemoryBulkJob
from memory.services import MemoryInput, memory_create
from tests.dashboard.conftest import PASSWORD, make_person
from tests.e2e.browser import chromium, log_in, screenshot
from tests.graph.helpers import remember

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(autouse=True)
def sync_database_access(monkeypatch: pytest.MonkeyPatch) -> None:
    """Playwright's sync API keeps an asyncio loop in this thread; the test's database calls are
    plain synchronous calls between browser steps (see test_dashboard_browser.py)."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def test_an_admin_invites_a_member_who_joins_and_bulk_deletes_then_the_tenant_goes(
    asgi_server: Any, browser: Browser, tenant: Tenant, other_tenant: Tenant
) -> None:
    admin = make_person("ada", tenant, Role.ADMIN.value)
    base = asgi_server.url
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    log_in(page, base, admin.name, PASSWORD)

    # invite: a one-time link, shown once, to copy
    page.goto(f"{base}/admin/members/")
    page.select_option("#id_role", "writer")
    page.click("button:has-text('Create invitation')")
    link = page.locator("#new-invite-url").inner_text().strip()
    assert re.fullmatch(rf"{re.escape(base)}/invite/emi_[\w-]+/", link)
    expect(page.locator("table.invitations")).to_contain_text("pending")
    screenshot(page, "20-members-invitation")

    # the invited person creates an account and joins as a writer
    guest = browser.new_context(viewport={"width": 1360, "height": 900})
    newcomer = guest.new_page()
    newcomer.goto(link)
    expect(newcomer.locator("h2")).to_contain_text("Join Acme")
    screenshot(newcomer, "21-invitation")
    newcomer.fill("#id_username", "nina")
    newcomer.fill("#id_password", "a long passphrase 4")
    newcomer.fill("#id_password_again", "a long passphrase 4")
    newcomer.click("button:has-text('Create account and join')")
    newcomer.wait_for_url(f"{base}/search/")
    expect(newcomer.locator(".whoami .badge")).to_have_text("writer")
    # signing in again later: the same role
    newcomer.click(".whoami button:has-text('Log out')")
    log_in(newcomer, base, "nina", "a long passphrase 4")
    expect(newcomer.locator(".whoami .badge")).to_have_text("writer")
    newcomer.goto(f"{base}/memories/")
    expect(newcomer.locator("text=+ Add memory")).to_be_visible()
    newcomer.goto(f"{base}/account/")
    expect(newcomer.locator("table.memberships")).to_contain_text("Acme")
    expect(newcomer.locator("table.sessions tbody tr")).to_have_count(1)
    screenshot(newcomer, "22-account")
    # the link worked once
    assert newcomer.goto(link).status == 404
    page.goto(f"{base}/admin/members/")
    expect(page.locator("table.invitations")).to_contain_text("accepted")
    expect(page.locator("table.invitations")).to_contain_text("nina")

    # the new writer deletes three memories in bulk, confirmed by their count
    for i in range(4):
        memory_create(principal=Principal.system(tenant), data=MemoryInput(content=f"retro note {i}"))
    newcomer.goto(f"{base}/memories/")
    boxes = newcomer.locator("table.memories tbody input[name=ids]")
    expect(boxes).to_have_count(4)
    for index in range(3):
        boxes.nth(index).check()
    expect(newcomer.locator("[data-bulk-count]")).to_have_text("3 selected:")
    newcomer.select_option("#bulk-action", "delete")
    screenshot(newcomer, "23-bulk-select")
    newcomer.click("#bulk-apply")
    expect(newcomer.locator("h1")).to_have_text("Delete 3 memories?")
    screenshot(newcomer, "24-bulk-confirm")
    assert Memory.objects.filter(tenant=tenant).count() == 4
    newcomer.click("#confirm-delete")
    job = MemoryBulkJob.objects.get(tenant=tenant)
    expect(newcomer).to_have_url(f"{base}/memories/bulk/{job.id}/")
    expect(newcomer.locator("#bulk-card")).to_have_attribute("data-status", "queued")
    bulk_job_run(str(job.id))  # the worker's part, run here; the page polls its progress
    expect(newcomer.locator("#bulk-card")).to_have_attribute("data-status", "done", timeout=15_000)
    expect(newcomer.locator("#bulk-counts")).to_contain_text("3 done")
    screenshot(newcomer, "25-bulk-done")
    assert Memory.objects.filter(tenant=tenant).count() == 1
    guest.close()

    # verify the audit chain, then delete the tenant after typing its slug
    api_key_create(tenant=tenant, name="ci")
    page.goto(f"{base}/admin/tenants/{tenant.pk}/")
    page.click("button:has-text('Verify chain')")
    expect(page.locator("#verify-result")).to_contain_text("Intact")
    page.fill("#id_confirm", "acme")
    screenshot(page, "26-tenant")
    page.click("button:has-text('Delete tenant')")
    expect(page.locator(".flash.success")).to_contain_text("deleted")
    owned = [m for m in apps.get_models() if any(f.name == "tenant" for f in m._meta.get_fields())]
    owned = [m for m in owned if m is not AuditEvent]
    leftovers = {m.__name__: m._default_manager.filter(tenant_id=tenant.pk).count() for m in owned}
    assert not any(leftovers.values()), leftovers
    assert not Tenant.objects.filter(pk=tenant.pk).exists()
    assert AuditEvent.objects.filter(tenant_id=tenant.pk).exists()  # the trail stays
    assert Tenant.objects.filter(pk=other_tenant.pk).exists()
    context.close()


def test_the_graph_viewer_follows_depth_and_as_of_and_the_layout_fits_a_phone(
    asgi_server: Any, browser: Browser, tenant: Tenant
) -> None:
    reader = make_person("rita", tenant, Role.READER.value)
    with override_settings(EASYMEMORY_GRAPH_SIMILARITY=2.0):  # exact-name resolution: no model load here
        remember(Principal.system(tenant), "Alice lives in Milan.", occurred_at=datetime(2019, 1, 1, tzinfo=UTC))
        remember(Principal.system(tenant), "Alice moved to Berlin.", occurred_at=datetime(2023, 5, 1, tzinfo=UTC))
        remember(Principal.system(tenant), "Alice works at Acme Robotics. Bob Smith works at Acme Robotics.")
    alice = Entity.objects.get(tenant=tenant, key="alice")
    berlin = Relation.objects.get(tenant=tenant, source=alice, predicate="lives_in", invalid_at=None)
    base = asgi_server.url
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    log_in(page, base, reader.name, PASSWORD)
    page.goto(f"{base}/graph/?entity={alice.pk}")
    viewer = page.locator("#graph")
    expect(viewer).to_have_attribute("data-nodes", "3", timeout=30_000)  # Alice, Berlin, Acme Robotics
    page.select_option("#id_depth", "2")  # the form submits itself
    expect(page).to_have_url(re.compile(r"depth=2"))
    expect(viewer).to_have_attribute("data-nodes", "4", timeout=30_000)  # Bob Smith joins through Acme
    page.fill("#id_as_of", "2020-06-01")
    page.locator("#id_as_of").dispatch_event("change")
    expect(page).to_have_url(re.compile(r"as_of=2020-06-01"))
    expect(viewer).to_have_attribute("data-nodes", "2", timeout=30_000)  # Alice lived in Milan; nothing else yet
    expect(page.locator("#graph-legend .legend-item")).to_have_count(2)  # person, place
    page.goto(f"{base}/graph/?entity={alice.pk}&depth=1")
    expect(viewer).to_have_attribute("data-nodes", "3", timeout=30_000)
    # a relation's validity history and its source memories in the side panel
    page.evaluate(f"document.getElementById('graph').cy.getElementById('e{berlin.pk}').emit('tap')")
    panel = page.locator("#graph-panel")
    expect(panel).to_have_attribute("data-relation", str(berlin.pk))
    expect(panel.locator(".validity li")).to_have_count(2)  # Milan, then Berlin
    expect(panel.locator(".sources")).to_contain_text("Alice moved to Berlin.")
    screenshot(page, "27-graph-controls")
    context.close()

    # dark theme chosen on the page (not only the OS's), kept across pages
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    log_in(page, base, reader.name, PASSWORD)
    page.click("[data-theme-toggle]")  # auto → light
    page.click("[data-theme-toggle]")  # light → dark
    page.goto(f"{base}/memories/")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 17, 21)"
    screenshot(page, "28-dark-theme")
    context.close()

    # a phone: the menu folds away so the search box is on the first screen
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    log_in(page, base, reader.name, PASSWORD)
    expect(page.locator(".nav")).to_be_hidden()
    box = page.locator("#id_q").bounding_box()
    assert box is not None and box["y"] + box["height"] < 844
    screenshot(page, "29-phone")
    page.click(".menu-toggle")
    expect(page.locator(".nav")).to_be_visible()
    expect(page.locator(".menu-toggle")).to_have_attribute("aria-expanded", "true")
    screenshot(page, "30-phone-menu")
    # keyboard: j / k move through a list's rows, Enter opens one
    page.goto(f"{base}/memories/")
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.closest('table.memories tbody tr') !== null")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/memories/[0-9a-f-]{36}/$"))
    assert page.goto(f"{base}/no-such-page/").status == 404
    expect(page.locator(".error-code")).to_have_text("404")
    screenshot(page, "31-not-found")
    context.close()

"""The dashboard in a real headless Chromium against the real ASGI server (uvicorn) and database.

One browser for the module; one server per test (the server fixture needs a transactional test).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import override_settings
from playwright.sync_api import Browser, expect

from accounts.principal import Principal
from accounts.roles import Role
from graph.models import Entity
from ingest.models import IngestJob
from ingest.services import job_run
from memory.models import Memory, MemoryHistory
from memory.services import MemoryInput, memory_create
from tests.dashboard.conftest import PASSWORD, make_person
from tests.e2e.browser import chromium, log_in, screenshot
from tests.graph.helpers import remember

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def sync_database_access(monkeypatch: pytest.MonkeyPatch) -> None:
    """Playwright's sync API keeps an asyncio loop in this thread (inside a greenlet), which Django's
    guard takes for async code; the test's database calls are plain synchronous calls between steps."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def test_it_walks_a_writer_and_an_admin_through_the_dashboard(
    asgi_server: Any, browser: Browser, tenant: Any, other_tenant: Any
) -> None:
    admin = make_person("ada", tenant, Role.ADMIN.value)
    base = asgi_server.url
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()

    # log in
    page.goto(f"{base}/memories/")
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    screenshot(page, "01-login")
    log_in(page, base, admin.name, PASSWORD)

    # add a memory
    page.goto(f"{base}/memories/new/")
    page.fill("#id_content", "The Orion launch moved to Friday because the QA sign-off slipped.")
    page.fill("#id_tags", "orion, launch")
    page.fill("#id_user_ref", "ana")
    screenshot(page, "02-memory-new")
    page.click("button:has-text('Save memory')")
    expect(page.locator(".flash.success")).to_contain_text("Memory saved")
    memory = Memory.objects.get(tenant=tenant)
    expect(page).to_have_url(f"{base}/memories/{memory.id}/")

    # edit it, so the history has a diff
    page.click("a:has-text('Edit')")
    page.fill("#id_content", "The Orion launch moved to Monday because the QA sign-off slipped.")
    page.click("button:has-text('Save changes')")
    expect(page.locator(".history .event")).to_have_count(2)
    expect(page.locator(".history del")).to_have_text("Friday")
    expect(page.locator(".history ins").first).to_have_text("Monday")
    screenshot(page, "03-memory-detail")

    # find it by search (typing triggers the htmx search)
    page.goto(f"{base}/search/")
    page.fill("#id_q", "when is the orion launch")
    hit = page.locator(".hit").first
    # The first query may wait for the server's embedding model to finish loading (a deadline, not a timing).
    expect(hit).to_contain_text("Orion launch moved to Monday", timeout=60_000)
    expect(page).to_have_url(re.compile(r"/search/\?.*q=when"))
    hit.locator("summary").click()
    expect(hit.locator(".evidence")).to_contain_text("fulltext")
    screenshot(page, "04-search")
    hit.locator("a.hit-content").click()
    expect(page).to_have_url(f"{base}/memories/{memory.id}/")

    # the list
    page.goto(f"{base}/memories/")
    expect(page.locator("table.memories tbody tr")).to_have_count(1)
    screenshot(page, "05-memories")

    # stats
    page.goto(f"{base}/stats/")
    expect(page.locator(".kpi").first).to_contain_text("1")
    expect(page.locator("svg.chart rect.bar")).to_have_count(30)
    screenshot(page, "06-stats")

    # an API key: the secret once, then only its prefix
    page.goto(f"{base}/admin/api-keys/")
    page.fill("#id_name", "notebook")
    page.select_option("#id_role", "reader")
    page.click("button:has-text('Create key')")
    secret = page.locator("#new-key-secret").inner_text()
    assert secret.startswith("emk_")
    expect(page.locator("table")).to_contain_text(secret[:12])
    screenshot(page, "07-api-keys")
    page.reload()
    expect(page.locator("#new-key-secret")).to_have_count(0)
    assert secret not in page.content()
    expect(page.locator("table")).to_contain_text(secret[:12] + "…")

    # members
    page.goto(f"{base}/admin/members/")
    expect(page.locator("table")).to_contain_text("ada")
    screenshot(page, "08-members")

    # an OAuth application: its client secret once; then the audit trail of all this
    page.goto(f"{base}/admin/oauth-apps/")
    page.fill("#id_name", "nightly-sync")
    page.click("button:has-text('Create')")
    expect(page.locator("#new-app-secret")).to_be_visible()
    screenshot(page, "08c-oauth-apps")
    page.goto(f"{base}/admin/audit/")
    expect(page.locator("table.audit")).to_contain_text("oauth_app.create")
    expect(page.locator("table.audit")).to_contain_text("memory.create")
    screenshot(page, "08d-audit")

    # import a file; the job page follows the job live (websocket events, or polling without them)
    page.goto(f"{base}/ingest/")
    page.select_option("#id_kind", "file")
    page.set_input_files("#id_file", files=[{"name": "retro.md", "mimeType": "text/markdown",
                                              "buffer": b"# Retro\n\nShip smaller releases, every two weeks.\n"}])
    page.click("button:has-text('Upload and import')")
    job = IngestJob.objects.get(tenant=tenant)
    expect(page).to_have_url(f"{base}/ingest/jobs/{job.id}/")
    expect(page.locator("#job-card")).to_have_attribute("data-status", "queued")
    expect(page.locator("#live-status")).to_have_class(re.compile(r"\bon\b"))  # the /ws/events socket is open
    job_run(str(job.id))  # the worker's part, run here; its events reach the page through the socket
    expect(page.locator("#job-card")).to_have_attribute("data-status", "done", timeout=30_000)
    expect(page.locator("#job-card")).to_contain_text("Memories stored")
    screenshot(page, "08b-ingest-job")
    page.goto(f"{base}/ingest/")
    expect(page.locator(f"#job-{job.id}")).to_contain_text("retro.md")
    screenshot(page, "08a-ingest")

    # delete, after a confirmation page
    page.goto(f"{base}/memories/{memory.id}/delete/")
    screenshot(page, "09-memory-delete")
    page.click("button:has-text('Delete memory')")
    expect(page).to_have_url(f"{base}/memories/")
    assert not Memory.objects.filter(pk=memory.id).exists()
    assert MemoryHistory.objects.filter(memory_id=memory.id).count() == 3
    context.close()


def test_it_shows_readers_no_write_controls_and_hides_other_tenants(
    asgi_server: Any, browser: Browser, tenant: Any, other_tenant: Any
) -> None:
    reader = make_person("rita", tenant, Role.READER.value)
    outsider = make_person("otto", other_tenant, Role.ADMIN.value)
    ours = memory_create(principal=Principal.system(tenant), data=MemoryInput(content="Acme's secret roadmap"))
    with override_settings(EASYMEMORY_GRAPH_SIMILARITY=2.0):  # exact-name resolution: no model load here
        remember(Principal.system(tenant), "Alice lives in Milan.", occurred_at=datetime(2019, 1, 1, tzinfo=UTC))
        remember(Principal.system(tenant), "Alice moved to Berlin.", occurred_at=datetime(2023, 5, 1, tzinfo=UTC))
        remember(Principal.system(tenant), "Alice works at Acme Robotics. Bob Smith works at Acme Robotics.")
    graph = {entity.key: entity for entity in Entity.objects.filter(tenant=tenant)}
    base = asgi_server.url
    # The reader's pages are shot in dark mode, so both colour schemes get looked at.
    context = browser.new_context(viewport={"width": 1360, "height": 900}, color_scheme="dark")
    page = context.new_page()
    log_in(page, base, reader.name, PASSWORD)
    page.goto(f"{base}/memories/")
    expect(page.locator("table.memories")).to_contain_text("secret roadmap")
    expect(page.locator("text=Add memory")).to_have_count(0)
    page.goto(f"{base}/memories/{ours.memory.id}/")
    expect(page.locator(".memory-content")).to_contain_text("secret roadmap")
    expect(page.locator("a:has-text('Edit')")).to_have_count(0)
    expect(page.locator("a:has-text('Delete')")).to_have_count(0)
    expect(page.locator(".nav")).not_to_contain_text("API keys")
    screenshot(page, "10-reader-detail")
    response = page.goto(f"{base}/memories/new/")
    assert response is not None and response.status == 403
    response = page.goto(f"{base}/admin/api-keys/")
    assert response is not None and response.status == 403

    # the graph viewer draws the seeded neighbourhood and grows when a node is clicked
    page.goto(f"{base}/graph/?q=bob")
    viewer = page.locator("#graph")
    expect(viewer).to_have_attribute("data-nodes", "2", timeout=30_000)  # Bob Smith and Acme Robotics
    expect(viewer.locator("canvas").first).to_be_visible()
    acme = graph["acme robotics"].pk
    box = viewer.bounding_box()
    assert box is not None
    spot = page.evaluate(f"document.getElementById('graph').cy.getElementById('n{acme}').renderedPosition()")
    page.mouse.click(box["x"] + spot["x"], box["y"] + spot["y"])
    expect(viewer).to_have_attribute("data-nodes", "3")  # Alice joins through Acme Robotics
    expect(page.locator("#graph-panel")).to_contain_text("Acme Robotics")
    screenshot(page, "11-graph")
    page.goto(f"{base}/entities/{graph['alice'].pk}/")
    expect(page.locator(".timeline-chart .tl-bar")).to_have_count(3)
    expect(page.locator("#graph")).to_have_attribute("data-nodes", "3", timeout=30_000)  # Berlin, Acme; Milan is past
    screenshot(page, "12-entity")
    page.goto(f"{base}/entities/")
    screenshot(page, "13-entities")
    context.close()

    # without JavaScript the core pages still work: plain forms and links
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, base, reader.name, PASSWORD)
    page.fill("#id_q", "roadmap")
    page.click("button:has-text('Search')")
    expect(page).to_have_url(re.compile(r"/search/\?q=roadmap"))
    expect(page.locator(".hit").first).to_contain_text("secret roadmap", timeout=60_000)
    page.locator(".hit a.hit-content").first.click()
    expect(page.locator(".memory-content")).to_contain_text("secret roadmap")
    screenshot(page, "14-no-javascript")
    context.close()

    context = browser.new_context()
    page = context.new_page()
    log_in(page, base, outsider.name, PASSWORD)
    response = page.goto(f"{base}/memories/{ours.memory.id}/")
    assert response is not None and response.status == 404
    page.goto(f"{base}/memories/")
    expect(page.locator("body")).not_to_contain_text("secret roadmap")
    context.close()

"""/metrics (access, figures across processes) and the structured per-request log line."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
from typing import Any

import httpx
import pytest
from django.test import Client, override_settings

from core.logs import JsonFormatter
from memory.models import Memory
from tests.conftest import LiveServer, Persona

TOKEN = "m" * 40
LOOPBACK = [ipaddress.ip_network("127.0.0.1/32")]


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.django_db
@override_settings(EASYMEMORY_METRICS_TOKEN="", EASYMEMORY_METRICS_ALLOW=[])
def test_metrics_are_off_when_neither_token_nor_address_is_configured(cast: dict[str, Persona]) -> None:
    assert Client().get("/metrics").status_code == 404
    for persona in cast.values():  # no API key of any role opens it
        assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {persona.key}").status_code == 404


@pytest.mark.django_db
@override_settings(EASYMEMORY_METRICS_TOKEN=TOKEN, EASYMEMORY_METRICS_ALLOW=[])
def test_metrics_need_the_token_and_no_api_key_stands_in_for_it(cast: dict[str, Persona]) -> None:
    anonymous = Client().get("/metrics")
    assert anonymous.status_code == 401 and anonymous.json()["detail"]
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer " + "x" * 40).status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer " + TOKEN[:-1]).status_code == 401
    for persona in cast.values():
        assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {persona.key}").status_code == 401
    scraped = Client(REMOTE_ADDR="10.9.8.7").get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert scraped.status_code == 200
    assert scraped["Content-Type"].startswith("text/plain")
    assert "easymemory_embedding_pending" in scraped.content.decode()


@pytest.mark.django_db
@override_settings(EASYMEMORY_METRICS_TOKEN="", EASYMEMORY_METRICS_ALLOW=LOOPBACK)
def test_metrics_by_address_allowlist(writer: Persona) -> None:
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.0.0.2").get("/metrics").status_code == 403
    assert Client(REMOTE_ADDR="not-an-ip").get("/metrics").status_code == 403
    outside = Client(REMOTE_ADDR="10.0.0.2").get("/metrics", HTTP_AUTHORIZATION=f"Bearer {writer.key}")
    assert outside.status_code == 403


@pytest.mark.django_db
@override_settings(EASYMEMORY_METRICS_TOKEN="", EASYMEMORY_METRICS_ALLOW=LOOPBACK)
def test_metrics_count_requests_by_route_and_status_search_lists_and_the_backlog(writer: Persona) -> None:
    before = Client().get("/metrics").content.decode()
    client = writer.client()
    assert (
        client.post("/v1/memories", {"content": "The build cache lives on the NAS"}, format="json").status_code == 201
    )
    assert client.post("/v1/memories", {"content": ""}, format="json").status_code == 422
    assert client.post("/v1/search", {"query": "where is the build cache"}, format="json").status_code == 200
    after = Client().get("/metrics").content.decode()

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    count = "easymemory_http_request_duration_seconds_count"
    assert delta(count, route="v1/memories", method="POST", status="201") == 1
    assert delta(count, route="v1/memories", method="POST", status="422") == 1
    assert delta(count, route="v1/search", method="POST", status="200") == 1
    for name in ("vector", "fulltext"):
        assert delta("easymemory_search_list_duration_seconds_count", list=name) == 1
    # No identifier or raw path ever becomes a label.
    assert not re.search(r'route="[^"]*[0-9a-f]{8}-[0-9a-f]{4}', after)
    pending = Memory.objects.filter(enrichment_state="pending").count()  # unscoped: the metric is global
    assert sample(after, "easymemory_embedding_pending") == pending >= 1
    assert sample(after, "easymemory_embedding_oldest_pending_age_seconds") >= 0
    assert sample(after, "easymemory_db_pool_connections", state="max") >= 1
    assert 'easymemory_queue_depth{queue="' in after  # the test settings use Redis


@pytest.mark.django_db
def test_each_request_logs_one_json_line_without_content(writer: Persona, caplog: Any) -> None:
    secret = "zebra-marker-content-7731"
    with caplog.at_level(logging.INFO, logger="easymemory.request"):
        response = writer.client().post("/v1/memories", {"content": f"{secret} lives here"}, format="json")
    assert response.status_code == 201
    records = [r for r in caplog.records if r.name == "easymemory.request"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["request_id"] == response["X-Request-ID"]
    assert line["tenant"] == writer.tenant.slug
    assert line["principal"] == writer.principal.actor
    assert (line["route"], line["method"], line["status"]) == ("v1/memories", "POST", 201)
    assert line["duration_ms"] > 0 and line["level"] == "info"
    assert secret not in json.dumps(line) and secret not in records[0].getMessage()


def test_json_formatter_keeps_exceptions_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",), exc_info=True)
        import sys

        record.exc_info = sys.exc_info()
    text = JsonFormatter().format(record)
    assert "\n" not in text
    assert json.loads(text)["message"] == "failed here" and "ValueError" in json.loads(text)["exception"]


@pytest.mark.slow
def test_metrics_add_up_across_processes_and_count_worker_tasks(
    fresh_asgi_server: LiveServer, celery_worker: Any, writer: Persona
) -> None:
    """The server subprocess answers /metrics with figures from itself, this test process and the
    Celery worker process: prometheus-client's multiprocess files in one shared directory."""
    asgi_server = fresh_asgi_server
    scrape = httpx.Client(timeout=60)
    before = scrape.get(f"{asgi_server.url}/metrics").text
    memory_id = (
        writer.client().post("/v1/memories", {"content": "Metrics across processes"}, format="json").json()["id"]
    )
    created = scrape.post(f"{asgi_server.url}/v1/memories", json={"content": "Second one"}, headers=writer.headers)
    assert created.status_code == 201
    deadline = time.monotonic() + 180
    while Memory.objects.filter(pk__in=[memory_id, created.json()["id"]], enrichment_state="pending").exists():
        assert time.monotonic() < deadline, "the worker did not embed"
        time.sleep(0.3)
    tasks = "easymemory_task_duration_seconds_count"
    # task_postrun runs after the state change, and a loaded worker may take a moment more.
    deadline = time.monotonic() + 60
    while True:
        after = scrape.get(f"{asgi_server.url}/metrics").text
        if sample(after, tasks, outcome="success") > sample(before, tasks, outcome="success"):
            break
        assert time.monotonic() < deadline, "the worker's finished task was never counted"
        time.sleep(0.5)
    count = "easymemory_http_request_duration_seconds_count"
    labels = {"route": "v1/memories", "method": "POST", "status": "201"}
    assert sample(after, count, **labels) - sample(before, count, **labels) == 2  # one here, one there

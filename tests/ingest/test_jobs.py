from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction

from core.events import tenant_group
from ingest import services, writes
from ingest.models import IngestedItem, IngestJob, IngestUpload
from ingest.services import job_create, job_run
from memory.models import Memory
from tests.conftest import Persona
from tests.ingest.helpers import slack_zip

MESSAGES = [
    {"type": "message", "user": "U1", "text": f"status update number {i}", "ts": f"17000000{i:02d}.0"}
    for i in range(150)
]


@pytest.mark.django_db
def test_a_job_that_crashed_midway_resumes_without_duplicates(writer: Persona, monkeypatch: Any) -> None:
    data = slack_zip({"general": {"2024-01-01": MESSAGES}})
    job = job_create(principal=writer.principal, kind="slack", params={}, upload=("e.zip", data), enqueue=False)
    real = writes._store_group
    calls = {"n": 0}

    def crash_on_second_group(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed")
        real(*args, **kwargs)

    monkeypatch.setattr(writes, "_store_group", crash_on_second_group)
    monkeypatch.setattr(writes, "GROUP_MEMORIES", 64)  # several groups, so it crashes midway
    with pytest.raises(RuntimeError):
        job_run(str(job.id))
    job.refresh_from_db()
    assert job.status == "running"  # as a killed worker would leave it
    partial = Memory.objects.count()
    assert 0 < partial < 150

    monkeypatch.setattr(writes, "_store_group", real)
    resumed = job_run(str(job.id))  # what the re-delivered task does
    assert resumed is not None and resumed.status == "done"
    assert (resumed.done, resumed.skipped) == (150 - partial, partial)
    assert Memory.objects.count() == 150
    assert IngestedItem.objects.count() == 150
    assert job_run(str(job.id)).status == "done"  # a finished job is left alone


@pytest.mark.django_db
def test_progress_and_the_end_are_published_to_the_tenant(
    writer: Persona, django_capture_on_commit_callbacks: Any
) -> None:
    layer = get_channel_layer()
    group = tenant_group(writer.tenant.id)
    data = slack_zip({"general": {"2024-01-01": MESSAGES[:3]}})

    async def subscribe() -> str:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        return channel

    async def collect(channel: str) -> list[dict[str, Any]]:
        # One event loop for all receives: the Redis layer buffers per loop.
        events: list[dict[str, Any]] = []
        while not events or events[-1]["event"] != "ingest.finished":
            events.append(await asyncio.wait_for(layer.receive(channel), timeout=30))
        await layer.group_discard(group, channel)
        return events

    channel = async_to_sync(subscribe)()
    with django_capture_on_commit_callbacks(execute=True):
        job = job_create(principal=writer.principal, kind="slack", params={}, upload=("e.zip", data), enqueue=False)
        job_run(str(job.id))
    events = async_to_sync(collect)(channel)
    assert events[-1]["data"]["id"] == str(job.id) and events[-1]["data"]["done"] == 3
    assert events[-1]["data"]["status"] == "done"
    assert {e["event"] for e in events[:-1]} <= {"ingest.progress", "memory.created"}
    assert any(e["event"] == "ingest.progress" for e in events)


@pytest.mark.slow
def test_an_upload_runs_to_the_end_in_a_real_worker(celery_worker: Any, writer: Persona) -> None:
    data = slack_zip({"general": {"2024-01-01": MESSAGES[:5]}})
    response = writer.client().post(
        "/v1/integrations/slack/import", {"file": SimpleUploadedFile("e.zip", data)}, format="multipart"
    )
    assert response.status_code == 202
    job_id = response.json()["id"]
    deadline = time.monotonic() + 120
    status = "queued"
    while time.monotonic() < deadline:
        status = writer.client().get(f"/v1/jobs/{job_id}").json()["status"]
        if status in ("done", "failed"):
            break
        time.sleep(0.3)
    assert status == "done"
    body = writer.client().get(f"/v1/jobs/{job_id}").json()
    assert body["done"] == 5 and body["started_at"] and body["finished_at"]
    assert Memory.objects.filter(tenant=writer.tenant).count() == 5
    assert not IngestUpload.objects.filter(job=IngestJob.objects.get(pk=job_id)).exists()


@pytest.mark.django_db
def test_a_large_import_refreshes_the_planner_statistics(writer: Persona, monkeypatch: Any) -> None:
    analyzed: list[bool] = []
    monkeypatch.setattr(services, "memory_tables_analyze", lambda: analyzed.append(True))
    monkeypatch.setattr(services, "ANALYZE_AFTER_CREATED", 100)
    small = job_create(
        principal=writer.principal, kind="slack", params={},
        upload=("s.zip", slack_zip({"general": {"2024-01-01": MESSAGES[:50]}})), enqueue=False,
    )  # fmt: skip
    job_run(str(small.id))
    assert analyzed == []
    large = job_create(
        principal=writer.principal, kind="slack", params={},
        upload=("l.zip", slack_zip({"random": {"2024-01-02": MESSAGES}})), enqueue=False,
    )  # fmt: skip
    job_run(str(large.id))
    assert analyzed == [True]


@pytest.mark.django_db
def test_the_memory_tables_can_be_analyzed_inside_a_transaction() -> None:
    from memory.services import memory_tables_analyze

    def analyze_counts() -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relname, analyze_count FROM pg_stat_user_tables"
                " WHERE relname IN ('memory_memory', 'memory_memoryembedding')"
            )
            return dict(cursor.fetchall())

    before = analyze_counts()
    with transaction.atomic():  # the job runs it inside the worker's transaction; it must not need autocommit
        memory_tables_analyze()
    # Statistics reach pg_stat_user_tables when the backend flushes them, not at once.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT pg_stat_clear_snapshot()")
    after = analyze_counts()
    assert set(after) == {"memory_memory", "memory_memoryembedding"}
    assert all(after[table] == before.get(table, 0) + 1 for table in after), (before, after)

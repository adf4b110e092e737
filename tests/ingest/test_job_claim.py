"""`resumejobs` and a re-delivered task never start a job that another worker is running
(issue 13, item 8): a run claims its job atomically for as long as its database session lives."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections

from ingest import dispatch, services
from ingest.models import IngestJob, JobStatus
from ingest.services import job_claimed_elsewhere, job_create, job_requeue_unfinished, job_run
from memory.models import Memory
from tests.conftest import Persona

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_worker() -> Iterator[Any]:
    """A second database session, as another worker process would hold."""
    session = connections.create_connection("default")
    yield session
    with contextlib.suppress(Exception):  # it may have been killed by the test
        session.close()


def claim_in(session: Any, job: IngestJob) -> None:
    with session.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [services._CLAIM_NAMESPACE, services._claim_key(str(job.id))])


def queued_json_job(persona: Persona) -> IngestJob:
    data = b'[{"memory": "claimed jobs run once"}]'
    return job_create(
        principal=persona.principal, kind="json", params={"filename": "m.json"}, upload=("m.json", data), enqueue=False
    )


def test_a_job_another_worker_runs_is_not_started_again(writer: Persona, other_worker: Any) -> None:
    job = queued_json_job(writer)
    IngestJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    claim_in(other_worker, job)
    assert job_claimed_elsewhere(str(job.id))
    again = job_run(str(job.id))
    assert again is not None and again.status == JobStatus.RUNNING
    assert not Memory.objects.exists()
    with other_worker.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with connections["default"].cursor() as cursor:  # that worker dies: its claim goes with its session
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
    finished = job_run(str(job.id))
    assert finished is not None and finished.status == JobStatus.DONE
    assert Memory.objects.count() == 1


def test_resumejobs_skips_a_job_that_is_running_and_resends_the_others(
    writer: Persona, other_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(dispatch, "job_enqueue", sent.append)
    running, crashed = queued_json_job(writer), queued_json_job(writer)
    IngestJob.objects.filter(pk__in=[running.pk, crashed.pk]).update(status=JobStatus.RUNNING)
    claim_in(other_worker, running)
    assert job_requeue_unfinished() == [str(crashed.id)]
    assert sent == [str(crashed.id)]
    out = StringIO()
    call_command("resumejobs", stdout=out)
    assert "re-queued 1 job(s)" in out.getvalue()


def test_a_finished_run_releases_its_claim(writer: Persona) -> None:
    job = queued_json_job(writer)
    assert job_run(str(job.id)).status == JobStatus.DONE  # type: ignore[union-attr]
    assert not job_claimed_elsewhere(str(job.id))

"""Queues by kind of work: which task goes where, which worker consumes what, and how tasks are
acknowledged. (The behaviour with real workers is proven in tests/e2e/test_team_demo.py.)"""

from __future__ import annotations

import pytest
from django.conf import settings

from config.celery import app
from config.cli import worker_command


def queues_of(command: list[str]) -> list[str]:
    return command[command.index("-Q") + 1].split(",")


def test_each_kind_of_work_has_its_own_queue() -> None:
    queues = settings.EASYMEMORY_QUEUES
    assert queues["embeddings"] == settings.CELERY_TASK_DEFAULT_QUEUE
    assert len(set(queues.values())) == 3
    routes = settings.CELERY_TASK_ROUTES
    assert routes["memory.tasks.memory_embed_task"]["queue"] == queues["embeddings"]
    assert routes["memory.tasks.memory_enrich_task"]["queue"] == queues["embeddings"]  # its former name
    assert routes["memory.tasks.memory_extract_task"]["queue"] == queues["llm"]
    assert routes["ingest.tasks.ingest_job_task"]["queue"] == queues["imports"]
    app.loader.import_default_modules()
    for name in routes:
        assert name in app.tasks, f"route for an unknown task {name}"
        routed = app.amqp.router.route({}, name)["queue"].name
        assert routed == routes[name]["queue"]


def test_every_task_is_acknowledged_after_its_work_and_redelivered_when_its_worker_dies() -> None:
    app.loader.import_default_modules()
    ours = [task for name, task in app.tasks.items() if not name.startswith("celery.")]
    assert {task.name for task in ours} >= set(settings.CELERY_TASK_ROUTES)
    for task in ours:
        assert task.acks_late is True, task.name
        assert task.reject_on_worker_lost is True, task.name


def test_the_worker_serve_starts_consumes_every_queue_and_team_workers_choose() -> None:
    assert sorted(queues_of(worker_command(2))) == sorted(settings.EASYMEMORY_QUEUES.values())
    assert queues_of(worker_command(1, ["embeddings"])) == [settings.EASYMEMORY_QUEUE_EMBEDDINGS]
    llm = worker_command(4, ["llm", "imports"], name="llm")
    assert queues_of(llm) == [settings.EASYMEMORY_QUEUE_LLM, settings.EASYMEMORY_QUEUE_IMPORTS]
    assert "--hostname=llm@%h" in llm and "--concurrency=4" in llm
    with pytest.raises(ValueError, match="unknown queue kind"):
        worker_command(1, ["embedings"])


def test_the_worker_command_refuses_an_unknown_kind_of_work() -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="unknown queue kind"):
        call_command("worker", "--queues", "gpu")
    with pytest.raises(CommandError, match="concurrency"):
        call_command("worker", "--concurrency", "0")

"""The Celery app. Broker: Redis when EASYMEMORY_REDIS_URL is set, else the
database itself through kombu's SQLAlchemy transport (see settings)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_ready
from kombu.transport import sqlalchemy as sqla_transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("easymemory")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["memory", "graph", "ingest"])


@app.on_after_configure.connect
def _embedded_broker(sender: Celery, source: Any, **_: Any) -> None:
    # Without Redis or DATABASE_URL the broker is the embedded database, whose socket directory
    # is known only once its data directory exists, so it is filled in here rather than in settings.
    from django.conf import settings

    if source.broker_url is None and settings.EMBEDDED_DATABASE:
        from config.embedded_pg import socket_dir_for

        socket_dir = socket_dir_for(settings.EASYMEMORY_DATA_DIR)
        source.broker_url = f"sqla+postgresql+psycopg://postgres:@/easymemory?host={socket_dir}&port=5432"


# The database as the broker is polled: the worker checks every queue, then sleeps this long. kombu's
# default (a second) is a second that a single memory waits on its way to searchable; 0.1 s costs a
# few cheap queries a second while idle. A class attribute, because kombu hands every transport option
# of its SQL transport to SQLAlchemy's create_engine, which refuses unknown ones.
DATABASE_BROKER_POLL_SECONDS = 0.1
sqla_transport.Transport.polling_interval = DATABASE_BROKER_POLL_SECONDS


@worker_init.connect
def _start_embedded_database(**_: Any) -> None:
    # The database-backed broker needs the embedded server up before the first poll.
    from django.conf import settings

    from config.startup import data_dir_prepare

    data_dir_prepare()
    if settings.EMBEDDED_DATABASE:
        from pathlib import Path

        from config.embedded_pg import ensure_server

        ensure_server(Path(settings.EASYMEMORY_DATA_DIR))


@worker_ready.connect
def _preload_embedding_model(sender: Any, **_: Any) -> None:
    # Loaded once the worker consumes, before the first task needs it (memory/warmup.py).
    from memory.warmup import worker_model_preload

    worker_model_preload(set(sender.app.amqp.queues.consume_from or {}))


# Task durations, failures and retries for /metrics (core/metrics.py).
from core.metrics import celery_metrics_connect  # noqa: E402

celery_metrics_connect()

"""Every task the memory app sends goes out from here; nothing else in memory sends one.

Tasks are sent by name through the Celery app (the names `memory/tasks.py` registers and
CELERY_TASK_ROUTES routes), so the services that send them never import the tasks that call them.

Enrichment is handed to the queue from a background thread.

A write request only appends its ids here (microseconds) instead of talking
to the broker; a daemon thread sends them, batched, so one task embeds many
memories (batched embedding costs a fraction of one-by-one on 2 cores) and the
broker round trip leaves the request path. After a quiet spell the first ids go
at once (a single memory is searchable sooner); within a burst, sends are at
least DISPATCH_DELAY_SECONDS apart, so the rest of the burst gathers meanwhile. Nothing is lost
if the process dies before a send: the memories are committed with
`enrichment_state=pending`, and `easymemory serve` / `easymemory reconcile`
re-queue every memory without an embedding. Pending ids are flushed at exit.
Ids the broker refused (Redis restarting) are kept and sent again with backoff,
so a short broker outage needs no reconcile.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from celery import current_app

logger = logging.getLogger(__name__)

# Long enough to gather a burst of writes into one task, short enough not to be noticed.
DISPATCH_DELAY_SECONDS = 0.2
# Backoff between attempts while the broker refuses ids; the cap bounds what one process holds.
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 15.0
RETRY_MAX_IDS = 200_000


class Dispatcher:
    def __init__(self, send: Callable[[list[str]], Any], delay: float = DISPATCH_DELAY_SECONDS) -> None:
        """`send` may return the ids it could not send; they are tried again after a backoff."""
        self._send = send
        self._delay = delay
        self._backoff = 0.0
        self._pending: list[str] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._last_send = float("-inf")

    def submit(self, memory_ids: Sequence[str]) -> None:
        if not memory_ids:
            return
        with self._wake:
            self._pending.extend(memory_ids)
            # A forked child (prefork workers) has the list but not the thread.
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="enrichment-dispatch", daemon=True)
                self._thread.start()
            self._wake.notify()

    def flush(self) -> None:
        """Send whatever is pending now, in the calling thread."""
        with self._wake:
            batch, self._pending = self._pending, []
        if not batch:
            return
        unsent = self._send(batch)
        if isinstance(unsent, list) and unsent:
            with self._wake:
                # Oldest first; beyond the cap the rest is left to reconcile (the rows are pending).
                self._pending = (unsent + self._pending)[:RETRY_MAX_IDS]
            self._backoff = min(RETRY_MAX_SECONDS, max(RETRY_FIRST_SECONDS, self._backoff * 2))
        else:
            self._backoff = 0.0

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
            # Let more writes of the same burst join this batch (or the broker come back).
            wait = max(self._last_send + self._delay - time.monotonic(), self._backoff)
            if wait > 0:
                threading.Event().wait(wait)
            self._last_send = time.monotonic()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the sender logs; reconcile recovers the ids
                logger.warning("enrichment dispatch failed; reconcile will re-queue", exc_info=True)


EMBED_TASK = "memory.tasks.memory_embed_task"
ENRICH_TASK = "memory.tasks.memory_enrich_task"  # the former name of EMBED_TASK, still served
EXTRACT_TASK = "memory.tasks.memory_extract_task"
TERM_STATS_REBUILD_TASK = "memory.tasks.term_stats_rebuild_task"
BULK_TASK = "memory.tasks.memory_bulk_task"

ENRICH_BATCH = 256  # ids per task: the worker's pipeline embeds them in chunks of EASYMEMORY_EMBED_BATCH


def enrichment_enqueue(memory_ids: list[str]) -> list[str]:
    """Send ids to the worker now (writes go through `dispatch_enrichment`, which batches). Returns the ids
    the broker did not take: a broker outage loses nothing, the dispatcher sends them again, and the
    memories stay `pending` for `easymemory reconcile` meanwhile."""
    unsent: list[str] = []
    for start in range(0, len(memory_ids), ENRICH_BATCH):
        chunk = memory_ids[start : start + ENRICH_BATCH]
        try:
            current_app.send_task(EMBED_TASK, args=[chunk])
        except Exception:  # noqa: BLE001 - any broker failure; sent again later
            logger.warning("could not enqueue enrichment for %d memories; will retry", len(chunk))
            unsent.extend(chunk)
    return unsent


def extraction_enqueue(memory_ids: list[str], *, deferrals: int = 0, countdown: float | None = None) -> None:
    """The enrichment steps beyond embedding, on the LLM queue (`deferrals`: how often they already
    stepped aside for embeddings, see memory/tasks.py)."""
    kwargs = {"deferrals": deferrals} if deferrals else {}
    current_app.send_task(EXTRACT_TASK, args=[memory_ids], kwargs=kwargs, countdown=countdown)


def term_stats_rebuild_enqueue(tenant_id: str) -> None:
    current_app.send_task(TERM_STATS_REBUILD_TASK, args=[tenant_id])


def bulk_job_enqueue(job_id: str) -> None:
    current_app.send_task(BULK_TASK, args=[job_id])


dispatcher = Dispatcher(enrichment_enqueue)
atexit.register(dispatcher.flush)


def dispatch_enrichment(memory_ids: Sequence[str]) -> None:
    """Queue enrichment for committed memories (call from transaction.on_commit)."""
    dispatcher.submit(list(memory_ids))

"""Hands committed memory ids to the enrichment queue from a background thread.

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


def _send_now(memory_ids: list[str]) -> list[str]:
    from memory.services import enqueue_enrichment

    return enqueue_enrichment(memory_ids)


dispatcher = Dispatcher(_send_now)
atexit.register(dispatcher.flush)


def dispatch_enrichment(memory_ids: Sequence[str]) -> None:
    """Queue enrichment for committed memories (call from transaction.on_commit)."""
    dispatcher.submit(list(memory_ids))

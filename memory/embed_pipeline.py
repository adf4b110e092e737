"""The worker's embedding pipeline: the model never waits for the database.

`memory_embed_task` hands its ids to the one pipeline of its worker process and waits until
they are stored (so the task is still acknowledged only after the work). The pipeline:

- merges the ids of every task waiting at that moment into one batch (a backed-up queue gives
  larger batches), fetches them in one query and sorts them by length, so each batch the model
  sees has texts of similar length and little padding;
- runs the model on one thread, while a second thread fetches the next batch and a third stores
  the vectors of the previous one (one statement each, see memory_embed_fetch/_store): the
  database round trips overlap inference instead of adding to it;
- says whether it is busy, so the slower enrichment steps of the same process (graph
  extraction) step aside for the embeddings instead of competing for the cores.

One pipeline per process: threads of the Celery pool share it, and the model is loaded once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections, connection

from memory import embeddings
from memory.services import (
    EmbedFetch,
    EmbedItem,
    memory_announce_enriched,
    memory_embed_fetch,
    memory_embed_store,
    memory_embed_vectors,
)

logger = logging.getLogger(__name__)

# Ids fetched at once when tasks are waiting. Not every waiting task at once: those left over are
# fetched while the model runs, and the tasks done meanwhile free their threads for the next ones.
MERGE_MAX_IDS = 256
STORES_IN_FLIGHT = 4  # vector batches waiting for the database before the model waits too
WAIT_SECONDS = 900.0  # a task gives up (and is retried) if its ids are not stored by then


@contextlib.contextmanager
def _thread_connection() -> Iterator[None]:
    """This thread's database connection for one step, handed back after it (to the pool, when
    there is one): a pipeline thread holds no connection while it waits."""
    close_old_connections()
    try:
        yield
    finally:
        connection.close()


@dataclass
class _Request:
    ids: list[str]
    finished: threading.Event = field(default_factory=threading.Event)
    outstanding: int = 0
    embedded: int = 0
    error: BaseException | None = None


@dataclass
class _Batch:
    requests: list[_Request]
    fetched: EmbedFetch
    owners: dict[str, list[_Request]]  # memory id -> the requests that asked for it


class EmbeddingPipeline:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._waiting: deque[_Request] = deque()
        self._active = 0  # requests accepted and not finished
        self._idle = threading.Event()
        self._idle.set()
        self._idle_since = float("-inf")
        self._thread: threading.Thread | None = None
        self._fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-fetch")
        self._storer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-store")
        self._stores = threading.BoundedSemaphore(STORES_IN_FLIGHT)

    # --- the tasks' side -------------------------------------------------------------------------

    def embed(self, memory_ids: Sequence[str], timeout: float = WAIT_SECONDS) -> int:
        """Embed and store these memories (those not done yet); returns how many were embedded.
        Raises what the fetch, the model or the store raised, for the task to retry."""
        request = _Request(ids=[str(i) for i in memory_ids])
        if not request.ids:
            return 0
        with self._lock:
            self._waiting.append(request)
            self._active += 1
            self._idle.clear()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="embed-model", daemon=True)
                self._thread.start()
            self._lock.notify()
        if not request.finished.wait(timeout):
            raise TimeoutError(f"{len(request.ids)} memories not embedded within {timeout:.0f}s")
        if request.error is not None:
            raise request.error
        return request.embedded

    def busy(self, within: float = 0.0) -> bool:
        """Whether embeddings are waiting or running here, or were `within` seconds ago (the next
        task of a backlog arrives a moment after the previous one is done)."""
        return not self._idle.is_set() or time.monotonic() - self._idle_since < within

    # --- the model's thread ----------------------------------------------------------------------

    def _take(self, block: bool) -> list[_Request]:
        """The waiting requests, merged up to MERGE_MAX_IDS ids (at least one request)."""
        with self._lock:
            while block and not self._waiting:
                self._lock.wait()
            taken: list[_Request] = []
            size = 0
            while self._waiting and (not taken or size + len(self._waiting[0].ids) <= MERGE_MAX_IDS):
                request = self._waiting.popleft()
                taken.append(request)
                size += len(request.ids)
            return taken

    def _prefetch(self, requests: list[_Request]) -> tuple[list[_Request], Future[_Batch]]:
        return requests, self._fetcher.submit(self._fetch, requests)

    @staticmethod
    def _fetch(requests: list[_Request]) -> _Batch:
        owners: dict[str, list[_Request]] = {}
        for request in requests:
            for memory_id in request.ids:
                owners.setdefault(memory_id, []).append(request)
        with _thread_connection():
            fetched = memory_embed_fetch(memory_ids=list(owners), model=embeddings.model_name())
        return _Batch(requests=requests, fetched=fetched, owners=owners)

    def _run(self) -> None:
        upcoming: tuple[list[_Request], Future[_Batch]] | None = None
        while True:
            if upcoming is None:
                upcoming = self._prefetch(self._take(block=True))
            requests, pending = upcoming
            try:
                upcoming = self._process(requests, pending)
            except Exception as exc:  # noqa: BLE001 - must not end the loop; the tasks retry
                logger.exception("embedding pipeline cycle failed")
                for request in requests:
                    self._fail(request, exc)
                upcoming = None

    def _process(
        self, requests: list[_Request], pending: Future[_Batch]
    ) -> tuple[list[_Request], Future[_Batch]] | None:
        """Embed one fetched batch; returns the next batch's fetch if one was started meanwhile."""
        upcoming = None
        try:
            batch = pending.result()
        except Exception as exc:  # noqa: BLE001 - a fetch failure fails its tasks, which retry
            for request in requests:
                self._fail(request, exc)
            return None
        # By length: each chunk the model sees holds texts of similar length (little padding).
        todo = sorted(batch.fetched.todo, key=lambda item: len(item.content))
        with self._lock:
            for item in todo:
                for request in batch.owners[str(item.id)]:
                    request.outstanding += 1
        if batch.fetched.done:  # a re-run: announced again, in case the first run was cut short before
            self._storer.submit(self._announce, batch.fetched.done)
        for request in requests:
            if request.outstanding == 0:
                self._finish(request)
        name = embeddings.model_name()
        size = settings.EASYMEMORY_EMBED_BATCH
        for start in range(0, len(todo), size):
            if upcoming is None:
                more = self._take(block=False)
                if more:  # fetched while the model runs on this chunk
                    upcoming = self._prefetch(more)
            chunk = todo[start : start + size]
            try:
                vectors, windows = memory_embed_vectors(chunk, name)
            except Exception as exc:  # noqa: BLE001 - the model failed: its tasks retry
                self._settle(batch, todo[start:], error=exc)
                return upcoming
            self._stores.acquire()  # released by _store
            self._storer.submit(self._store, batch, chunk, (vectors, windows), name)
        return upcoming

    def _store(
        self,
        batch: _Batch,
        chunk: list[EmbedItem],
        vectors: tuple[list[list[float]], list[list[float] | None]],
        name: str,
    ) -> None:
        own, windows = vectors
        try:
            with _thread_connection():
                done = memory_embed_store(items=chunk, vectors=own, model=name, windows=windows)
        except Exception as exc:  # noqa: BLE001 - the store failed: its tasks retry
            self._settle(batch, chunk, error=exc)
        else:
            self._announce(done)
            self._settle(batch, chunk)
        finally:
            self._stores.release()

    @staticmethod
    def _announce(done: list[tuple[str, str]]) -> None:
        try:
            with _thread_connection():
                memory_announce_enriched(done)
        except Exception:  # noqa: BLE001 - a live event only; the memories are stored
            logger.warning("could not announce %d enriched memories", len(done), exc_info=True)

    # --- book-keeping ----------------------------------------------------------------------------

    def _settle(self, batch: _Batch, items: list[EmbedItem], error: BaseException | None = None) -> None:
        finished = []
        with self._lock:
            for item in items:
                for request in batch.owners[str(item.id)]:
                    request.outstanding -= 1
                    if error is None:
                        request.embedded += 1
                    elif request.error is None:
                        request.error = error
                    if request.outstanding == 0:
                        finished.append(request)
        for request in finished:
            self._finish(request)

    def _fail(self, request: _Request, error: BaseException) -> None:
        if request.error is None:
            request.error = error
        self._finish(request)

    def _finish(self, request: _Request) -> None:
        with self._lock:
            if request.finished.is_set():
                return
            request.finished.set()
            self._active -= 1
            if self._active == 0:
                self._idle_since = time.monotonic()
                self._idle.set()


pipeline = EmbeddingPipeline()

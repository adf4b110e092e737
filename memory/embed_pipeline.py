"""The worker's embedding pipeline: the model never waits for the database.

`memory_embed_task` hands its ids to the one pipeline of its worker process and waits until
they are stored (so the task is still acknowledged only after the work). The pipeline:

- merges the ids of every task waiting at that moment into one batch (a backed-up queue gives
  larger batches), fetches them in one query and sorts them by length, so each chunk the model
  sees has texts of similar length and little padding;
- runs the model on several streams at once (EASYMEMORY_EMBED_STREAMS, one per core by default):
  a feeding thread cuts each fetched batch into chunks of EASYMEMORY_EMBED_BATCH and queues them,
  and each stream's thread takes the next chunk and calls the one shared copy of the model (an
  ONNX Runtime session may run from several threads at once, with the GIL released; on torch,
  whose threads are process-wide, there is one stream);
- fetches the next batch while the streams work on this one, and stores the vectors of each chunk
  on another thread (one statement each, see memory_embed_fetch/_store): the database round trips
  overlap inference instead of adding to it;
- says whether it is busy, so the slower enrichment steps of the same process (graph
  extraction) step aside for the embeddings instead of competing for the cores.

A task's memories may be embedded by different streams; the task is done once every chunk that
holds one of them is stored, and fails (to be retried) if any such chunk failed.

One pipeline per process: threads of the Celery pool share it, and the model is loaded once.
"""

from __future__ import annotations

import contextlib
import logging
import queue
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
    model: str  # the name the batch was fetched under, and its vectors are stored under


@dataclass
class _Chunk:
    batch: _Batch
    items: list[EmbedItem]


class EmbeddingPipeline:
    def __init__(self, streams: int | None = None) -> None:
        """`streams`: model calls at once (default: `embeddings.embed_streams()` at first use)."""
        self._lock = threading.Condition()
        self._waiting: deque[_Request] = deque()
        self._active = 0  # requests accepted and not finished
        self._idle = threading.Event()
        self._idle.set()
        self._idle_since = float("-inf")
        self._streams = streams
        self._feeder: threading.Thread | None = None
        self._models: list[threading.Thread] = []
        self._chunks: queue.Queue[_Chunk] | None = None
        self._upcoming: tuple[list[_Request], Future[_Batch]] | None = None  # the feeder's next batch
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
            self._start_threads()
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

    def streams(self) -> int:
        """How many chunks the model runs on at once here."""
        if self._streams is None:
            self._streams = max(1, embeddings.embed_streams())
        return self._streams

    def _start_threads(self) -> None:
        """Start the feeding thread and the streams' threads, or any that ended (under the lock)."""
        if self._chunks is None:
            # Bounded: the feeder hands out a chunk only as a stream is about to be free, so the
            # next batch's fetch starts while this one's last chunks run, not long before.
            self._chunks = queue.Queue(maxsize=self.streams())
        if self._feeder is None or not self._feeder.is_alive():
            self._feeder = threading.Thread(target=self._feed, name="embed-feed", daemon=True)
            self._feeder.start()
        for number in range(self.streams()):
            if number < len(self._models) and self._models[number].is_alive():
                continue
            thread = threading.Thread(target=self._stream, name=f"embed-model-{number}", daemon=True)
            thread.start()
            if number < len(self._models):
                self._models[number] = thread
            else:
                self._models.append(thread)

    # --- the feeding thread ----------------------------------------------------------------------

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
        name = embeddings.model_name()
        with _thread_connection():
            fetched = memory_embed_fetch(memory_ids=list(owners), model=name)
        return _Batch(requests=requests, fetched=fetched, owners=owners, model=name)

    def _feed(self) -> None:
        while True:
            if self._upcoming is None:
                self._upcoming = self._prefetch(self._take(block=True))
            requests, pending = self._upcoming
            self._upcoming = None
            try:
                self._hand_out(requests, pending)
            except Exception as exc:  # noqa: BLE001 - must not end the loop; the tasks retry
                logger.exception("embedding pipeline cycle failed")
                for request in requests:
                    self._fail(request, exc)
                if self._upcoming is not None:  # taken from the queue: fail them too, not forget them
                    for request in self._upcoming[0]:
                        self._fail(request, exc)
                    self._upcoming = None

    def _hand_out(self, requests: list[_Request], pending: Future[_Batch]) -> None:
        """Queue one fetched batch for the streams, chunk by chunk; starts the next batch's fetch
        (in self._upcoming) while the streams work."""
        try:
            batch = pending.result()
        except Exception as exc:  # noqa: BLE001 - a fetch failure fails its tasks, which retry
            for request in requests:
                self._fail(request, exc)
            return
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
        assert self._chunks is not None
        size = settings.EASYMEMORY_EMBED_BATCH
        for start in range(0, len(todo), size):
            if self._upcoming is None:
                more = self._take(block=False)
                if more:  # fetched while the streams run on this batch
                    self._upcoming = self._prefetch(more)
            self._chunks.put(_Chunk(batch=batch, items=todo[start : start + size]))  # waits for a stream

    # --- the streams' threads --------------------------------------------------------------------

    def _stream(self) -> None:
        assert self._chunks is not None
        while True:
            chunk = self._chunks.get()
            try:
                self._embed_chunk(chunk)
            except Exception as exc:  # noqa: BLE001 - the model failed: this chunk's tasks retry
                self._settle(chunk.batch, chunk.items, error=exc)

    def _embed_chunk(self, chunk: _Chunk) -> None:
        vectors = memory_embed_vectors(chunk.items, chunk.batch.model)
        self._stores.acquire()  # released by _store
        try:
            self._storer.submit(self._store, chunk.batch, chunk.items, vectors, chunk.batch.model)
        except BaseException:
            self._stores.release()
            raise

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
        with self._lock:
            if request.finished.is_set():  # its memories are all stored: nothing to retry
                return
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

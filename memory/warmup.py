"""Load the embedding model when a process starts, not on the first search or the first write.

A web process loads it (and traces its query encoder) from its ASGI lifespan; a worker that
embeds loads it when Celery says the worker is ready, and runs one batch through it, so the first
memory after a start embeds as fast as any other. Each process started by `easymemory serve`
then marks itself in EASYMEMORY_READY_DIR, and `serve` says "ready" once all have.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from django.conf import settings

from core.lifespan import register_lifespan
from memory import embeddings

logger = logging.getLogger(__name__)

# Texts of a few lengths: the first run of each shape costs extra in PyTorch.
WARM_UP_TEXTS = ("warm-up", "a warm-up sentence of ordinary length for the model " * 3)


def ready_mark(kind: str) -> None:
    """Record that this process (`web` or `worker`) has its model loaded, if `serve` asked."""
    folder = settings.EASYMEMORY_READY_DIR
    if not folder:
        return
    try:
        Path(folder, f"{kind}-{os.getpid()}").touch()
    except OSError:  # the folder went away: serve stopped meanwhile
        logger.warning("could not mark %s ready in %s", kind, folder)


def _load() -> None:
    started = time.monotonic()
    try:
        name = embeddings.model_name()
        embeddings.query_encoder(name)
        # Once on the thread searches embed their queries on (its torch settings apply there).
        from memory.search import _embedder

        _embedder.submit(embeddings.embed_query, WARM_UP_TEXTS[1], name).result()
        logger.info("embedding model %s loaded in %.1fs", name, time.monotonic() - started)
    finally:
        ready_mark("web")  # a failure is logged (and met again by the first search); serve need not wait


@register_lifespan
@contextlib.asynccontextmanager
async def embedding_model_warmup() -> AsyncIterator[None]:
    # Load in a thread so the server answers /healthz while the model loads.
    task = asyncio.get_running_loop().run_in_executor(None, _load)
    yield
    with contextlib.suppress(Exception):
        await task


def _worker_load() -> None:
    started = time.monotonic()
    try:
        embeddings.embed_texts(list(WARM_UP_TEXTS))
        from memory.embed_pipeline import pipeline

        # Starts the pipeline's threads and its database connection with one query for an id that
        # does not exist, so the first real task finds them running.
        pipeline.embed([str(uuid.UUID(int=0))])
    except Exception:  # the tasks meet it again when they load the model, and retry
        logger.exception("the worker could not load the embedding model")
    else:
        logger.info("worker: embedding model %s loaded in %.1fs", embeddings.model_name(), time.monotonic() - started)
    ready_mark("worker")


def worker_model_preload(queues: set[str]) -> threading.Thread | None:
    """In a worker consuming `queues`: load the model in the background if this worker embeds
    (the embeddings queue) or extracts (the LLM queue resolves entity names by embedding). Tasks
    arriving meanwhile wait for the load, as they would anyway. Other workers mark ready at once."""
    if not queues & {settings.EASYMEMORY_QUEUE_EMBEDDINGS, settings.EASYMEMORY_QUEUE_LLM}:
        ready_mark("worker")
        return None
    thread = threading.Thread(target=_worker_load, name="embed-preload", daemon=True)
    thread.start()
    return thread

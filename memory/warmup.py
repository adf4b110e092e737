"""Load the embedding model (and trace its query encoder) when the server starts, not on the first search."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from core.lifespan import register_lifespan
from memory import embeddings

logger = logging.getLogger(__name__)


def _load() -> None:
    started = time.monotonic()
    embeddings.query_encoder(embeddings.model_name())
    logger.info("embedding model %s loaded in %.1fs", embeddings.model_name(), time.monotonic() - started)


@register_lifespan
@contextlib.asynccontextmanager
async def embedding_model_warmup() -> AsyncIterator[None]:
    # Load in a thread so the server answers /healthz while the model loads.
    task = asyncio.get_running_loop().run_in_executor(None, _load)
    yield
    with contextlib.suppress(Exception):
        await task

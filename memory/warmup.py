"""Load the embedding model (and trace its query encoder) when the server starts, not on the first search."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from config.lifespan import register_lifespan
from memory import embeddings

logger = logging.getLogger(__name__)


@register_lifespan
@contextlib.asynccontextmanager
async def embedding_model_warmup() -> AsyncIterator[None]:
    # Load in a thread so the server answers /healthz while the model loads.
    task = asyncio.get_running_loop().run_in_executor(None, lambda: embeddings.query_encoder(embeddings.model_name()))
    yield
    with contextlib.suppress(Exception):
        await task

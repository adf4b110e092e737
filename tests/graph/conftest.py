from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import REPO, subprocess_env
from tests.graph.fakes import FakeLLMServer


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def start_worker(transactional_db: object) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a real Celery worker on this session's queues, with extra environment (provider settings)."""

    processes: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> subprocess.Popen[bytes]:
        from config.cli import worker_command

        # Every queue: extraction runs on the LLM queue once the embedding is stored.
        command = [*worker_command(concurrency=1), "--without-heartbeat"]
        process = subprocess.Popen(command, cwd=REPO, env=subprocess_env(**env))
        processes.append(process)
        return process

    try:
        yield start
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

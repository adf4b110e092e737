"""A live server for the whole session (starting one per test would dominate the run time),
and helpers to drive it with the official MCP client.

Tests that use it must be transactional (`transactional_db`), so the rows they
create are visible to the server process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import anyio
import pytest
from mcp import Client

from mcp_server.stdio import remote_client
from tests.conftest import REPO, LiveServer, free_port, subprocess_env, wait_for_http

T = TypeVar("T")


def start_uvicorn(**env: str) -> LiveServer:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--lifespan", "on", "--log-level", "warning"]
    base = subprocess_env()
    for key, value in env.items():
        if value == "":
            base.pop(key, None)
        else:
            base[key] = value
    process = subprocess.Popen(command, cwd=REPO, env=base)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=process)
    except BaseException:
        stop(process)
        raise
    return LiveServer(url=f"http://127.0.0.1:{port}", process=process)


def stop(process: subprocess.Popen[Any], timeout: float = 10) -> None:
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def live(django_db_setup: Any, django_db_blocker: Any) -> Iterator[LiveServer]:
    """uvicorn with lifespan (what `easymemory serve` runs), against the test database.

    EASYMEMORY_WS_RECHECK_SECONDS=0 makes the websocket re-check the credential before every event;
    `import_root` is the one directory the server may read files from (EASYMEMORY_IMPORT_ROOTS).
    """
    roots = tempfile.mkdtemp(prefix="easymemory-import-root-")
    with django_db_blocker.unblock():
        server = start_uvicorn(EASYMEMORY_WS_RECHECK_SECONDS="0", EASYMEMORY_IMPORT_ROOTS=roots)
    server.import_root = roots  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        stop(server.process)
        shutil.rmtree(roots, ignore_errors=True)


def mcp_client(url: str, key: str, mode: str = "legacy") -> Client:
    return remote_client(f"{url}/mcp", key, mode=mode)


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run async client code from a sync test (the ORM stays on the test's own thread)."""
    return anyio.run(fn)


def payload(result: Any) -> dict[str, Any]:
    """The JSON a successful tool call returned."""
    assert not result.is_error, result.content[0].text
    data = json.loads(result.content[0].text)
    assert result.structured_content == data
    return data


def error_text(result: Any) -> str:
    assert result.is_error, f"expected a tool error, got {result.content[0].text[:200]}"
    return str(result.content[0].text)

"""One real server (uvicorn, the shipped ASGI app) and one real Celery worker for this whole folder
(Python SDK, TypeScript SDK, LangGraph store, chat), with the persona cast's keys.

The rows made here are committed (the subprocesses must see them) and flushed when the folder's
last test ends, as transactional tests do after each test. Tests here must not use
`transactional_db` (its flush would remove the keys); `django_db` makes pytest-django create the
test database.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, free_port, subprocess_env, wait_for_http
from tests.sdk.fake_chat import FakeChatServer

SDK_SRC = REPO / "clients" / "python" / "src"
if str(SDK_SRC) not in sys.path:
    sys.path.insert(0, str(SDK_SRC))  # the SDK is importable from a clean checkout without installing it


@dataclass
class SdkServer:
    url: str
    keys: dict[str, str]  # persona name → API key secret
    tenant_slug: str
    env: dict[str, str]  # the worker's (offline extractor), for subprocesses such as `easymemory chat`
    llm: FakeChatServer  # the provider the server's chat proxy talks to


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="package")
def sdk_server(django_db_setup: Any, django_db_blocker: Any) -> Iterator[SdkServer]:
    from django.core.management import call_command

    from accounts.roles import Role
    from accounts.services import api_key_create
    from config.cli import worker_command
    from tests.factories import TenantFactory

    with django_db_blocker.unblock():
        tenant = TenantFactory(name="Acme", slug="acme-sdk")
        other = TenantFactory(name="Globex", slug="globex-sdk")
        keys = {
            name: api_key_create(tenant=t, name=name, role=role).secret
            for name, t, role in [
                ("admin", tenant, Role.ADMIN),
                ("writer", tenant, Role.WRITER),
                ("reader", tenant, Role.READER),
                ("outsider", other, Role.ADMIN),
                ("chat", tenant, Role.WRITER),
                ("langgraph", tenant, Role.WRITER),
                ("proxy", tenant, Role.WRITER),
            ]
        }
        env = subprocess_env(PYTHONPATH=str(SDK_SRC))
        llm = FakeChatServer()
        # The web process's chat proxy talks to the fake provider; the worker keeps the offline extractor.
        server_env = {**env, "EASYMEMORY_PROVIDER": "openai", "EASYMEMORY_MODEL": "fake-chat"}
        server_env |= {"EASYMEMORY_LLM_BASE_URL": llm.url, "EASYMEMORY_LLM_MAX_RETRIES": "0"}
        port = free_port()
        command = [
            sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--lifespan", "on", "--log-level", "warning",
        ]  # fmt: skip
        server = subprocess.Popen(command, cwd=REPO, env=server_env)
        worker = subprocess.Popen([*worker_command(concurrency=1), "--without-heartbeat"], cwd=REPO, env=env)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", process=server)
            yield SdkServer(url=f"http://127.0.0.1:{port}", keys=keys, tenant_slug=tenant.slug, env=env, llm=llm)
        finally:
            _stop(server, 10)
            _stop(worker, 20)
            llm.close()
            call_command("flush", interactive=False, verbosity=0)


def write_file(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path

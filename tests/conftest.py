"""Shared fixtures: the persona cast (owner/admin, writer, reader, other tenant),
API clients holding their keys, and real servers and workers for end-to-end tests.

Every test runs against the real embedded PostgreSQL with pgvector (or
DATABASE_URL) and the machine's real Redis.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import Tenant
from accounts.principal import Principal
from accounts.roles import Role
from accounts.services import api_key_create
from memory.models import EnrichmentState, Memory
from memory.services import memory_embed_batch
from tests.factories import MembershipFactory, TenantFactory

REPO = Path(__file__).resolve().parent.parent
# Servers and workers that tests start get data directories of their own; one ONNX export of the
# embedding model (made at first use) serves them all.
os.environ.setdefault("EASYMEMORY_MODEL_CACHE_DIR", str(settings.EASYMEMORY_MODEL_CACHE_DIR))


@dataclass
class Persona:
    name: str
    tenant: Tenant
    role: str
    key: str
    principal: Principal

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")
        return client

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def make_persona(name: str, tenant: Tenant, role: str) -> Persona:
    created = api_key_create(tenant=tenant, name=name, role=role)
    principal = Principal.for_role(tenant, role, actor_type="api_key", actor_id=str(created.api_key.pk))
    return Persona(name=name, tenant=tenant, role=role, key=created.secret, principal=principal)


@pytest.fixture
def tenant(db: Any) -> Tenant:
    return TenantFactory(name="Acme", slug="acme")


@pytest.fixture
def other_tenant(db: Any) -> Tenant:
    return TenantFactory(name="Globex", slug="globex")


@pytest.fixture
def admin(tenant: Tenant) -> Persona:
    return make_persona("admin", tenant, Role.ADMIN)


@pytest.fixture
def writer(tenant: Tenant) -> Persona:
    return make_persona("writer", tenant, Role.WRITER)


@pytest.fixture
def reader(tenant: Tenant) -> Persona:
    return make_persona("reader", tenant, Role.READER)


@pytest.fixture
def outsider(other_tenant: Tenant) -> Persona:
    """An admin of another tenant: must never see or touch `tenant`'s data."""
    return make_persona("outsider", other_tenant, Role.ADMIN)


@pytest.fixture
def cast(admin: Persona, writer: Persona, reader: Persona, outsider: Persona) -> dict[str, Persona]:
    return {"admin": admin, "writer": writer, "reader": reader, "outsider": outsider}


@pytest.fixture
def member_user(tenant: Tenant) -> Any:
    return MembershipFactory(tenant=tenant, role=Role.WRITER.value).user


def embed_pending() -> int:
    """Run enrichment in-process for every pending memory (the worker's job, done synchronously)."""
    ids = [str(i) for i in Memory.objects.filter(enrichment_state=EnrichmentState.PENDING).values_list("id", flat=True)]
    return memory_embed_batch(memory_ids=ids) if ids else 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_database_url() -> str:
    """A URL for the database this test session uses, for subprocesses (server, worker)."""
    params = connection.get_connection_params()
    host = params.get("host") or "127.0.0.1"
    port = params.get("port") or 5432
    user = params.get("user") or "postgres"
    password = params.get("password") or ""
    name = connection.settings_dict["NAME"]
    if str(host).startswith("/"):
        return f"postgresql://{user}:{password}@/{name}?host={host}&port={port}"
    return f"postgresql://{user}:{password}@{host}:{port}/{name}"


def subprocess_env(**extra: str) -> dict[str, str]:
    env = os.environ.copy()
    env["DATABASE_URL"] = test_database_url()
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env.update(extra)
    return env


def wait_for_http(url: str, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {timeout}s")


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def uvicorn_server(env: dict[str, str]) -> Iterator[LiveServer]:
    """The shipped ASGI app under uvicorn, in a subprocess, on loopback, with `subprocess_env()`."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--lifespan", "on", "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=REPO, env=env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=process)
        yield LiveServer(url=f"http://127.0.0.1:{port}", process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session", autouse=True)
def search_runner_connections(django_db_setup: Any) -> Iterator[None]:
    """Search's runner threads keep connections of their own: closed before the test database is dropped."""
    yield
    from memory.search import close_runner_connections

    close_runner_connections()


@pytest.fixture(scope="session")
def asgi_server_process(django_db_setup: Any, django_db_blocker: Any) -> Iterator[LiveServer]:
    """One uvicorn for the session (its start and model warm-up cost more than most tests that use it).

    It holds no state of a test's: the rows it sees are the transactional tests' own, flushed after
    each, and every test makes its own tenants and keys. Use `asgi_server`, which makes the test
    transactional."""
    with django_db_blocker.unblock():
        env = subprocess_env()
    with uvicorn_server(env) as server:
        yield server


@pytest.fixture
def asgi_server(transactional_db: Any, asgi_server_process: LiveServer) -> LiveServer:
    """The shipped ASGI app under uvicorn, in a subprocess, on loopback, against the test database;
    the test is transactional, so the server sees its rows."""
    if asgi_server_process.process.poll() is not None:
        raise RuntimeError(f"the test server exited with {asgi_server_process.process.returncode}")
    return asgi_server_process


@pytest.fixture
def fresh_asgi_server(transactional_db: Any) -> Iterator[LiveServer]:
    """A server of the test's own, for a test that reads what the server process itself counted."""
    with uvicorn_server(subprocess_env()) as server:
        yield server


@pytest.fixture
def celery_worker(transactional_db: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process consuming this session's queue on the real broker:
    the same command `easymemory serve` starts."""
    from config.cli import worker_command

    command = [*worker_command(concurrency=1), "--without-heartbeat"]
    process = subprocess.Popen(command, cwd=REPO, env=subprocess_env())
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()

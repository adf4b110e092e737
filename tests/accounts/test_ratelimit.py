"""Per-credential token buckets, shared by processes: Redis and PostgreSQL backends."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from itertools import cycle

import httpx
import pytest
from django.db import connection

from accounts.ratelimit import rate_limit_check
from audit.models import AuditEvent
from tests.conftest import REPO, Persona, free_port, make_persona, subprocess_env, wait_for_http

pytestmark = pytest.mark.django_db

BACKENDS = ["redis", "database"]


@pytest.fixture(params=BACKENDS)
def limited(request, settings):
    settings.EASYMEMORY_RATE_LIMIT_BACKEND = request.param
    settings.EASYMEMORY_RATE_LIMIT_PER_MIN = 1  # one token a minute: nothing refills during a test
    settings.EASYMEMORY_RATE_LIMIT_BURST = 3
    return request.param


def test_it_answers_429_with_retry_after_once_the_burst_is_spent(limited, writer: Persona, reader: Persona) -> None:
    client = writer.client()
    responses = [client.get("/v1/memories") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r["X-RateLimit-Remaining"] for r in responses[:3]] == ["2", "1", "0"]
    # The headers describe the real bucket: 3 at once, refilled at 1 a minute.
    assert all(r["X-RateLimit-Limit"] == "3" for r in responses)
    assert all(r["X-RateLimit-Refill-Per-Minute"] == "1" for r in responses)
    denied = responses[3]
    assert 1 <= int(denied["Retry-After"]) <= 60
    assert denied.json()["error"]
    # Another credential has its own bucket.
    assert reader.client().get("/v1/memories").status_code == 200
    assert AuditEvent.objects.filter(tenant=writer.tenant, action="request.denied", outcome="throttled").count() == 1


def test_the_same_function_limits_any_caller(limited, writer: Persona) -> None:
    """MCP calls rate_limit_check(principal) too, so both surfaces draw on one bucket."""
    assert [rate_limit_check(writer.principal).allowed for _ in range(2)] == [True, True]
    assert writer.client().get("/v1/memories").status_code == 200
    decision = rate_limit_check(writer.principal)
    assert not decision.allowed and decision.headers()["Retry-After"]


def test_concurrent_requests_never_overdraw(limited, writer: Persona, settings) -> None:
    settings.EASYMEMORY_RATE_LIMIT_BURST = 10

    def take(_: int) -> bool:
        try:
            return rate_limit_check(writer.principal).allowed
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=8) as pool:
        decisions = list(pool.map(take, range(40)))
    assert sum(decisions) == 10


def test_a_zero_limit_turns_limiting_off(settings, writer: Persona) -> None:
    settings.EASYMEMORY_RATE_LIMIT_PER_MIN = 0
    response = writer.client().get("/v1/memories")
    assert response.status_code == 200 and "X-RateLimit-Limit" not in response


def start_servers(count: int, **env: str) -> list[tuple[str, subprocess.Popen[bytes]]]:
    servers = []
    for _ in range(count):
        port = free_port()
        command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1"]
        # No lifespan: these servers need no warmed-up embedding model, and 2 cores are shared.
        command += ["--port", str(port), "--log-level", "warning", "--lifespan", "off"]
        process = subprocess.Popen(command, cwd=REPO, env=subprocess_env(**env))
        servers.append((f"http://127.0.0.1:{port}", process))
    for url, process in servers:
        wait_for_http(f"{url}/healthz", process=process)
    return servers


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend,processes", [("redis", 3), ("database", 2)])
def test_several_server_processes_share_one_bucket(tenant, backend: str, processes: int) -> None:
    burst = 12
    persona = make_persona("shared", tenant, "writer")
    servers = start_servers(
        processes,
        EASYMEMORY_RATE_LIMIT_BACKEND=backend,
        EASYMEMORY_RATE_LIMIT_PER_MIN="1",
        EASYMEMORY_RATE_LIMIT_BURST=str(burst),
        EASYMEMORY_AUDIT_JSONL="false",
    )
    try:
        urls = cycle(url for url, _ in servers)
        targets = [next(urls) for _ in range(burst * 3)]

        def call(url: str) -> int:
            return httpx.get(f"{url}/v1/memories", headers=persona.headers, timeout=30).status_code

        with ThreadPoolExecutor(max_workers=6) as pool:
            codes = list(pool.map(call, targets))
        # Every process drew from one bucket: exactly `burst` got through, not `burst` per process.
        assert codes.count(200) == burst
        assert codes.count(429) == len(targets) - burst
    finally:
        for _, process in servers:
            process.terminate()
        for _, process in servers:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

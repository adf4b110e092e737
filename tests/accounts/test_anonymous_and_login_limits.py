"""Anonymous and login traffic: per-address limits for requests without a valid credential,
per-account and per-address lockouts for the dashboard and /django-admin/ logins, and denials
aggregated in the audit trail instead of one chained event each."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.ratelimit import rate_limit_check_address
from audit.denials import audit_denials_flush
from audit.models import AuditEvent
from tests.conftest import Persona
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LOCKED = "Too many failed sign-in attempts. Try again in 15 minutes."


@pytest.fixture(params=["redis", "database"])
def anon_limited(request: Any, settings: Any) -> str:
    settings.EASYMEMORY_RATE_LIMIT_BACKEND = request.param
    settings.EASYMEMORY_ANON_RATE_LIMIT_PER_MIN = 1  # nothing refills during a test
    settings.EASYMEMORY_ANON_RATE_LIMIT_BURST = 4
    # A fresh address per backend: Redis buckets outlive the test's transaction.
    return f"203.0.113.{7 if request.param == 'redis' else 8}"


def _flush_address(addr: str) -> None:
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.EASYMEMORY_REDIS_URL).delete(f"easymemory:rl:anon:{addr}")


def test_bad_credentials_from_one_address_get_429_and_are_counted_not_chained(
    anon_limited: str, writer: Persona
) -> None:
    addr = anon_limited
    _flush_address(addr)
    bad = APIClient(REMOTE_ADDR=addr)
    bad.credentials(HTTP_AUTHORIZATION="Bearer emk_not-a-real-key")
    codes = [bad.get("/v1/memories").status_code for _ in range(7)]
    assert codes == [401, 401, 401, 401, 429, 429, 429]
    assert APIClient(REMOTE_ADDR=addr).get("/v1/memories").status_code == 429  # no credential at all: same bucket
    denied = APIClient(REMOTE_ADDR=addr)
    denied.credentials(HTTP_AUTHORIZATION="Bearer emk_not-a-real-key")
    response = denied.get("/v1/memories")
    assert int(response["Retry-After"]) >= 1 and "too many requests" in response.json()["error"]
    # A valid credential from the same address is not held back by the address's failures.
    good = writer.client()
    assert good.get("/v1/memories", REMOTE_ADDR=addr).status_code == 200
    # One chained event per (address, outcome) and window, not one per request ...
    events = AuditEvent.objects.filter(tenant=None, action="request.denied", client_addr=addr)
    assert sorted(events.values_list("outcome", flat=True)) == ["throttled", "unauthenticated"]
    # ... and when the window closes, one more with the count of the rest.
    assert audit_denials_flush(everything=True) == 2
    repeated = {e.outcome: e.detail["repeated"] for e in events.filter(detail__has_key="repeated")}
    assert repeated == {"unauthenticated": 3, "throttled": 4}


def test_the_oauth_token_endpoint_refuses_a_spent_address_before_checking_secrets(
    anon_limited: str, admin: Persona
) -> None:
    addr = anon_limited
    _flush_address(addr)
    client = APIClient(REMOTE_ADDR=addr)
    body = {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "guess"}
    codes = [client.post("/oauth/token", body).status_code for _ in range(6)]
    assert codes == [401, 401, 401, 401, 429, 429]
    # The refused attempts never reached the view: it audits each attempt it sees.
    assert AuditEvent.objects.filter(action="oauth.token_issue", client_addr=addr).count() == 4


@pytest.mark.django_db(transaction=True)
def test_mcp_requests_without_a_valid_credential_are_limited_per_address(settings: Any) -> None:
    import anyio

    from mcp_server.http import McpHttpApp

    settings.EASYMEMORY_RATE_LIMIT_BACKEND = "database"
    settings.EASYMEMORY_ANON_RATE_LIMIT_PER_MIN = 1
    settings.EASYMEMORY_ANON_RATE_LIMIT_BURST = 2
    app = McpHttpApp()

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return [
                (await client.post("/mcp", json={}, headers=headers)).status_code
                for headers in ({}, {"Authorization": "Bearer emk_wrong"}, {}, {"Authorization": "Bearer emk_x"})
            ]

    assert anyio.run(scenario) == [401, 401, 429, 429]
    events = AuditEvent.objects.filter(action="request.denied", client_addr="198.51.100.9")
    assert sorted(events.values_list("outcome", flat=True)) == ["throttled", "unauthenticated"]


def test_the_address_bucket_is_shared_by_every_door(anon_limited: str) -> None:
    """REST, MCP and the websocket charge the same bucket (rate_limit_check_address)."""
    addr = anon_limited
    _flush_address(addr)
    assert [rate_limit_check_address(addr).allowed for _ in range(3)] == [True, True, True]
    client = APIClient(REMOTE_ADDR=addr)
    assert [client.get("/v1/memories").status_code for _ in range(2)] == [401, 429]


@pytest.fixture
def login_limits(settings: Any) -> Any:
    settings.AXES_FAILURE_LIMIT = 3
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = UserFactory(username="frida")
    user.set_password("the-right-password-1")
    user.save()
    return user


def login(path: str, username: str, password: str, addr: str) -> Any:
    client = Client(REMOTE_ADDR=addr)
    return client.post(path, {"username": username, "password": password})


@pytest.mark.parametrize("path", ["/login/", "/django-admin/login/"])
def test_an_account_is_locked_after_repeated_failures_from_any_address(login_limits: Any, path: str) -> None:
    for n in range(2):
        assert login(path, "frida", f"wrong-{n}", f"10.0.0.{n}").status_code == 200  # the form again
    assert login(path, "frida", "wrong-2", "10.0.0.2").status_code == 429  # the limit-th failure locks
    locked = login(path, "frida", "the-right-password-1", "10.0.0.99")
    assert locked.status_code == 429 and LOCKED in locked.content.decode()
    assert int(locked["Retry-After"]) == 15 * 60


@pytest.mark.parametrize("path", ["/login/", "/django-admin/login/"])
def test_the_lockout_reads_the_same_for_an_account_that_does_not_exist(login_limits: Any, path: str) -> None:
    for name in ("frida", "nobody-here"):
        for n in range(3):
            login(path, name, "wrong", f"10.1.{len(name)}.{n}")
        locked = login(path, name, "wrong", "10.1.9.9")
        assert locked.status_code == 429 and LOCKED in locked.content.decode(), name
    existing = login(path, "frida", "wrong", "10.1.9.10").content.decode()
    missing = login(path, "nobody-here", "wrong", "10.1.9.11").content.decode()
    assert existing.replace("frida", "X") == missing.replace("nobody-here", "X")


def test_an_address_is_locked_after_repeated_failures_on_any_account(login_limits: Any) -> None:
    for n in range(3):
        login("/login/", f"guess-{n}", "wrong", "10.2.0.1")
    assert login("/login/", "frida", "the-right-password-1", "10.2.0.1").status_code == 429
    # Another address still signs in.
    assert login("/login/", "frida", "the-right-password-1", "10.2.0.2").status_code == 302


def test_failed_logins_are_one_chained_event_per_address_and_window(login_limits: Any) -> None:
    for n in range(3):
        login("/login/", "frida", f"wrong-{n}", "10.3.0.1")
    failed = AuditEvent.objects.filter(action="auth.login", outcome="failed", client_addr="10.3.0.1")
    assert failed.count() == 1
    audit_denials_flush(everything=True)
    assert failed.count() == 2 and failed.filter(detail__repeated=2).exists()

"""The live event websocket /ws/events over a real socket, against real servers."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client as DjangoClient
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from accounts.models import ApiKey
from accounts.services import api_key_revoke
from core.events import tenant_group
from memory.services import MemoryInput, memory_create
from tests.conftest import REPO, LiveServer, Persona, subprocess_env
from tests.factories import MembershipFactory
from tests.mcp.conftest import mcp_client, payload, run, start_uvicorn, stop

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT = 30


def ws_url(server: LiveServer, query: str = "") -> str:
    return server.url.replace("http://", "ws://") + "/ws/events" + query


def raw_socket(server: LiveServer, *, key: str | None = None, query: str = "", **kwargs: Any) -> ClientConnection:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers.update(kwargs.pop("headers", {}))
    return connect(ws_url(server, query), additional_headers=headers, proxy=None, open_timeout=TIMEOUT, **kwargs)


def open_socket(server: LiveServer, **kwargs: Any) -> ClientConnection:
    socket = raw_socket(server, **kwargs)
    hello = next_event(socket)
    assert hello["type"] == "hello"
    return socket


def next_event(socket: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    return dict(json.loads(socket.recv(timeout=timeout)))


def create(server: LiveServer, persona: Persona, content: str) -> str:
    response = httpx.post(f"{server.url}/v1/memories", json={"content": content}, headers=persona.headers, timeout=60)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_it_sends_a_tenants_events_to_its_own_sockets_only(
    live: LiveServer, writer: Persona, outsider: Persona
) -> None:
    with open_socket(live, key=writer.key) as mine, open_socket(live, query=f"?token={outsider.key}") as theirs:
        memory_id = create(live, writer, "Carol's birthday is on 3 March")
        created = next_event(mine)
        assert created["type"] == "memory.created" and created["data"] == {"ids": [memory_id]}
        assert created["tenant"] == str(writer.tenant.pk) and created["at"]
        assert "Carol" not in json.dumps(created)  # ids, never content

        # Had acme's event leaked to globex, it would arrive before globex's own (one channel, in order).
        their_id = create(live, outsider, "Globex event")
        assert next_event(theirs)["data"] == {"ids": [their_id]}

        patched = httpx.patch(f"{live.url}/v1/memories/{memory_id}", json={"tags": ["family"]}, headers=writer.headers)
        assert patched.status_code == 200
        updated = next_event(mine)
        assert updated["type"] == "memory.updated" and updated["data"]["ids"] == [memory_id]
        assert updated["data"]["version"] == 2 and updated["data"]["content_changed"] is False

        assert httpx.delete(f"{live.url}/v1/memories/{memory_id}", headers=writer.headers).status_code == 204
        deleted = next_event(mine)
        assert deleted["type"] == "memory.deleted" and deleted["data"] == {"ids": [memory_id]}

        async def add_via_mcp() -> Any:
            async with mcp_client(live.url, writer.key) as client:
                return await client.call_tool("memory_add", {"content": "added through MCP"})

        via_mcp = payload(run(add_via_mcp))["memory"]["id"]
        assert next_event(mine) | {"at": None} == {
            "type": "memory.created",
            "tenant": str(writer.tenant.pk),
            "at": None,
            "data": {"ids": [via_mcp]},
        }

        their_second = create(live, outsider, "Globex second event")
        assert next_event(theirs)["data"] == {"ids": [their_second]}


def test_it_refuses_sockets_without_a_valid_credential(live: LiveServer, writer: Persona) -> None:
    for attempt in ({}, {"key": "emk_" + "z" * 40}, {"query": "?token=emk_wrong"}):
        with pytest.raises(InvalidStatus) as refused:
            raw_socket(live, **attempt)
        assert refused.value.response.status_code == 403, attempt
    # A bad header is not rescued by a good query token: the header is the credential given.
    with pytest.raises(InvalidStatus):
        raw_socket(live, key="emk_" + "z" * 40, query=f"?token={writer.key}")


def test_it_closes_the_socket_when_the_key_is_revoked(live: LiveServer, reader: Persona, writer: Persona) -> None:
    with open_socket(live, key=reader.key) as socket:
        first = create(live, writer, "before the revocation")
        assert next_event(socket)["data"] == {"ids": [first]}
        api_key_revoke(api_key=ApiKey.objects.get(pk=reader.principal.actor_id))
        create(live, writer, "after the revocation")
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


def test_it_accepts_a_dashboard_session_only_from_an_allowed_origin(live: LiveServer, writer: Persona) -> None:
    user = get_user_model().objects.create_user(username="dana", password="pw-for-tests-123")
    MembershipFactory(user=user, tenant=writer.tenant, role="reader")
    browser = DjangoClient()
    browser.force_login(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"

    with open_socket(live, headers={"Cookie": cookie}, origin=live.url) as socket:
        memory_id = create(live, writer, "seen by the dashboard")
        assert next_event(socket)["data"] == {"ids": [memory_id]}
    with pytest.raises(InvalidStatus) as refused:
        raw_socket(live, headers={"Cookie": cookie}, origin="http://evil.example")
    assert refused.value.response.status_code == 403


def test_it_publishes_only_after_commit(writer: Persona) -> None:
    from django.conf import settings

    class Abort(Exception):
        pass

    def write_twice() -> str:
        with pytest.raises(Abort), transaction.atomic():
            memory_create(principal=writer.principal, data=MemoryInput(content="rolled back"))
            raise Abort
        return str(memory_create(principal=writer.principal, data=MemoryInput(content="committed")).memory.id)

    if settings.EASYMEMORY_EVENTS_VIA_POSTGRES:  # no Redis: the events travel as NOTIFY
        import psycopg

        from core.events import NOTIFY_CHANNEL, _listen_conninfo

        with psycopg.connect(**_listen_conninfo(), autocommit=True) as listener:
            listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
            kept = write_twice()
            notes = list(listener.notifies(timeout=TIMEOUT, stop_after=1))
        messages = [json.loads(note.payload) for note in notes]
    else:
        layer = get_channel_layer()
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(tenant_group(writer.tenant.pk), channel)
        kept = write_twice()

        async def receive() -> dict[str, Any]:
            return dict(await asyncio.wait_for(layer.receive(channel), timeout=TIMEOUT))

        messages = [async_to_sync(receive)()]
    assert [(m["event"], m["data"]) for m in messages] == [("memory.created", {"ids": [kept]})]


@pytest.mark.slow
@pytest.mark.e2e
def test_it_relays_worker_events_without_redis(writer: Persona, outsider: Persona) -> None:
    """Single-user mode: in-memory channel layer, the worker in another process, events through PostgreSQL."""
    server = start_uvicorn(EASYMEMORY_REDIS_URL="")
    from config.cli import worker_command as every_queue_worker

    worker_command = every_queue_worker(concurrency=1)
    worker_env = subprocess_env()
    worker_env.pop("EASYMEMORY_REDIS_URL", None)
    worker = subprocess.Popen(worker_command + ["--without-heartbeat"], cwd=REPO, env=worker_env)
    try:
        with open_socket(server, key=writer.key) as mine, open_socket(server, key=outsider.key) as theirs:
            memory_id = create(server, writer, "remember to water the plants")
            created = next_event(mine)
            assert created["type"] == "memory.created" and created["data"] == {"ids": [memory_id]}
            # From the worker process once the embedding is stored; the worker loads the model first,
            # which takes long on a busy 2-core machine.
            enriched = next_event(mine, timeout=180)
            assert enriched["type"] == "memory.enriched" and enriched["data"] == {"ids": [memory_id]}
            their_id = create(server, outsider, "globex plant")
            assert next_event(theirs)["data"] == {"ids": [their_id]}
    finally:
        stop(worker, timeout=20)
        stop(server.process)

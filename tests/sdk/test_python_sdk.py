"""The Python SDK against the real server: every endpoint family, both clients, auth, retries, errors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.sdk.conftest import SdkServer, write_file

# `django_db` makes pytest-django create the test database; the rows live in the module's server fixture.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db]

from easymemory_client import (  # noqa: E402 - importable once tests/sdk/conftest.py put it on sys.path
    AsyncEasyMemory,
    AuthenticationError,
    BadRequest,
    EasyMemory,
    Memory,
    NotFound,
    PermissionDenied,
    RetryPolicy,
    SkippedMemory,
)


def settled(em: EasyMemory, memory_id: str, timeout: float = 180) -> None:
    """Wait until the worker has enriched the memory. Deleting a memory while the worker is still
    extracting from it can fail with an integrity error on the server (reported; not the SDK's concern)."""
    deadline = time.monotonic() + timeout
    while em.get(memory_id).enrichment_state == "pending" and time.monotonic() < deadline:
        time.sleep(0.3)


def client(server: SdkServer, persona: str, **kwargs: object) -> EasyMemory:
    # A generous timeout: the server loads its embedding model on the first search, on a shared CPU.
    return EasyMemory(server.url, api_key=server.keys[persona], timeout=180, **kwargs)  # type: ignore[arg-type]


def test_it_adds_reads_updates_and_deletes_a_memory_with_its_history(sdk_server: SdkServer) -> None:
    with client(sdk_server, "writer") as em:
        memory = em.add("Marco's flat is on Via Roma 12", tags=["home"], user_ref="marco", importance=0.8)
        assert isinstance(memory, Memory) and memory.created is True
        again = em.add("Marco's flat is on Via Roma 12", tags=["home"], user_ref="marco")
        assert isinstance(again, Memory) and again.id == memory.id and again.created is False

        fetched = em.get(memory.id)
        assert fetched.content == memory.content and fetched.tags == ["home"] and fetched.user_ref == "marco"
        assert fetched.created_at is not None and fetched.importance == 0.8

        updated = em.update(memory.id, content="Marco's flat is on Via Roma 14", metadata={"source": "sdk"})
        assert updated.version == 2 and updated.metadata == {"source": "sdk"}
        events = [entry.event for entry in em.history(memory.id)]
        assert events[0] == "ADD" and "UPDATE" in events

        settled(em, memory.id)
        em.delete(memory.id)
        with pytest.raises(NotFound):
            em.get(memory.id)


def test_a_batch_is_added_at_once_and_lists_iterate_over_every_page(sdk_server: SdkServer) -> None:
    with client(sdk_server, "writer") as em:
        items = [{"content": f"Batch fact number {n} about the kiln", "session_id": "batch-s"} for n in range(5)]
        created = em.add_many(items)  # type: ignore[arg-type]
        assert len(created) == 5 and all(isinstance(m, Memory) and m.created for m in created)
        listed = list(em.list(page_size=2, session_id="batch-s"))
        assert sorted(m.id for m in listed) == sorted(m.id for m in created if isinstance(m, Memory))
        assert [m.content for m in em.list(page_size=2, session_id="nobody-here")] == []


def test_a_trivial_message_the_policy_skips_or_marks_comes_back_typed(sdk_server: SdkServer) -> None:
    with client(sdk_server, "writer") as em:
        result = em.add("ok thanks", kind="message", session_id="policy-s")
        # The default policy (smart) stores acknowledgements marked ephemeral; other policies skip them.
        assert isinstance(result, Memory | SkippedMemory)
        if isinstance(result, Memory):
            assert result.metadata.get("ephemeral") is True


def test_search_returns_typed_hits_with_evidence_within_the_filters(sdk_server: SdkServer) -> None:
    with client(sdk_server, "writer") as em:
        em.add("Giulia plays the cello in the city orchestra", user_ref="giulia")
        em.add("Paolo plays the cello at weekends", user_ref="paolo")
        result = em.search("who plays the cello", k=5, filters={"user_ref": "giulia"}, weights={"fulltext": 1.0})
        assert len(result) >= 1 and result.took_ms >= 0
        assert {hit.memory.user_ref for hit in result} == {"giulia"}
        assert result[0].score > 0 and result[0].evidence
        past = em.search("cello", as_of="2000-01-01T00:00:00Z")
        assert len(past) == 0  # nothing had been written by then


def test_server_errors_become_exceptions_carrying_the_field(sdk_server: SdkServer) -> None:
    with client(sdk_server, "writer") as em:
        with pytest.raises(BadRequest) as refused:
            em.add("x", importance=7)
        assert refused.value.status == 400 and refused.value.field == "importance"
        with pytest.raises(BadRequest) as unknown:
            em.add("x", colour="blue")  # type: ignore[call-arg]
        assert unknown.value.field == "colour"
        with pytest.raises(BadRequest) as bad_k:
            em.search("x", k=0)
        assert bad_k.value.field == "k"
        with pytest.raises(NotFound):
            em.get("00000000-0000-0000-0000-000000000000")
    with pytest.raises(AuthenticationError):
        EasyMemory(sdk_server.url, api_key="emk_not-a-real-key").stats()


def test_each_persona_gets_what_its_role_allows_through_the_sdk(sdk_server: SdkServer) -> None:
    with client(sdk_server, "writer") as writer:
        mine = writer.add("The staging database password rotates monthly", session_id="access-s")
        assert isinstance(mine, Memory)
    with client(sdk_server, "reader") as reader:
        assert reader.get(mine.id).id == mine.id
        assert any(hit.memory.id == mine.id for hit in reader.search("staging database rotates"))
        with pytest.raises(PermissionDenied):
            reader.add("readers cannot write")
        with pytest.raises(PermissionDenied):
            reader.delete(mine.id)
    with client(sdk_server, "admin") as admin:
        assert admin.get(mine.id).id == mine.id
    with client(sdk_server, "outsider") as outsider:
        with pytest.raises(NotFound):
            outsider.get(mine.id)
        assert all(hit.memory.id != mine.id for hit in outsider.search("staging database rotates"))
        assert list(outsider.list(session_id="access-s")) == []


def test_forgetting_a_user_deletes_only_their_memories(sdk_server: SdkServer) -> None:
    with client(sdk_server, "writer") as em:
        em.add("Zoe's cat is called Pixel", user_ref="zoe")
        em.add("Zoe works nights", user_ref="zoe")
        kept = em.add("Yann's cat is called Byte", user_ref="yann")
        assert em.forget_user("zoe") == 2
        assert list(em.list(user_ref="zoe")) == []
        assert isinstance(kept, Memory) and em.get(kept.id).user_ref == "yann"
        stats = em.stats()
        assert stats["memories"] >= 1 and "graph" in stats


def test_the_graph_endpoints_answer_typed_entities_relations_and_paths(sdk_server: SdkServer) -> None:
    with client(sdk_server, "writer") as em:
        works = em.add_relation("Ada Byron", "Analytical Engine Ltd", "works_at", fact="Ada works at the company")
        lives = em.add_relation(works.source.id, "Marylebone", "lives_in")
        assert works.source.name == "Ada Byron" and works.predicate == "works_at" and works.current
        assert em.relation(works.id).fact == "Ada works at the company"

        names = {entity.name for entity in em.entities(page_size=1)}
        assert {"Ada Byron", "Analytical Engine Ltd", "Marylebone"} <= names
        found = list(em.entities("ada"))
        assert [e.name for e in found] == ["Ada Byron"]

        detail = em.entity(works.source.id)
        assert {r.id for r in detail.current} == {works.id, lives.id}
        around = em.neighbors(works.source.id, depth=1)
        assert {node["name"] for node in around.nodes} >= {"Analytical Engine Ltd", "Marylebone"}
        route = em.path(works.target.id, lives.target.id)
        assert route.length == 2 and [e.name for e in route.entities][1] == "Ada Byron"
        assert len(em.export_graph().edges) >= 2
        assert "<graphml" in em.export_graphml()

        em.delete_relation(lives.id)  # retired: kept for history, no longer current
        retired = em.relation(lives.id)
        assert retired.current is False and retired.expired_at is not None
        with pytest.raises(BadRequest) as refused:
            em.add_relation("Ada Byron", "Ada Byron", "")
        assert refused.value.field == "predicate"


def test_an_upload_becomes_a_job_that_the_wait_helper_follows_to_the_end(sdk_server: SdkServer, tmp_path: Path) -> None:
    notes = write_file(tmp_path, "notes.md", "# Trip\n\nThe ferry to Elba leaves at 08:40 from Piombino.\n")
    seen: list[str] = []
    with client(sdk_server, "writer") as em:
        job = em.upload_file(notes)
        assert job.kind == "file" and job.status in ("queued", "running", "done")
        finished = em.wait_for_job(job, timeout=240, poll=0.3, on_progress=lambda j: seen.append(j.status))
        assert finished.status == "done" and finished.memories_created >= 1 and finished.progress == 1.0
        assert seen[-1] == "done"
        assert job.id in {j.id for j in em.jobs(page_size=1)}
        exported = list(em.export())
        assert any("Piombino" in line.get("content", "") for line in exported)
        with pytest.raises(BadRequest) as refused:
            em.upload_file(("empty.md", b""))
        assert refused.value.field == "file"


def test_the_async_client_does_the_same_over_asyncio(sdk_server: SdkServer) -> None:
    async def scenario() -> None:
        async with AsyncEasyMemory(sdk_server.url, api_key=sdk_server.keys["writer"], timeout=180) as em:
            first, second = await asyncio.gather(
                em.add("Async fact: the lighthouse is painted red", session_id="async-s"),
                em.add("Async fact: the harbour closes at dusk", session_id="async-s"),
            )
            assert isinstance(first, Memory) and isinstance(second, Memory)
            listed = [m.id async for m in em.list(page_size=1, session_id="async-s")]
            assert sorted(listed) == sorted([first.id, second.id])
            hits = await em.search("lighthouse painted", filters={"session_id": "async-s"})
            assert hits[0].memory.id == first.id
            assert (await em.update(first.id, tags=["coast"])).tags == ["coast"]
            with pytest.raises(BadRequest) as refused:
                await em.search("x", k=10_000)
            assert refused.value.field == "k"
            with client(sdk_server, "writer") as sync_em:
                await asyncio.to_thread(settled, sync_em, second.id)
            await em.delete(second.id)
            with pytest.raises(NotFound):
                await em.get(second.id)
            assert [e async for e in em.entities("no such entity anywhere")] == []

    asyncio.run(scenario())


def test_oauth_client_credentials_fetch_a_token_and_fetch_again_when_it_is_revoked(sdk_server: SdkServer) -> None:
    with client(sdk_server, "admin") as admin:
        app = admin.admin.create_oauth_app("sdk-test-app", role="writer")
    em = EasyMemory(sdk_server.url, client_id=app["client_id"], client_secret=app["client_secret"])
    with em:
        assert isinstance(em.add("Written with an OAuth token", session_id="oauth-s"), Memory)
        assert em.token.fetched == 1
        assert len(list(em.list(session_id="oauth-s"))) == 1
        assert em.token.fetched == 1  # reused while valid
        revoked = httpx.post(
            f"{sdk_server.url}/oauth/revoke",
            data={"token": em.token.token, "client_id": app["client_id"], "client_secret": app["client_secret"]},
        )
        assert revoked.status_code == 200
        assert len(list(em.list(session_id="oauth-s"))) == 1
        assert em.token.fetched == 2
    with pytest.raises(AuthenticationError):
        EasyMemory(sdk_server.url, client_id=app["client_id"], client_secret="wrong").stats()


def test_a_rate_limited_call_waits_as_retry_after_says_and_then_succeeds(sdk_server: SdkServer) -> None:
    waits: list[float] = []
    asked: list[float] = []

    def recording_sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    def record_429(response: httpx.Response) -> None:
        if response.status_code == 429:
            asked.append(float(response.headers["retry-after"]))

    # A small limit of its own: the bucket runs out however slowly the server answers.
    with client(sdk_server, "admin") as admin:
        created = admin.admin.create_api_key("py-burst", role="reader", rate_limit_per_min=60, rate_limit_burst=5)
    assert (created["rate_limit_per_min"], created["rate_limit_burst"]) == (60, 5)
    policy = RetryPolicy(max_retries=6, backoff=0.05)
    limited = EasyMemory(sdk_server.url, api_key=created["secret"], timeout=180, retry=policy, sleep=recording_sleep)
    with limited as em:
        em.http.event_hooks["response"].append(record_429)
        # Spend the key's burst allowance through the client itself: every call must still succeed.
        for _ in range(50):
            assert list(em.list(page_size=1, session_id="none")) == []
            if waits:
                break
    assert asked and all(seconds > 0 for seconds in asked)
    assert waits and waits[0] >= min(asked[0], policy.max_wait)


def test_the_admin_api_and_the_audit_log_are_reachable(sdk_server: SdkServer) -> None:
    with client(sdk_server, "admin") as em:
        created = em.admin.create_api_key("sdk-made", role="reader")
        assert created["secret"] and created["role"] == "reader"
        assert created["id"] in {key["id"] for key in em.admin.api_keys()}
        with EasyMemory(sdk_server.url, api_key=created["secret"]) as made:
            assert made.stats()["memories"] >= 0
        assert em.admin.revoke_api_key(created["id"])["revoked_at"]
        with pytest.raises(AuthenticationError), EasyMemory(sdk_server.url, api_key=created["secret"]) as made:
            made.stats()
        events = [event for _, event in zip(range(30), em.audit_events(page_size=10), strict=False)]
        assert events and all("action" in event for event in events)
    with client(sdk_server, "writer") as em, pytest.raises(PermissionDenied):
        em.admin.api_keys()

"""The team deployment on real engines, end to end (deploy/team_demo.py): an external PostgreSQL
server over TCP, a Redis server of the test's own, two web processes, an embeddings worker and an
LLM worker in EASYMEMORY_MODE=team; then the faults a LAN server meets.

The tests share one deployment and run in file order (the faults come last).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.sync.client import connect

from deploy.team_demo import TeamDemo, wait_for_http

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BURST = 10  # the deployment's rate limit: 10 requests at once, then 1 a second per credential
DEADLINE = 240  # seconds: workers load the embedding model on first use, on a busy 2-core machine


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamDemo]:
    demo = TeamDemo(
        root=Path(tmp_path_factory.mktemp("team")),
        extra_env={
            "EASYMEMORY_RATE_LIMIT_PER_MIN": "60",
            "EASYMEMORY_RATE_LIMIT_BURST": str(BURST),
            "EASYMEMORY_LLM_TIMEOUT": "600",  # the hung-model test holds a call for a while
            # The test session's ONNX export of the model: each process has a data directory of its
            # own, and would otherwise export the model again (tests/memory covers the export).
            "EASYMEMORY_MODEL_CACHE_DIR": os.environ["EASYMEMORY_MODEL_CACHE_DIR"],
        },
    )
    try:
        yield demo.start()
    finally:
        demo.stop(graceful=False)


def wait_until(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def write(team: TeamDemo, web: int, key: str, content: Any) -> httpx.Response:
    return httpx.post(f"{team.web_url(web)}/v1/memories", json=content, headers=auth(key), timeout=60)


def search(team: TeamDemo, web: int, key: str, query: str) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{team.web_url(web)}/v1/search",
        json={"query": query, "weights": {"fulltext": 0}},  # only the vector list: found by meaning
        headers=auth(key),
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def embedded_count(team: TeamDemo, ids: list[str]) -> int:
    rows = team.sql("SELECT count(*) FROM memory_memoryembedding WHERE memory_id = ANY(%s::uuid[])", (ids,))
    return int(rows[0][0])


def test_writes_through_either_web_process_are_embedded_and_searchable(team: TeamDemo) -> None:
    key = team.api_key("either-web")
    lisbon = write(team, 0, key, {"content": "The Lisbon office opens at nine"})
    atlas = write(team, 1, key, {"content": "Standup moved to the Atlas room"})
    assert lisbon.status_code == atlas.status_code == 201
    ids = [lisbon.json()["id"], atlas.json()["id"]]
    wait_until(lambda: embedded_count(team, ids) == 2, "both memories embedded")
    for web in (0, 1):
        assert search(team, web, key, "when does the Portugal branch open")[0]["memory"]["id"] == ids[0]
        assert search(team, web, key, "where is the daily team meeting")[0]["memory"]["id"] == ids[1]
    # The LLM worker extracted entities through the (fake) Ollama server, on its own queue.
    wait_until(lambda: team.sql("SELECT count(*) FROM graph_entity WHERE name = 'Lisbon'")[0][0] == 1, "extraction")
    assert team.llm is not None and team.llm.calls >= 2


def test_a_hung_model_never_delays_embeddings(team: TeamDemo) -> None:
    assert team.llm is not None
    key = team.api_key("hung-model")
    extracted = "SELECT count(*) FROM graph_graphextraction WHERE memory_id = %s::uuid"
    team.llm.hold()  # the model stops answering: every extraction call hangs
    try:
        created = write(team, 0, key, {"content": "The Geneva contract renews in June"})
        assert created.status_code == 201
        memory_id = created.json()["id"]
        wait_until(lambda: embedded_count(team, [memory_id]) == 1, "the embedding, with the model hung")
        assert search(team, 1, key, "when is the Swiss agreement up for renewal")[0]["memory"]["id"] == memory_id
        assert team.sql(extracted, (memory_id,))[0][0] == 0  # its extraction waits for the model
    finally:
        team.llm.release()
    wait_until(lambda: team.sql(extracted, (memory_id,))[0][0] == 1, "the extraction once the model answers")


def test_a_websocket_on_one_web_process_receives_the_events_of_writes_through_the_other(team: TeamDemo) -> None:
    key = team.api_key("websocket")
    url = team.web_url(0).replace("http://", "ws://") + "/ws/events"
    with connect(url, additional_headers=auth(key), proxy=None, open_timeout=30) as socket:
        assert json.loads(socket.recv(timeout=30))["type"] == "hello"
        created = write(team, 1, key, {"content": "The Oslo team ships on Fridays"})
        assert created.status_code == 201
        memory_id = created.json()["id"]
        seen: list[tuple[str, list[str]]] = []
        deadline = time.monotonic() + DEADLINE
        while ("memory.enriched", [memory_id]) not in seen:
            event = json.loads(socket.recv(timeout=max(1.0, deadline - time.monotonic())))
            seen.append((event["type"], event["data"].get("ids", [])))
        # Written through web 1, announced by web 1 (created) and by the worker (enriched) to web 0's socket.
        assert seen.index(("memory.created", [memory_id])) < seen.index(("memory.enriched", [memory_id]))


def test_the_rate_limit_is_shared_by_the_web_processes(team: TeamDemo) -> None:
    key = team.api_key("rate-limited", role="reader")
    statuses: dict[int, list[int]] = {0: [], 1: []}

    def get(web: int) -> None:
        response = httpx.get(f"{team.web_url(web)}/v1/memories", headers=auth(key), timeout=60)
        statuses[web].append(response.status_code)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=BURST) as pool:  # at once, so little refills meanwhile
        list(pool.map(get, [i % 2 for i in range(3 * BURST)]))
    elapsed = time.monotonic() - started
    allowed = sum(code == 200 for codes in statuses.values() for code in codes)
    # One bucket for both processes: the burst plus what refilled meanwhile (1/s). Two buckets would
    # have let through about twice the burst.
    assert allowed <= BURST + math.ceil(elapsed) + 1, (allowed, elapsed)
    assert 429 in statuses[0] and 429 in statuses[1]
    assert set(statuses[0] + statuses[1]) <= {200, 429}


def test_kill_9_of_the_embeddings_worker_mid_batch_loses_nothing(team: TeamDemo) -> None:
    key = team.api_key("kill-worker")
    count = 192  # three tasks of 64, queued at once; the running worker takes them one by one
    created = write(team, 0, key, [{"content": f"Warehouse shelf {i} holds crate {i * 7}"} for i in range(count)])
    assert created.status_code == 201
    ids = [item["id"] for item in created.json()]

    broker = redis.Redis.from_url(team.redis_url)
    worker = team.workers["embeddings"]
    wait_until(lambda: embedded_count(team, ids) > 0, "the first batch", timeout=DEADLINE)
    # The next batch is delivered (held unacknowledged while it runs): kill -9 now.
    deadline = time.monotonic() + 60
    while broker.hlen("unacked") == 0:
        assert time.monotonic() < deadline, "the worker did not take the next batch"
        time.sleep(0.01)
    team.kill(worker)
    assert embedded_count(team, ids) < count
    # The batch the worker held was never acknowledged: Redis keeps it aside for re-delivery.
    assert broker.hlen("unacked") >= 1

    team.start_worker("embeddings")  # no reconcile: only re-delivery brings the lost batch back
    wait_until(lambda: embedded_count(team, ids) == count, "every memory embedded after the crash")
    pending = team.sql(
        "SELECT count(*) FROM memory_memory WHERE id = ANY(%s::uuid[]) AND enrichment_state <> 'done'", (ids,)
    )
    assert pending[0][0] == 0
    wait_until(lambda: broker.hlen("unacked") == 0, "the re-delivered tasks acknowledged", timeout=60)


def test_redis_stopped_and_restarted_loses_no_acknowledged_write(team: TeamDemo) -> None:
    key = team.api_key("redis-restart")
    team.stop_redis()
    acknowledged: list[str] = []
    for i in range(4):
        response = write(team, i % 2, key, {"content": f"Written while the queue was down, note {i}"})
        if response.status_code == 201:
            acknowledged.append(response.json()["id"])
    time.sleep(3)
    team.start_redis()
    assert acknowledged  # the database took the writes; the queue was not needed to answer
    wait_until(lambda: embedded_count(team, acknowledged) == len(acknowledged), "writes from the outage embedded")
    # Web processes and workers use the new Redis without a restart.
    for web in (0, 1):
        wait_for_http(f"{team.web_url(web)}/readyz", timeout=60)
    after = [write(team, web, key, {"content": f"Written after Redis came back, web {web}"}) for web in (0, 1)]
    assert [r.status_code for r in after] == [201, 201]
    ids = [r.json()["id"] for r in after]
    wait_until(lambda: embedded_count(team, ids) == 2, "writes after the restart embedded")


def test_postgresql_restarted_the_pool_reconnects(team: TeamDemo) -> None:
    key = team.api_key("pg-restart")
    team.restart_postgres()
    for web in (0, 1):
        # Pooled connections are checked before use. Observed once in three runs: the first request
        # after the restart got a 500 on one process (a connection its thread held outside the pool
        # was found dead and dropped); the process recovers by itself, no restart.
        codes = []
        while not codes or codes[-1] != 200:
            assert len(codes) < 3, codes
            codes.append(httpx.get(f"{team.web_url(web)}/v1/memories", headers=auth(key), timeout=60).status_code)
    created = write(team, 1, key, {"content": "The Kyoto visit is planned for April"})
    assert created.status_code == 201
    wait_until(lambda: embedded_count(team, [created.json()["id"]]) == 1, "the worker reconnected too")


def test_kill_9_of_one_web_process_leaves_the_other_serving(team: TeamDemo) -> None:
    key = team.api_key("kill-web")
    team.kill(team.webs[1])

    def refused() -> bool:
        try:
            httpx.get(f"{team.web_url(1)}/healthz", timeout=5)
        except httpx.ConnectError:
            return True
        return False

    # `serve` killed with -9 takes its web server with it (its children get SIGTERM when it dies).
    wait_until(refused, "the killed web process's port to close", timeout=60)
    created = write(team, 0, key, {"content": "The Nairobi launch slipped a week"})
    assert created.status_code == 201
    wait_until(lambda: embedded_count(team, [created.json()["id"]]) == 1, "embedding")
    assert search(team, 0, key, "when does the Kenya launch happen")[0]["memory"]["id"] == created.json()["id"]

"""MCP `memory_search` vs the same search over REST, on one running server.

    python bench/mcp_vs_rest.py                        # starts `easymemory serve` on a temp data dir
    python bench/mcp_vs_rest.py --url http://127.0.0.1:8100 --api-key emk_... [--calls 300] [--seed 1000]

Seeds the key's tenant with synthetic memories when it holds fewer than --seed
(and waits until they are embedded), runs every query once through each door
to warm the query-embedding cache (so both doors measure the same work), then
times --calls searches through each door, alternating REST and MCP call by
call so load from other processes hits both alike. Prints p50/p95 per door and
the ratio MCP p50 / REST p50 (goal ≤ 1.3).

Both clients keep their connection alive: REST with httpx, MCP with the
official SDK client (Streamable HTTP). Client-side costs count on both sides.
The server started here runs with EASYMEMORY_RATE_LIMIT_PER_MIN=0 (a running
server given with --url needs the same, or its limiter refuses the calls).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import bench_server, percentile  # noqa: E402

PEOPLE = ["Alice", "Bob", "Carol", "Dan", "Erin", "Farid", "Grace", "Hiro", "Ines", "Jon", "Kemi", "Lena"]
THINGS = [
    "green tea",
    "espresso",
    "hiking in the Alps",
    "the Rust compiler",
    "jazz piano",
    "sourdough bread",
    "the quarterly budget",
    "the Berlin office move",
    "vintage cameras",
    "marathon training",
    "the database migration",
    "Japanese woodworking",
    "the customer onboarding flow",
    "chess openings",
    "electric bikes",
    "the annual team retreat",
]
VERBS = ["prefers", "dislikes", "is learning about", "asked about", "wrote a note on", "is responsible for"]
WHEN = ["on Monday", "last week", "in March", "yesterday", "every morning", "before the release"]


def synthetic_memories(count: int, rng: random.Random) -> list[str]:
    texts = set()
    while len(texts) < count:
        texts.add(
            f"{rng.choice(PEOPLE)} {rng.choice(VERBS)} {rng.choice(THINGS)} {rng.choice(WHEN)}"
            f" (note {rng.randrange(1_000_000)})"
        )
    return sorted(texts)


def queries(count: int, rng: random.Random) -> list[str]:
    forms = [
        "what does {p} think about {t}?",
        "who {v} {t}",
        "{t} {w}",
        "{p} {t}",
        "notes about {t}",
    ]
    out = []
    for _ in range(count):
        out.append(
            rng.choice(forms).format(
                p=rng.choice(PEOPLE), t=rng.choice(THINGS), v=rng.choice(VERBS), w=rng.choice(WHEN)
            )
        )
    return out


def seed(client: httpx.Client, wanted: int, rng: random.Random) -> None:
    stats = client.get("/v1/stats").json()
    missing = wanted - int(stats["memories"])
    if missing > 0:
        texts = synthetic_memories(missing, rng)
        for start in range(0, len(texts), 500):
            batch = [{"content": text} for text in texts[start : start + 500]]
            client.post("/v1/memories", json=batch).raise_for_status()
        print(f"seeded {missing} memories; waiting for their embeddings", flush=True)
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        pending = int(client.get("/v1/stats").json()["pending_embeddings"])
        if pending == 0:
            return
        time.sleep(2)
    raise SystemExit("embeddings did not finish in 30 minutes (is the worker running?)")


async def run(url: str, api_key: str, calls: int, k: int, seed_count: int) -> dict[str, Any]:
    rng = random.Random(7)
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as sync_client:
        seed(sync_client, seed_count, rng)
    asked = queries(calls, rng)
    rest_ms: list[float] = []
    mcp_ms: list[float] = []
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as rest,
        httpx2.AsyncClient(headers=headers, timeout=60) as mcp_http,
        Client(streamable_http_client(f"{url}/mcp", http_client=mcp_http), mode="legacy") as mcp,
    ):

        async def via_rest(query: str) -> list[str]:
            response = await rest.post("/v1/search", json={"query": query, "k": k})
            response.raise_for_status()
            return [hit["memory"]["id"] for hit in response.json()["results"]]

        async def via_mcp(query: str) -> list[str]:
            result = await mcp.call_tool("memory_search", {"query": query, "k": k})
            if result.is_error:
                raise RuntimeError(result.content[0].text)
            return [hit["memory"]["id"] for hit in json.loads(result.content[0].text)["results"]]

        same = 0
        for query in asked:  # warm-up: embeds every query once, checks both doors agree
            same += await via_rest(query) == await via_mcp(query)
        for index, query in enumerate(asked):
            order = (via_rest, via_mcp) if index % 2 == 0 else (via_mcp, via_rest)
            for door in order:
                started = time.perf_counter()
                await door(query)
                elapsed = (time.perf_counter() - started) * 1000
                (rest_ms if door is via_rest else mcp_ms).append(elapsed)
    return {
        "calls": calls,
        "k": k,
        "rest_p50_ms": round(statistics.median(rest_ms), 2),
        "rest_p95_ms": round(percentile(rest_ms, 95), 2),
        "mcp_p50_ms": round(statistics.median(mcp_ms), 2),
        "mcp_p95_ms": round(percentile(mcp_ms, 95), 2),
        "ratio_p50": round(statistics.median(mcp_ms) / statistics.median(rest_ms), 3),
        "identical_results": f"{same}/{calls}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server (default: start one on a temp data dir)")
    parser.add_argument("--api-key")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1000, help="make sure the tenant holds at least this many memories")
    args = parser.parse_args()
    # The per-credential rate limit (180/min by default) would throttle a benchmark; it is off for both doors.
    no_limit = {"EASYMEMORY_RATE_LIMIT_PER_MIN": "0"}
    with bench_server(args.url, args.api_key, port=8192, extra_env=no_limit) as server:
        figures = asyncio.run(run(server.url, server.key, args.calls, args.k, args.seed))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

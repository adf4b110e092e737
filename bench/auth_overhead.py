"""Per-request cost of authentication + rate limiting + audit.

Two `easymemory serve` instances on throw-away data directories: one as shipped,
one with DJANGO_SETTINGS_MODULE=config.bench_settings (every request is the admin key's
principal, resolved once; no rate limit; no audit event). The same endpoint,
GET /v1/memories?limit=1, is called on both in alternation, sequentially on
loopback, and the p50 latencies are compared. The shipped server's limit is
raised so no request is refused, but the limiter still runs on every request.

python bench/auth_overhead.py [-n 2000]
EASYMEMORY_REDIS_URL=redis://127.0.0.1:6379/14 python bench/auth_overhead.py   # Redis limiter
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import bench_server, percentile  # noqa: E402

PATH = "/v1/memories?limit=1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="requests per server")
    args = parser.parse_args()
    with ExitStack() as stack:
        secure = stack.enter_context(
            bench_server(None, None, port=8190, extra_env={"EASYMEMORY_RATE_LIMIT_PER_MIN": "100000000"})
        )
        plain = stack.enter_context(
            bench_server(None, None, port=8191, extra_env={"DJANGO_SETTINGS_MODULE": "config.bench_settings"})
        )
        clients = {
            "secure": httpx.Client(base_url=secure.url, headers={"Authorization": f"Bearer {secure.key}"}, timeout=30),
            "plain": httpx.Client(base_url=plain.url, timeout=30),
        }
        for client in clients.values():
            client.post("/v1/memories", json={"content": "one memory so the list is not empty"})
            for _ in range(50):  # warm-up: connections, caches, first audit events
                assert client.get(PATH).status_code == 200
        timings: dict[str, list[float]] = {"secure": [], "plain": []}
        for i in range(args.n):
            order = ("secure", "plain") if i % 2 == 0 else ("plain", "secure")
            for name in order:
                t0 = time.perf_counter()
                response = clients[name].get(PATH)
                timings[name].append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200, response.text
        limiter = "redis" if os.environ.get("EASYMEMORY_REDIS_URL") else "database"
        print(f"GET {PATH}, {args.n} sequential requests per server on loopback (rate limiter: {limiter})")
        for name, values in timings.items():
            print(f"  {name:6}  p50 {statistics.median(values):.2f} ms   p95 {percentile(values, 95):.2f} ms")
        overhead = statistics.median(timings["secure"]) - statistics.median(timings["plain"])
        print(f"  auth + rate limit + audit overhead, p50: {overhead:.2f} ms")
        for client in clients.values():
            client.close()


if __name__ == "__main__":
    main()

"""POST /v1/memories latency: 1,000 sequential requests on loopback against a running server.

python bench/write_latency.py                 # starts `easymemory serve` on a temp data dir
python bench/write_latency.py --url URL --api-key KEY
python bench/write_latency.py --batch 100     # each request a list of 100 memories; memories/s
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import bench_server, percentile  # noqa: E402

TOPICS = ["budget", "deploy", "holiday", "allergy", "meeting", "invoice", "recipe", "flight", "laptop", "garden"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--api-key")
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1, help="memories per request (a list when above 1)")
    parser.add_argument("--port", type=int, default=8190, help="for the server it starts")
    args = parser.parse_args()
    # 1,000 requests in a row would trip the default 180/min limit, so the limiter is off
    # here; its cost is measured by bench/auth_overhead.py.
    no_limit = {"EASYMEMORY_RATE_LIMIT_PER_MIN": "0"}
    with bench_server(args.url, args.api_key, extra_env=no_limit, port=args.port) as server:
        headers = {"Authorization": f"Bearer {server.key}"}
        timings: list[float] = []
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            for i in range(20):  # warm-up: connections, caches
                client.post("/v1/memories", json={"content": f"warm-up note {i}"})
            started = time.perf_counter()
            for i in range(args.n):
                bodies = [
                    {
                        "content": f"Note {j}: the {TOPICS[j % 10]} item number {j} needs attention by Friday",
                        "tags": [TOPICS[j % 10]],
                        "user_ref": f"user-{j % 7}",
                    }
                    for j in range(i * args.batch, (i + 1) * args.batch)
                ]
                t0 = time.perf_counter()
                response = client.post("/v1/memories", json=bodies if args.batch > 1 else bodies[0])
                timings.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 201, response.text
            wall = time.perf_counter() - started
        size = f", {args.batch} memories each" if args.batch > 1 else ""
        print(f"POST /v1/memories, {args.n} sequential requests on loopback{size}")
        print(
            f"  p50 {statistics.median(timings):.1f} ms   p95 {percentile(timings, 95):.1f} ms   "
            f"max {max(timings):.1f} ms   throughput {args.n / wall:.0f} req/s, "
            f"{args.n * args.batch / wall:.0f} memories/s"
        )


if __name__ == "__main__":
    main()

"""POST /v1/memories latency: 1,000 sequential requests on loopback against a running server.

python bench/write_latency.py                 # starts `easymemory serve` on a temp data dir
python bench/write_latency.py --url URL --api-key KEY
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
    args = parser.parse_args()
    with bench_server(args.url, args.api_key) as server:
        headers = {"Authorization": f"Bearer {server.key}"}
        timings: list[float] = []
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            for i in range(20):  # warm-up: connections, caches
                client.post("/v1/memories", json={"content": f"warm-up note {i}"})
            started = time.perf_counter()
            for i in range(args.n):
                body = {
                    "content": f"Note {i}: the {TOPICS[i % 10]} item number {i} needs attention by Friday",
                    "tags": [TOPICS[i % 10]],
                    "user_ref": f"user-{i % 7}",
                }
                t0 = time.perf_counter()
                response = client.post("/v1/memories", json=body)
                timings.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 201, response.text
            wall = time.perf_counter() - started
        print(f"POST /v1/memories, {args.n} sequential requests on loopback")
        print(
            f"  p50 {statistics.median(timings):.1f} ms   p95 {percentile(timings, 95):.1f} ms   "
            f"max {max(timings):.1f} ms   throughput {args.n / wall:.0f} req/s"
        )


if __name__ == "__main__":
    main()

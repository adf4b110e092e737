"""Does the default rate limit fit a machine client? One API key, default limits, loopback.

Phase 1 sends GET /v1/memories?limit=1 paced at --rate requests/s for --seconds and counts
429s; phase 2 fires --burst requests back to back and reports how many got through before
the first 429 (the bucket's capacity) and what the X-RateLimit-* headers said.

python bench/rate_limit_client.py                 # starts `easymemory serve` on a temp data dir
python bench/rate_limit_client.py --url URL --api-key KEY
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import bench_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--api-key")
    parser.add_argument("--rate", type=float, default=25.0, help="requests per second in phase 1")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--burst", type=int, default=200)
    args = parser.parse_args()
    with bench_server(args.url, args.api_key) as server:
        headers = {"Authorization": f"Bearer {server.key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            first = client.get("/v1/memories", params={"limit": 1})
            print(
                f"headers: X-RateLimit-Limit={first.headers.get('X-RateLimit-Limit')} "
                f"X-RateLimit-Refill-Per-Minute={first.headers.get('X-RateLimit-Refill-Per-Minute')}"
            )
            time.sleep(10)  # let the bucket refill after the first request
            codes: dict[int, int] = {}
            interval = 1.0 / args.rate
            started = time.perf_counter()
            sent = 0
            while time.perf_counter() - started < args.seconds:
                due = started + sent * interval
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                status = client.get("/v1/memories", params={"limit": 1}).status_code
                codes[status] = codes.get(status, 0) + 1
                sent += 1
            elapsed = time.perf_counter() - started
            print(
                f"phase 1: {sent} requests in {elapsed:.1f} s = {sent / elapsed:.1f} req/s; "
                f"200: {codes.get(200, 0)}, 429: {codes.get(429, 0)}"
            )
            refill = float(first.headers.get("X-RateLimit-Refill-Per-Minute") or 0) / 60
            time.sleep(min(60.0, int(first.headers.get("X-RateLimit-Limit") or 0) / refill if refill else 0) + 1)
            statuses = [client.get("/v1/memories", params={"limit": 1}).status_code for _ in range(args.burst)]
            through = statuses.index(429) if 429 in statuses else len(statuses)
            print(f"phase 2: {args.burst} back to back: {through} before the first 429, {statuses.count(429)} refused")
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()

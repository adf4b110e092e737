"""Search latency of two code trees side by side, in one run, on one database.

    python bench/search_ab.py --before /path/to/old/checkout [--after .] [--data-dir /tmp/easymemory-bench]
                              [--queries 200] [--before-env NAME=VALUE ...] [--after-env NAME=VALUE ...]

Loads (or reuses) the data directory of bench/search_latency.py, starts one uvicorn server per
code tree against it, and sends the same distinct queries (k=10, hybrid) to both, alternating
which goes first, for the 100,000-row tenant and a 10,000-row one. Both servers therefore share
whatever else the machine is doing; the medians and the ratio after/before are the figures to
read. Each server embeds every query itself (their caches are their own). `--before-env` and
`--after-env` set environment variables for one server only, so one tree can also be compared
with itself under two settings (`--before . --before-env EASYMEMORY_SEARCH_DEPTH=30`).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import search_latency as data  # noqa: E402


def start(tree: Path, data_dir: Path, log: Path, extra: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = data.free_port()
    env = {**os.environ, **extra, "EASYMEMORY_DATA_DIR": str(data_dir), "PYTHONPATH": str(tree)}
    env["EASYMEMORY_RATE_LIMIT_PER_MIN"] = "0"  # as bench/search_latency.py
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--lifespan", "on", "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))  # noqa: S603
    return process, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="checkout of the code to compare against")
    parser.add_argument("--after", type=Path, default=REPO)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/easymemory-bench"))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=99)
    for name in ("before", "after"):
        parser.add_argument(f"--{name}-env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    import httpx

    data.setup_django(args.data_dir)
    keys = data.load(7, 1.0)
    from django.db import connections

    connections.close_all()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    extra = {
        "before": dict(item.split("=", 1) for item in args.before_env),
        "after": dict(item.split("=", 1) for item in args.after_env),
    }
    servers = {
        name: start(tree, args.data_dir, args.data_dir / f"ab-{name}.log", extra[name]) for name, tree in trees.items()
    }
    try:
        for name, (process, url) in servers.items():
            deadline = time.monotonic() + 180
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the {name} server did not start; see {args.data_dir / f'ab-{name}.log'}")
                time.sleep(0.5)
        n = args.queries
        texts = data.questions(random.Random(args.seed), 2 * n + 40)
        client = httpx.Client(timeout=60)

        def one(name: str, slug: str, text: str) -> tuple[float, float]:
            t0 = time.perf_counter()
            response = client.post(
                f"{servers[name][1]}/v1/search",
                json={"query": text, "k": 10},
                headers={"Authorization": f"Bearer {keys[slug]}"},
            )
            response.raise_for_status()
            return (time.perf_counter() - t0) * 1000, float(response.json()["took_ms"])

        for text in texts[-40:]:  # warm-up: model, connections, caches
            for name in servers:
                one(name, "bench-big", text)
        legs = (
            ("hybrid, 100k-row tenant", "bench-big", texts[:n]),
            ("hybrid, 10k-row tenant", "bench-t1", texts[n : 2 * n]),
        )
        for label, slug, batch in legs:
            timings: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
            for i, text in enumerate(batch):
                for name in list(servers) if i % 2 == 0 else list(servers)[::-1]:
                    timings[name].append(one(name, slug, text))
            for name, rows in timings.items():
                wall, inside = [w for w, _ in rows], [s for _, s in rows]
                print(
                    f"{label:<24} {name:<6} n={len(rows)} p50 {statistics.median(wall):6.1f} ms"
                    f"  p95 {data.percentile(wall, 95):6.1f} ms  (in search(): p50 {statistics.median(inside):.1f},"
                    f" p95 {data.percentile(inside, 95):.1f})",
                    flush=True,
                )
            ratio = statistics.median(w for w, _ in timings["after"]) / statistics.median(
                w for w, _ in timings["before"]
            )
            print(f"{label:<24} after/before p50 {ratio:.2f}", flush=True)
        print(f"load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    finally:
        for process, _ in servers.values():
            process.terminate()
        for process, _ in servers.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        data.stop_database(args.data_dir)


if __name__ == "__main__":
    main()

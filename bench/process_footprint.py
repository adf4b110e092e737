"""What one web process and one worker cost: resident memory once the model is loaded, and the
database connections each holds, measured on a throw-away `easymemory serve`.

    .venv/bin/python bench/process_footprint.py [--memories 300] [--searches 50]

Set EASYMEMORY_EMBED_BACKEND (onnx, onnx-int8, torch) to measure a backend; each process also
says whether it has torch's library mapped.

Prints the figures and the load average; they size a machine (RAM per process, PostgreSQL
max_connections per process) and say what one more web process or worker adds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import bench_server, percentile  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def torch_loaded(pid: int) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append((int(entry.name), (entry / "cmdline").read_text().replace("\0", " ")))
        except (OSError, ValueError, IndexError):
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memories", type=int, default=300)
    parser.add_argument("--searches", type=int, default=50)
    parser.add_argument("--port", type=int, default=8197)
    args = parser.parse_args()
    with bench_server(None, None, port=args.port) as server:
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=120)
        started = time.monotonic()
        items = [{"content": f"Note {n}: the {['build', 'deploy', 'review'][n % 3]} step {n} uses tool {n % 17}"}
                 for n in range(args.memories)]  # fmt: skip
        ids = []
        for item in items:
            created = client.post("/v1/memories", json=item)
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        while client.get(f"/v1/memories/{ids[-1]}").json()["enrichment_state"] == "pending":
            time.sleep(0.5)
        embedded_s = time.monotonic() - started
        latencies = []
        for n in range(args.searches):
            t0 = time.perf_counter()
            assert client.post("/v1/search", json={"query": f"which tool does deploy step {n} use"}).status_code == 200
            latencies.append((time.perf_counter() - t0) * 1000)
        assert server.data_dir is not None
        serve_pid = json.loads((server.data_dir / "serve.json").read_text())["pid"]
        metrics = client.get("/metrics").text
        print(f"memories {args.memories}: written and embedded in {embedded_s:.1f}s (one worker, concurrency 2)")
        p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
        print(f"search over HTTP, sequential: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
        for pid, cmd in children(serve_pid):
            kind = "web (uvicorn)" if "uvicorn" in cmd else "worker (celery)" if "celery" in cmd else cmd[:40]
            print(f"{kind}: RSS {rss_mb(pid):.0f} MB, torch loaded: {'yes' if torch_loaded(pid) else 'no'}")
        for line in metrics.splitlines():
            if line.startswith("easymemory_db_pool_connections{"):
                print("pool", line)
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

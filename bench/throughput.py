"""Throughput under a mixed load: 32 clients, 80 % searches and 20 % writes, 1 and 2 web processes.

    python bench/throughput.py [--data-dir /tmp/easymemory-bench] [--seconds 60] [--clients 32]
                               [--processes 1 2] [--write-share 0.2] [--rate 75] [--code PATH]

`--code` runs the server from another checkout (e.g. the previous release) with this benchmark.

What it does:
1. Loads the data of bench/search_latency.py into its data directory unless it is there already
   (100,000 memories in tenant `bench-big`, 10,000 in each of nine others; same loader, with COPY
   and pre-computed vectors), and creates a writer key of `bench-big`. Memories written by an
   earlier run of this script are deleted first, so every run starts from the same tenant.
2. For each web-process count: starts `easymemory serve --workers N` on that data directory
   (embedded PostgreSQL, the embedding worker running), waits until it is ready, and warms it up
   for `--warmup` seconds with the same load.
3. Drives `--clients` concurrent clients for `--seconds` seconds, each sending its next request as
   soon as the previous one answered (closed loop). With `--rate R` the loop is open instead: R
   requests/s in all arrive at random (Poisson) over the clients, whether or not earlier ones were
   answered, and each latency counts from when its request was due. A request is a search (k=10,
   a distinct query each time, so the server's query-embedding cache never helps) or, with
   probability `--write-share`, a write of a new memory, which the worker then embeds on the
   same machine.
4. Prints, per operation, requests/s and p50/p95/p99; whether 60 searches/s with search p95
   under 150 ms held; the CPU seconds spent meanwhile by the web processes, the worker,
   PostgreSQL and this client (psutil), per request; and the load average.

Where a search's CPU goes, part by part, is measured by bench/search_profile.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import search_latency as data  # noqa: E402

WRITE_TAG = "throughput-bench"
TARGET_SEARCHES, TARGET_P95_MS = 60, 150
OPEN_LOOP_GRACE_S = 10.0


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"search": [], "write": []})
    errors: dict[str, int] = field(default_factory=lambda: {"search": 0, "write": 0})
    short: int = 0  # searches that returned fewer than k hits
    # Open loop: requests still unanswered after the window and its grace, by operation.
    unanswered: dict[str, int] = field(default_factory=lambda: {"search": 0, "write": 0})


def search_texts(rng: random.Random, count: int) -> list[str]:
    """Distinct search queries: a question of the loader's kinds with a place or time added."""
    extras = data.PLACES + data.TIMES + [""]
    seen: set[str] = set()
    base = data.questions(rng, 4000)
    while len(seen) < count:
        seen.add(f"{rng.choice(base)} {rng.choice(extras)}".strip())
    out = sorted(seen)
    rng.shuffle(out)
    return out


def write_texts(rng: random.Random, count: int, label: str) -> list[str]:
    """Distinct new memories (never de-duplicated against an earlier leg's)."""
    vocabulary = data.sentence_vocabulary(rng, 500)
    return [f"{rng.choice(vocabulary)} {rng.choice(vocabulary)} (note {label}-{n})" for n in range(count)]


def prepare(data_dir: Path, seed: int, scale: float) -> str:
    """The loaded data directory's writer key for `bench-big` (the database stopped afterwards)."""
    data.setup_django(data_dir)
    data.load(seed, scale)
    from accounts.models import Tenant
    from accounts.scoping import scoped
    from accounts.services import api_key_create
    from memory.models import Memory

    tenant = Tenant.objects.get(slug="bench-big")
    # Bench housekeeping, not a product path: the rows an earlier run wrote (their embeddings,
    # history and graph links cascade).
    removed, _ = scoped(Memory, tenant).filter(tags__contains=[WRITE_TAG]).delete()
    if removed:
        print(f"removed {removed} rows written by an earlier run", flush=True)
    rows = scoped(Memory, tenant).count()
    print(f"tenant bench-big holds {rows} memories", flush=True)
    key = api_key_create(tenant=tenant, name="throughput", role="writer").secret
    data.stop_database(data_dir)
    return key


def process_kind(process: object, postgres: set[int]) -> str:
    import psutil

    assert isinstance(process, psutil.Process)
    if process.pid in postgres:
        return "postgres"
    try:
        cmdline = " ".join(process.cmdline())
    except psutil.Error:
        return "gone"
    if "celery" in cmdline:
        return "worker"
    if "uvicorn" in cmdline or "multiprocessing" in cmdline:
        return "web"
    return "serve"


def cpu_snapshot(serve_pid: int, data_dir: Path) -> dict[int, tuple[str, float]]:
    """{pid: (kind, user+system CPU seconds)} of serve's process tree and the embedded PostgreSQL."""
    import psutil

    processes = [psutil.Process(serve_pid), *psutil.Process(serve_pid).children(recursive=True)]
    postgres: set[int] = set()
    pidfile = data_dir / "pg" / "postmaster.pid"
    if pidfile.exists():
        postmaster = psutil.Process(int(pidfile.read_text().split()[0]))
        backends = [postmaster, *postmaster.children(recursive=True)]
        postgres = {p.pid for p in backends}
        processes += backends
    snapshot = {}
    for process in processes:
        try:
            times = process.cpu_times()
            snapshot[process.pid] = (process_kind(process, postgres), times.user + times.system)
        except psutil.Error:
            continue
    return snapshot


def cpu_by_kind(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    spent: dict[str, float] = {}
    for pid, (kind, seconds) in after.items():
        spent[kind] = spent.get(kind, 0.0) + seconds - (before[pid][1] if pid in before else 0.0)
    return spent


async def post(http: Any, results: Results, op: str, path: str, body: dict[str, Any], since: float) -> None:
    """One request; its latency counts from `since` (sent, or due in the open loop)."""
    import httpx

    try:
        response = await http.post(path, json=body)
        ok = response.status_code in (200, 201)
    except httpx.HTTPError:
        response, ok = None, False
    if not ok:
        results.errors[op] += 1
        return
    results.latencies[op].append((time.perf_counter() - since) * 1000)
    if op == "search" and response is not None and len(response.json()["results"]) < 10:
        results.short += 1


async def drive(
    url: str,
    key: str,
    clients: int,
    seconds: float,
    write_share: float,
    queries: list[str],
    notes: list[str],
    seed: int,
) -> Results:
    import httpx

    results = Results()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.perf_counter() + seconds
    query_iter = iter(queries)
    note_iter = iter(notes)

    async def client(n: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(seed * 1000 + n)
        while time.perf_counter() < deadline:
            if rng.random() < write_share:
                op = "write"
                body = {"content": next(note_iter), "tags": [WRITE_TAG], "session_id": f"tp-{n}"}
                path = "/v1/memories"
            else:
                op = "search"
                body = {"query": next(query_iter), "k": 10}
                path = "/v1/search"
            await post(http, results, op, path, body, since=time.perf_counter())

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as http:
        await asyncio.gather(*(client(n, http) for n in range(clients)))
    return results


async def drive_open(
    url: str,
    key: str,
    clients: int,
    seconds: float,
    write_share: float,
    queries: list[str],
    notes: list[str],
    seed: int,
    rate: float,
) -> Results:
    """Open loop: requests arrive at `rate` per second in all (Poisson arrivals, spread over
    `clients` clients), whether or not earlier ones have been answered. A request's latency
    counts from when it was due, so time spent queued behind a slow server is counted too."""
    import httpx

    results = Results()
    # A client may have several requests in flight when the server falls behind.
    limits = httpx.Limits(max_connections=clients * 4, max_keepalive_connections=clients * 4)
    headers = {"Authorization": f"Bearer {key}"}
    query_iter = iter(queries)
    note_iter = iter(notes)
    started = time.perf_counter()
    deadline = started + seconds

    pending: list[asyncio.Task[None]] = []

    async def client(n: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(seed * 1000 + n)
        due = started + rng.expovariate(rate / clients)
        while due < deadline:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if rng.random() < write_share:
                op, path = "write", "/v1/memories"
                body = {"content": next(note_iter), "tags": [WRITE_TAG], "session_id": f"tp-{n}"}
            else:
                op, path = "search", "/v1/search"
                body = {"query": next(query_iter), "k": 10}
            pending.append(asyncio.create_task(post(http, results, op, path, body, due), name=op))
            due += rng.expovariate(rate / clients)

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as http:
        await asyncio.gather(*(client(n, http) for n in range(clients)))
        # Requests still unanswered this long after the window count as never answered (an
        # infinite latency in the percentiles) rather than being waited for: past the server's
        # capacity the backlog only grows, and draining it would measure the backlog, not the load.
        _, late = await asyncio.wait(pending, timeout=max(0.1, deadline + OPEN_LOOP_GRACE_S - time.perf_counter()))
        for task in late:
            task.cancel()
            results.unanswered[task.get_name()] += 1
    return results


def start_serve(data_dir: Path, processes: int, port: int, code: Path = REPO) -> subprocess.Popen[bytes]:
    env = os.environ.copy()
    env.pop("DATABASE_URL", None)
    env["PYTHONPATH"] = str(code)
    env["EASYMEMORY_DATA_DIR"] = str(data_dir)
    # The limiter runs on every request, with a limit no client of this bench reaches.
    env["EASYMEMORY_RATE_LIMIT_PER_MIN"] = "10000000"
    env["EASYMEMORY_RATE_LIMIT_BURST"] = "1000000"
    log = (data_dir / f"throughput-serve-{processes}.log").open("wb")
    command = [sys.executable, "-m", "config.cli", "serve", "--port", str(port), "--workers", str(processes)]
    return subprocess.Popen(command, cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603


def stop_serve(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_ready(url: str, key: str, process: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            raise SystemExit("easymemory serve exited during start-up; see its log in the data directory")
        try:
            ready = httpx.get(f"{url}/readyz", timeout=5).status_code == 200
            if ready:
                # The model is loaded in the background: ready once a search answers.
                probe = httpx.post(
                    f"{url}/v1/search",
                    json={"query": "warm-up"},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=60,
                )
                if probe.status_code == 200:
                    return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("easymemory serve did not become ready")
        time.sleep(1)


def percentile(values: list[float], p: float) -> float:
    return data.percentile(values, p) if values else float("nan")


def run_leg(args: argparse.Namespace, key: str, processes: int, queries: list[str]) -> dict[str, Any]:
    notes = write_texts(random.Random(args.seed + processes), len(queries), f"p{processes}")
    port = data.free_port()
    url = f"http://127.0.0.1:{port}"
    serve = start_serve(args.data_dir, processes, port, args.code)
    try:
        wait_ready(url, key, serve)
        warm = max(1, int(len(queries) * args.warmup / (args.warmup + args.seconds)))
        asyncio.run(drive(url, key, args.clients, args.warmup, args.write_share, queries[:warm], notes, args.seed))
        snapshot = cpu_snapshot(serve.pid, args.data_dir)
        client_cpu = time.process_time()
        started = time.perf_counter()
        measured = (args.clients, args.seconds, args.write_share, queries[warm:], notes[warm:], args.seed + 1)
        if args.rate:
            results = asyncio.run(drive_open(url, key, *measured, args.rate))
        else:
            results = asyncio.run(drive(url, key, *measured))
        wall = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
        spent = cpu_by_kind(snapshot, cpu_snapshot(serve.pid, args.data_dir))
        load = os.getloadavg()
    finally:
        stop_serve(serve)
    total = sum(len(v) for v in results.latencies.values())
    leg: dict[str, Any] = {"processes": processes, "clients": args.clients, "seconds": round(wall, 1), "load": load}
    leg["code"] = str(args.code)
    leg["mode"] = f"open loop, {args.rate:g} requests/s offered" if args.rate else "closed loop"
    for op, answered in results.latencies.items():
        values = answered + [math.inf] * results.unanswered[op]  # never answered: slower than any answer
        leg[op] = {
            "count": len(answered),
            "per_s": round(len(answered) / wall, 1),
            "p50_ms": round(percentile(values, 50), 1),
            "p95_ms": round(percentile(values, 95), 1),
            "p99_ms": round(percentile(values, 99), 1),
            "errors": results.errors[op],
            "unanswered": results.unanswered[op],
        }
    leg["requests_per_s"] = round(total / wall, 1)
    leg["searches_fewer_than_k"] = results.short
    leg["cpu_s"] = {kind: round(seconds, 1) for kind, seconds in sorted(spent.items())} | {
        "client": round(client_cpu, 1)
    }
    leg["cpu_ms_per_request"] = {
        kind: round(seconds * 1000 / max(total, 1), 1) for kind, seconds in leg["cpu_s"].items()
    }
    return leg


def report(leg: dict[str, Any]) -> None:
    print(
        f"\n{leg['code']}: {leg['processes']} web process{'es' if leg['processes'] > 1 else ''},"
        f" {leg['clients']} clients, {leg['mode']}, {leg['seconds']} s: {leg['requests_per_s']} requests/s",
        flush=True,
    )
    for op in ("search", "write"):
        row = leg[op]
        print(
            f"  {op:<6} {row['per_s']:>6.1f}/s  p50 {row['p50_ms']:>7.1f} ms  p95 {row['p95_ms']:>7.1f} ms"
            f"  p99 {row['p99_ms']:>7.1f} ms  (n={row['count']}, errors {row['errors']},"
            f" unanswered {OPEN_LOOP_GRACE_S:g} s after the window {row['unanswered']})",
            flush=True,
        )
    cpu = ", ".join(
        f"{kind} {s:.1f} s ({leg['cpu_ms_per_request'][kind]:.1f} ms/request)" for kind, s in leg["cpu_s"].items()
    )
    print(f"  CPU: {cpu}", flush=True)
    print(f"  searches with fewer than k hits: {leg['searches_fewer_than_k']}", flush=True)
    search = leg["search"]
    verdict = "holds" if search["p95_ms"] <= TARGET_P95_MS and search["per_s"] >= TARGET_SEARCHES else "does not hold"
    print(
        f"  target ({TARGET_SEARCHES} searches/s with search p95 <= {TARGET_P95_MS} ms): {verdict}"
        f" ({search['per_s']} searches/s, p95 {search['p95_ms']} ms)",
        flush=True,
    )
    print(f"  load average {' / '.join(f'{x:.2f}' for x in leg['load'])} on {os.cpu_count()} cores", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/easymemory-bench"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="web process counts to measure")
    parser.add_argument("--write-share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0, help="row counts × this, on a fresh data directory")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="open loop: this many requests/s in all, Poisson arrivals over the clients (default: closed loop)",
    )
    parser.add_argument("--code", type=Path, default=REPO, help="the code tree the server runs (default: this one)")
    parser.add_argument("--json", type=Path, dest="json_out")
    args = parser.parse_args()
    args.code = args.code.resolve()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.data_dir.mkdir(parents=True, exist_ok=True)
    key = prepare(args.data_dir, args.seed, args.scale)
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    rng = random.Random(args.seed + 2)
    # Enough distinct queries and notes for a few hundred requests per second.
    budget = int((args.seconds + args.warmup) * 400) + 1000
    queries = search_texts(rng, budget)
    legs = []
    for processes in args.processes:
        leg = run_leg(args, key, processes, queries)
        report(leg)
        legs.append(leg)
    if args.json_out:
        args.json_out.write_text(json.dumps(legs, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

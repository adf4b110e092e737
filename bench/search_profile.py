"""Where one search's time and CPU go, measured inside the process that serves it.

    python bench/search_profile.py [--data-dir /tmp/easymemory-bench] [--queries 200] [--cprofile 25]

Uses the data directory of bench/search_latency.py (loads it if needed) and sends distinct
`POST /v1/search` requests (k=10, hybrid) through Django's whole request path in this process
(middleware, authentication, rate limit, the view, search(), audit, rendering), one at a time,
for the 100,000-row tenant and a 10,000-row one. Each part is timed by wrapping its function:
wall time, and CPU time of the thread that ran it (the query is embedded on its own thread).
PostgreSQL's CPU is read from its processes before and after. Prints the median per part.
`--cprofile N` also prints the functions that took the most time over the first N requests.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import os
import pstats
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import search_latency as data  # noqa: E402

# Per request: part -> [wall ms, CPU ms].
_current: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])


def timed(part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            slot = _current[part]
            slot[0] += (time.perf_counter() - wall) * 1000
            slot[1] += (time.thread_time() - cpu) * 1000

    return wrapper


def instrument() -> None:
    """Wrap the parts of a search request where they are looked up at call time."""
    from rest_framework.renderers import JSONRenderer

    import accounts.authentication as authentication
    import accounts.throttles as throttles
    import audit.services as audit_services
    import memory.api as api
    import memory.search as search
    from memory import embeddings
    from memory.serializers import HitSerializer

    authentication.principal_for_api_key = timed("authentication", authentication.principal_for_api_key)
    throttles.rate_limit_check = timed("rate limit", throttles.rate_limit_check)
    audit_services.audit_record = timed("audit", audit_services.audit_record)
    embeddings.embed_query = timed("query embedding (own thread)", embeddings.embed_query)
    for name in list(search.CANDIDATE_LISTS):
        search.CANDIDATE_LISTS[name] = timed(f"list: {name}", search.CANDIDATE_LISTS[name])
    search.session_rows = timed("session context", search.session_rows)
    search.search = timed("search() in all", search.search)
    api.memory_search_for = timed("memory_search_for()", api.memory_search_for)
    original_of = HitSerializer.of.__func__  # type: ignore[attr-defined]
    HitSerializer.of = classmethod(timed("serialise hits", original_of))  # type: ignore[method-assign]
    JSONRenderer.render = timed("render JSON", JSONRenderer.render)  # type: ignore[method-assign]


def postgres_cpu(data_dir: Path) -> float:
    import psutil

    pidfile = data_dir / "pg" / "postmaster.pid"
    postmaster = psutil.Process(int(pidfile.read_text().split()[0]))
    total = 0.0
    for process in [postmaster, *postmaster.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


_statements: list[tuple[str, float]] = []


def count_statements(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        _statements.append((" ".join(sql.split())[:70], (time.perf_counter() - started) * 1000))


def run(label: str, key: str, texts: list[str], data_dir: Path, cprofile: int, sql: bool) -> None:
    from django.db import connection
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    for text in texts[:10]:  # warm-up: connections, plans, the model
        client.post("/v1/search", {"query": text + " warm", "k": 10}, content_type="application/json")
    rows: dict[str, list[list[float]]] = defaultdict(list)
    profiler = cProfile.Profile() if cprofile else None
    pg_before = postgres_cpu(data_dir)
    statements_per_request: list[int] = []
    by_statement: dict[str, list[float]] = defaultdict(list)
    for n, text in enumerate(texts[10:]):
        _current.clear()
        _statements.clear()
        wall, cpu = time.perf_counter(), time.thread_time()
        if profiler is not None and n < cprofile:
            profiler.enable()
        with connection.execute_wrapper(count_statements):
            response = client.post("/v1/search", {"query": text, "k": 10}, content_type="application/json")
        if profiler is not None and n < cprofile:
            profiler.disable()
        statements_per_request.append(len(_statements))
        for statement, ms in _statements:
            by_statement[statement].append(ms)
        assert response.status_code == 200, response.content
        rows["request in all (this thread)"].append(
            [(time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000]
        )
        for part, value in _current.items():
            rows[part].append(list(value))
    count = len(texts) - 10
    pg_ms = (postgres_cpu(data_dir) - pg_before) * 1000 / count
    print(f"\n{label}: {count} requests, medians (wall / CPU of the thread that ran it)")
    for part, values in sorted(rows.items(), key=lambda item: -statistics.median(v[0] for v in item[1])):
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        print(f"  {part:<32} {wall:>7.2f} ms  / {cpu:>7.2f} ms CPU")
    print(f"  PostgreSQL CPU per request (mean)  {pg_ms:.2f} ms")
    print(f"  SQL statements per request: median {statistics.median(statements_per_request)}")
    if sql:
        for statement, values in sorted(by_statement.items(), key=lambda item: -sum(item[1])):
            print(f"    {len(values) / count:5.2f}/request  {statistics.median(values):6.2f} ms  {statement}")
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/easymemory-bench"))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--cprofile", type=int, default=0, help="cProfile the first N requests of each tenant")
    parser.add_argument("--sql", action="store_true", help="list the SQL statements of a request, by total time")
    args = parser.parse_args()
    os.environ.setdefault("EASYMEMORY_RATE_LIMIT_PER_MIN", "10000000")  # the limiter runs, never refuses
    os.environ.setdefault("EASYMEMORY_RATE_LIMIT_BURST", "1000000")
    data.setup_django(args.data_dir)
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    keys = data.load(args.seed, 1.0)
    instrument()
    texts = data.questions(random.Random(args.seed), 2 * args.queries + 40)
    try:
        run(
            "hybrid, 100k-row tenant",
            keys["bench-big"],
            texts[: args.queries + 10],
            args.data_dir,
            args.cprofile,
            args.sql,
        )
        run(
            "hybrid, 10k-row tenant",
            keys["bench-t1"],
            texts[args.queries + 10 :],
            args.data_dir,
            args.cprofile,
            args.sql,
        )
        print(f"load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    finally:
        data.stop_database(args.data_dir)


if __name__ == "__main__":
    main()

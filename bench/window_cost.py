"""What window vectors cost: embedding time at write, and search time, side by side in one run.

    .venv/bin/python bench/window_cost.py --locomo locomo-dev.json [--data-dir DIR] [--rounds 3] \
        [--queries 100] [--windows 0,2] [--max-turns N]
    .venv/bin/python bench/window_cost.py --scan-rows 10000 [--data-dir DIR]

Embedding: the turns of the file are stored as session messages (as `easymemory eval locomo` stores
them) in a fresh tenant per round and variant, then embedded through `memory_embed_batch` (the
same steps as the worker: one fetch query, the model, one store statement) with
EASYMEMORY_SEARCH_WINDOW_TURNS = each of --windows (0: no window vectors), in turn and in the
reverse order every other round, so a change in the machine's load falls on all of them. Prints
turns/s per variant (median of the rounds), their ratio and how many texts went through the model.

Search: the file's questions through `search()` (k = 10) on the last round's tenant of the widest
window, with the window list's weight 0 and with its default, interleaved query by query; prints
p50/p95 and their ratio.
Prints the load average before and after. The tenants are removed afterwards.

`--scan-rows N` instead times the two lists alone on a tenant of N memories with random unit
vectors (both columns written directly, no model): the vector list and the window list called
one after the other, 30 candidates, 15 rounds, median of the last 12.

Without --data-dir it makes an installation in a temporary directory (left behind: remove it
afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locomo", type=Path)
    parser.add_argument("--scan-rows", type=int, default=0, help="time the two lists on N random memories")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--windows", default="0,2", help="window sizes to compare, in turns (0: none)")
    parser.add_argument("--max-turns", type=int, default=0, help="only the first N turns of each conversation")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="easymemory-window-"))

    import search_latency

    search_latency.setup_django(data_dir)
    from django.conf import settings
    from django.core.management import call_command
    from django.test.utils import override_settings

    from accounts.principal import Principal
    from accounts.services import tenant_create
    from memory.evaluation import load_locomo
    from memory.search import search
    from memory.services import MemoryInput, memory_create_many, memory_embed_batch, memory_embed_fetch

    call_command("migrate", verbosity=0)
    print("load average before:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if args.scan_rows:
        scan_timing(args.scan_rows)
        print("load average after:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
        return
    if args.locomo is None:
        parser.error("--locomo is required (or --scan-rows)")
    conversations = load_locomo(args.locomo)
    sizes = [int(size) for size in args.windows.split(",")]
    variants = {("no window vectors" if size == 0 else f"window of {size} turns"): size for size in sizes}
    widest = max(sizes)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    model_texts: dict[str, int] = {}
    tenants = []
    last = None
    for round_number in range(args.rounds):
        order = list(variants.items()) if round_number % 2 == 0 else list(reversed(variants.items()))
        for name, turns in order:
            tenant = tenant_create(name="bench window", slug=f"eval-bench-window-{uuid.uuid4().hex[:8]}")
            tenants.append(tenant)
            principal = Principal.system(tenant)
            ids: list[str] = []
            for conversation in conversations:
                items = [
                    MemoryInput(
                        content=turn.text,
                        kind="message",
                        session_id=f"{conversation.sample_id}:{turn.session}",
                        occurred_at=turn.occurred_at,
                    )
                    for turn in (conversation.turns[: args.max_turns] if args.max_turns else conversation.turns)
                ]
                for start in range(0, len(items), 200):
                    results = memory_create_many(principal=principal, items=items[start : start + 200])
                    ids += [str(r.memory.id) for r in results if r.memory is not None]
            with override_settings(EASYMEMORY_SEARCH_WINDOW_TURNS=turns):
                todo = memory_embed_fetch(memory_ids=ids).todo
                model_texts[name] = len(todo) + sum(1 for item in todo if item.window)
                started = time.perf_counter()
                for start in range(0, len(ids), 256):
                    memory_embed_batch(memory_ids=ids[start : start + 256])
                rates[name].append(len(ids) / (time.perf_counter() - started))
            if turns == widest:
                last = principal
    names = list(variants)
    print(f"\nembedding {len(ids)} turns, {args.rounds} rounds")
    first = statistics.median(rates[names[0]])
    for name in names:
        rate = statistics.median(rates[name])
        print(
            f"  {name:<24} {rate:7.1f} turns/s  ({model_texts[name]} texts to the model)"
            f"  ratio to {names[0]}: {rate / first:.2f}x"
        )

    assert last is not None
    questions = [q.question for c in conversations for q in c.questions][: args.queries]
    weights = settings.EASYMEMORY_SEARCH_WEIGHTS["window"]
    timings: dict[str, list[float]] = {"window list off": [], f"window list weight {weights:g}": []}
    for query in questions:
        for name, weight in zip(timings, (0.0, weights), strict=True):
            started = time.perf_counter()
            search(last, query, k=10, weights={"window": weight})
            timings[name].append((time.perf_counter() - started) * 1000)
    print(f"\nsearch() k=10, {len(questions)} questions, {len(ids)} memories")
    medians = []
    for name, values in timings.items():
        values.sort()
        p95 = values[int(0.95 * (len(values) - 1))]
        medians.append(statistics.median(values))
        print(f"  {name:<24} p50 {statistics.median(values):6.1f} ms   p95 {p95:6.1f} ms")
    print(f"  ratio of p50s            {medians[1] / medians[0]:.2f}x")
    for tenant in tenants:
        tenant.delete()
    print("load average after:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(json.dumps({"rates": rates, "search_ms": {k: statistics.median(v) for k, v in timings.items()}}))


def scan_timing(rows: int) -> None:
    import random

    import numpy as np
    from django.db import connection

    from accounts.principal import Principal
    from accounts.scoping import scoped
    from accounts.services import tenant_create
    from memory import embeddings
    from memory.models import Memory
    from memory.search import _vector_candidates
    from memory.selectors import MemoryFilters
    from memory.services import MemoryInput, memory_create_many
    from memory.window import window_candidates

    tenant = tenant_create(name="bench window scan", slug=f"eval-bench-scan-{uuid.uuid4().hex[:8]}")
    principal = Principal.system(tenant)
    rng = random.Random(1)
    words = "garden boat lake camping pottery painting music job school friend family dog book run swim".split()
    items = [
        MemoryInput(content=" ".join(rng.choice(words) for _ in range(12)) + f" {i}", session_id=f"s{i // 20}")
        for i in range(rows)
    ]
    for start in range(0, rows, 500):
        memory_create_many(principal=principal, items=items[start : start + 500])
    ids = list(scoped(Memory, tenant).values_list("id", flat=True))
    model = embeddings.model_name()
    generator = np.random.default_rng(1)
    own, window = (generator.normal(size=(len(ids), 384)).astype(np.float32) for _ in range(2))
    own /= np.linalg.norm(own, axis=1, keepdims=True)
    window /= np.linalg.norm(window, axis=1, keepdims=True)

    def literal(vector: Any) -> str:
        return "[" + ",".join(f"{x:.6f}" for x in vector) + "]"

    insert = (
        "INSERT INTO memory_memoryembedding (tenant_id, memory_id, model, dims, embedding, window_embedding,"
        " created_at) VALUES (%s, %s, %s, 384, %s::vector, %s::vector, now())"
    )
    with connection.cursor() as cursor:
        for start in range(0, len(ids), 1000):
            cursor.executemany(  # scoped: the bench's own tenant
                insert,
                [
                    (str(tenant.id), str(mid), model, literal(own[i]), literal(window[i]))
                    for i, mid in enumerate(ids[start : start + 1000], start=start)
                ],
            )
        cursor.execute("ANALYZE memory_memory")
        cursor.execute("ANALYZE memory_memoryembedding")
    base = scoped(Memory, tenant)
    query = "what did she paint at the lake"
    embeddings.embed_query(query, model)
    times: dict[str, list[float]] = {"vector list": [], "window list": []}
    for _ in range(15):
        for name, fn in (("vector list", _vector_candidates), ("window list", window_candidates)):
            started = time.perf_counter()
            fn(principal, base, query, 30, MemoryFilters())
            times[name].append((time.perf_counter() - started) * 1000)
    print(f"\n{rows} memories, 30 candidates")
    for name, values in times.items():
        print(f"  {name:<12} p50 {statistics.median(values[3:]):7.1f} ms")
    tenant.delete()


if __name__ == "__main__":
    main()

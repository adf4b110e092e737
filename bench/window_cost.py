"""What window vectors cost: embedding time at write, and search time, side by side in one run.

    .venv/bin/python bench/window_cost.py --locomo locomo-dev.json [--data-dir DIR] [--rounds 3] \
        [--queries 100] [--windows 0,2] [--max-turns N]

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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locomo", type=Path, required=True)
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


if __name__ == "__main__":
    main()

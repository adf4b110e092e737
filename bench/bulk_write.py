"""Bulk write benchmark: store N memories through `memory_create_many` in batches, report rows/s.

    EASYMEMORY_DATA_DIR=/tmp/easymemory-bench EASYMEMORY_REDIS_URL=redis://127.0.0.1:6379/14 \
        python bench/bulk_write.py -n 5000 --batches 1,100,500

Runs against its own embedded PostgreSQL (the data directory above), in this process, through
the service every door uses (REST `POST /v1/memories` with a list, importers, `easymemory eval`).
For each batch size a fresh tenant receives N new memories (about 300 characters each, spread
over three end users and a few sessions, one in ten with a secret to redact), then the same N
again, which are all duplicates (what a re-run import sends). Batch size 1 stores at most 1,000
memories (its rate is steady well before that). The enrichment tasks the writes enqueue go to a
private queue that is purged at the end; no worker runs.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("EASYMEMORY_DATA_DIR", "/tmp/easymemory-bench")
os.environ["EASYMEMORY_QUEUE"] = f"bench-{uuid.uuid4().hex[:8]}"

WORDS = (
    "memory graph vector search postgres index note meeting project budget design review release planning "
    "customer feedback roadmap sprint backlog deploy server latency cache query embedding model token "
    "agent context window retrieval ranking fusion recall precision tenant backup restore export import "
    "vault heading chunk overlap frontmatter link tag author draft summary decision risk owner deadline"
).split()


def texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for number in range(count):
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(35, 50)))
        secret = f" api key sk-{uuid.UUID(int=rng.getrandbits(128)).hex}" if number % 10 == 0 else ""
        out.append(f"Item {number} ({seed}): {body}{secret}.")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=5000, help="memories per batch size")
    parser.add_argument("--batches", default="1,100,500", help="comma-separated batch sizes")
    args = parser.parse_args()

    import django

    from config.startup import data_dir_prepare

    data_dir_prepare()
    django.setup()
    from django.core.management import call_command

    from accounts.models import Tenant
    from accounts.principal import Principal
    from config.celery import app
    from memory.models import Memory, MemoryHistory
    from memory.services import MemoryInput, memory_create_many

    call_command("migrate", interactive=False, verbosity=0)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    for size in (int(part) for part in args.batches.split(",")):
        count = min(args.n, 1000) if size == 1 else args.n
        tenant = Tenant.objects.create(slug=f"bench-{uuid.uuid4().hex[:6]}", name="bench")
        principal = Principal.system(tenant)
        items = [
            MemoryInput(
                content=text,
                tags=["bench", f"t{number % 7}"],
                metadata={"source": "bench", "n": number},
                user_ref=f"user-{number % 3}",
                session_id=f"s{number // 50}",
            )
            for number, text in enumerate(texts(count, seed=size))
        ]
        rates = []
        for label in ("new", "duplicates"):
            started = time.perf_counter()
            for start in range(0, count, size):
                results = memory_create_many(principal=principal, items=items[start : start + size])
                assert all(r.created == (label == "new") for r in results), label
            took = time.perf_counter() - started
            rates.append(f"{label} {count / took:7.0f} rows/s ({took:5.1f} s)")
        stored = Memory.objects.filter(tenant=tenant).count()
        history = MemoryHistory.objects.filter(tenant=tenant).count()
        assert stored == history == count, (stored, history, count)
        print(f"batch {size:>4}: {count} memories   " + "   ".join(rates), flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(os.environ["EASYMEMORY_QUEUE"])


if __name__ == "__main__":
    main()

"""Ingest benchmark: index a generated markdown vault to fully searchable, then re-index it unchanged.

    EASYMEMORY_DATA_DIR=/tmp/easymemory-bench EASYMEMORY_REDIS_URL=redis://127.0.0.1:6379/14 \
        python bench/ingest_vault.py --files 5000

Runs against its own embedded PostgreSQL (the data directory above). Indexing runs
the same job code as `easymemory index`; embedding runs in this process through
the same service the worker calls (memory_embed_batch, batches of 64), so the
figure is index + embed on one machine without a concurrent worker. The
enrichment tasks the job enqueues go to a private queue that is purged at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
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


def paragraph(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def generate(root: Path, files: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for number in range(files):
        folder = root / f"area-{number % 50:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        sections = []
        for heading in range(4):
            body = paragraph(rng, rng.randint(40, 70))  # ~300-450 characters: one chunk per section
            sections.append(f"## Section {heading + 1} of note {number}\n\n{body}")
        links = " ".join(f"[[note-{rng.randrange(files)}]]" for _ in range(2))
        text = (
            f"---\ntitle: Note {number}\ntags: [bench, area{number % 50}]\n---\n"
            f"# Note {number}\n\nIntro {paragraph(rng, 30)} #topic{number % 20} {links}\n\n" + "\n\n".join(sections)
        )
        (folder / f"note-{number}.md").write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--vault", default="", help="reuse / create the vault here (default: a temporary folder)")
    parser.add_argument("--skip-embed", action="store_true", help="measure storing and re-indexing only")
    args = parser.parse_args()

    import django

    from config.startup import data_dir_prepare

    data_dir_prepare()  # the data directory and secret key, as every entry point does
    django.setup()
    from django.core.management import call_command

    from accounts.models import Tenant
    from accounts.principal import Principal
    from config.celery import app
    from ingest.models import JobKind
    from ingest.services import job_create, job_run
    from memory.models import EnrichmentState, Memory
    from memory.search import search
    from memory.services import memory_embed_batch

    call_command("migrate", interactive=False, verbosity=0)
    slug = f"bench-{uuid.uuid4().hex[:6]}"
    tenant = Tenant.objects.create(slug=slug, name="bench")
    principal = Principal.system(tenant)
    vault = Path(args.vault) if args.vault else Path(tempfile.mkdtemp(prefix="vault-"))
    generate(vault, args.files)
    print(f"vault: {args.files} files in {vault}", flush=True)

    # As `easymemory index` runs it: the local command line may index any directory it can read.
    params = {"path": str(vault), "pattern": "*.md", "recursive": True, "trusted": True}
    started = time.perf_counter()
    job = job_run(str(job_create(principal=principal, kind=JobKind.VAULT, params=params, enqueue=False).id))
    indexed = time.perf_counter()
    assert job is not None and job.status == "done", job and job.error
    while not args.skip_embed:
        ids = list(
            Memory.objects.filter(tenant=tenant, enrichment_state=EnrichmentState.PENDING).values_list("id", flat=True)[
                :1024
            ]
        )
        if not ids:
            break
        for start in range(0, len(ids), 64):
            memory_embed_batch(memory_ids=[str(i) for i in ids[start : start + 64]])
    searchable = time.perf_counter()
    chunks = Memory.objects.filter(tenant=tenant).count()
    hits = search(principal, "budget review decision", k=5)

    again_started = time.perf_counter()
    again = job_run(str(job_create(principal=principal, kind=JobKind.VAULT, params=params, enqueue=False).id))
    again_took = time.perf_counter() - again_started
    assert again is not None

    total = searchable - started
    print(f"files: {job.done} indexed, chunks (memories): {chunks}, search hits: {len(hits)}")
    print(f"index (parse + store): {indexed - started:.1f} s; embed: {searchable - indexed:.1f} s; total {total:.1f} s")
    print(f"to fully searchable: {args.files / total:.1f} files/s, {chunks / total:.1f} chunks/s")
    print(f"store only: {args.files / (indexed - started):.1f} files/s, {chunks / (indexed - started):.1f} chunks/s")
    print(
        f"second, unchanged run: {again_took:.2f} s ({100 * again_took / total:.2f} % of the first), "
        f"skipped {again.skipped}, created {again.memories_created}"
    )
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(os.environ["EASYMEMORY_QUEUE"])


if __name__ == "__main__":
    main()

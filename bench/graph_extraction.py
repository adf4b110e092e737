"""Throughput of the offline extractor, and of the full graph step on the database.

Generates a deterministic corpus of short English and Chinese memories in the style of
notes and chat messages (names, places, organisations, tags, links, time hints), then:

1. extractor only: memories/s of OfflineExtractor.extract (the target is >= 300/s);
2. with --db: memories/s of graph_extract_memories (extraction + entity resolution + writes)
   on the configured database, in a throw-away tenant that is deleted afterwards.

Run from the repository root:

    python bench/graph_extraction.py --n 5000
    DJANGO_SETTINGS_MODULE=config.settings python bench/graph_extraction.py --n 500 --db
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

FIRST = ["Marco", "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory"]
LAST = ["Rossi", "Smith", "Jones", "Brown", "Bianchi", "Garcia", "Müller", "Dubois", "Novak", "Kim"]
ORGS = ["Acme Robotics", "Initech", "Globex Corporation", "Umbrella Labs", "Stark Industries", "Wayne Enterprises"]
PLACES = ["Milan", "Berlin", "Turin", "Paris", "Lisbon", "New York", "San Francisco", "Tokyo"]
TOOLS = ["vim", "emacs", "Docker", "PostgreSQL", "Kubernetes", "Python", "Rust"]
ZH_NAMES = ["张伟", "王小明", "李雷", "韩梅梅", "刘洋", "陈静"]
ZH_ORGS = ["阿里巴巴", "腾讯", "百度", "华为", "字节跳动"]
ZH_PLACES = ["北京", "上海", "杭州", "深圳", "成都"]
TEMPLATES = [
    "{p} works at {o} since {y}. Talked about the roadmap with {q} in [[Weekly Sync]].",
    "{p} moved to {c} last spring; ping @{h} for the new address. #personal",
    "Meeting notes: {p} and {q} discussed the migration plan. {p} uses {t}. Doc: https://wiki.example.com/{h}",
    "{p} is the CTO of {o}. Contact: {h}@example.com #contacts",
    "Reminder: {q} lives in {c} until {y}. Send the invoice to {o} before Friday.",
    "Had coffee with {p}; they said {q} reports to {p2} now and likes green tea.",
    "{zp}在{zo}工作，从{y}年起住在{zc}。",
    "{zp}搬到了{zc}，听说{zq}是{zo}的工程师。#同事",
    "今天和{zp}开会，{zp}负责搜索项目，使用{t}。",
]


def corpus(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        person = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        texts.append(
            rng.choice(TEMPLATES).format(
                p=person, q=f"{rng.choice(FIRST)} {rng.choice(LAST)}", p2=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                o=rng.choice(ORGS), c=rng.choice(PLACES), t=rng.choice(TOOLS), y=rng.randint(2015, 2025),
                h=f"{person.split()[0].lower()}{i % 97}", zp=rng.choice(ZH_NAMES), zq=rng.choice(ZH_NAMES),
                zo=rng.choice(ZH_ORGS), zc=rng.choice(ZH_PLACES),
            )
        )  # fmt: skip
    return texts


def bench_extractor(texts: list[str]) -> None:
    from graph.providers.offline import OfflineExtractor

    extractor = OfflineExtractor()
    extractor.extract(texts[0])
    started = time.perf_counter()
    entities = relations = 0
    for text in texts:
        result = extractor.extract(text)
        entities += len(result.entities)
        relations += len(result.relations)
    elapsed = time.perf_counter() - started
    print(f"offline extractor: {len(texts)} memories in {elapsed:.2f}s = {len(texts) / elapsed:,.0f} memories/s")
    print(f"  {entities / len(texts):.1f} entities and {relations / len(texts):.1f} relations per memory")


def bench_database(texts: list[str]) -> None:
    import django

    from config.startup import data_dir_prepare

    data_dir_prepare()  # the data directory and secret key, as every entry point does
    django.setup()
    from accounts.models import Tenant
    from accounts.principal import Principal
    from graph.services import graph_extract_memories
    from memory.services import MemoryInput, memory_create_many

    tenant = Tenant.objects.create(name="graph bench", slug=f"graph-bench-{os.getpid()}")
    try:
        principal = Principal.system(tenant)
        results = memory_create_many(principal=principal, items=[MemoryInput(content=t) for t in texts])
        ids = [str(r.memory.pk) for r in results]
        graph_extract_memories(ids[:1])  # loads the embedding model outside the timing
        started = time.perf_counter()
        for start in range(1, len(ids), 64):
            graph_extract_memories(ids[start : start + 64])
        elapsed = time.perf_counter() - started
        done = len(ids) - 1
        print(f"graph step on the database: {done} memories in {elapsed:.2f}s = {done / elapsed:,.1f} memories/s")
    finally:
        tenant.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--db", action="store_true", help="also time the full step against the database")
    args = parser.parse_args()
    texts = corpus(args.n)
    bench_extractor(texts)
    if args.db:
        bench_database(texts)


if __name__ == "__main__":
    main()

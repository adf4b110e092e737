"""Size and speed of an export that carries the knowledge graph, and of importing it into another tenant.

Stores a deterministic corpus (bench/graph_extraction.py's notes and chat lines) in a throw-away
tenant, runs the offline graph step on it, then, in the same run:

1. exports it (format 2) and splits the bytes by record type; prints what the same memories would
   take in the format-1 layout (history written for every memory, no graph);
2. imports the export into a second tenant, and the same file with its graph records stripped
   into a third, side by side (memories/s), and the graph step's own time inside the first;
3. checks that the imported graph has the same number of entities, relations and mentions.

The tenants are deleted afterwards. Run from the repository root, after `easymemory migrate`:

    python bench/export_graph.py --n 2000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Exact name and alias resolution only: the bench measures the format, not the embedding model.
os.environ.setdefault("EASYMEMORY_GRAPH_SIMILARITY", "2")

from graph_extraction import corpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()

    import django

    from config.startup import data_dir_prepare

    data_dir_prepare()
    django.setup()
    from accounts.models import Tenant
    from accounts.principal import Principal
    from graph.models import Entity, Mention, Relation
    from graph.services import graph_extract_memories
    from ingest.portability import export_lines
    from ingest.services import job_create, job_run
    from memory.services import MemoryInput, memory_create_many

    suffix = os.getpid()
    source = Tenant.objects.create(name="export bench", slug=f"export-bench-{suffix}")
    copies = [Tenant.objects.create(name=f"import bench {n}", slug=f"import-bench-{n}-{suffix}") for n in (1, 2)]
    try:
        principal = Principal.system(source)
        texts = corpus(args.n)
        ids: list[str] = []
        for start in range(0, len(texts), 500):
            batch = [MemoryInput(content=t) for t in texts[start : start + 500]]
            ids += [str(r.memory.pk) for r in memory_create_many(principal=principal, items=batch) if r.memory]
        for start in range(0, len(ids), 64):
            graph_extract_memories(ids[start : start + 64])
        counts = [Model.objects.filter(tenant=source).count() for Model in (Entity, Relation, Mention)]
        print(f"{len(ids)} memories; graph: {counts[0]} entities, {counts[1]} relations, {counts[2]} mentions")

        started = time.perf_counter()
        lines = list(export_lines(source))
        export_s = time.perf_counter() - started
        by_type: dict[str, int] = {}
        graph_bytes = history_v1 = 0
        for line in lines:
            record = json.loads(line)
            size = len(line.encode())
            by_type[record["type"]] = by_type.get(record["type"], 0) + size
            if record["type"] == "memory":
                if "graph" in record:
                    graph_bytes += len(json.dumps(record["graph"], ensure_ascii=False).encode())
                if "history" not in record:  # format 1 wrote the creation entry every time
                    entry = {"event": "ADD", "version": 1, "old_content": None, "new_content": record["content"],
                             "old_metadata": None, "new_metadata": record["metadata"], "actor": "system",
                             "created_at": record["created_at"]}  # fmt: skip
                    history_v1 += len(json.dumps([entry], ensure_ascii=False).encode())
        total = sum(by_type.values())
        memory_only = by_type["memory"] - graph_bytes
        rate = len(ids) / export_s
        print(f"export: {len(lines)} lines, {total / 1e6:.2f} MB in {export_s:.2f} s ({rate:,.0f} memories/s)")
        for kind, size in sorted(by_type.items()):
            print(f"  {kind:<9} {size / 1e6:7.2f} MB")
        print(f"  of which memory.graph {graph_bytes / 1e6:.2f} MB")
        v1 = memory_only + history_v1 + by_type["header"]
        print(f"format-1 layout of the same memories (no graph, history always): {v1 / 1e6:.2f} MB;"
              f" format 2 with the graph: {total / 1e6:.2f} MB ({total / v1:.2f}x)")  # fmt: skip

        stripped = [line for line in lines if json.loads(line)["type"] not in ("entity", "relation")]
        stripped = [
            json.dumps({k: v for k, v in json.loads(line).items() if k != "graph"}, ensure_ascii=False) + "\n"
            for line in stripped
        ]
        # The graph step's own time, read inside the import (the rest is storing the memories).
        import ingest.runners as runners

        store_graph = runners.graph_import
        graph_seconds: list[float] = []

        def timed_graph_import(**kwargs: object) -> object:
            started = time.perf_counter()
            outcome = store_graph(**kwargs)  # type: ignore[arg-type]
            graph_seconds.append(time.perf_counter() - started)
            return outcome

        runners.graph_import = timed_graph_import  # type: ignore[assignment]
        timings = {}
        for tenant, name, body in ((copies[0], "with graph", lines), (copies[1], "memories only", stripped)):
            job = job_create(principal=Principal.system(tenant), kind="json", params={},
                             upload=("export.jsonl", "".join(body).encode()), enqueue=False)  # fmt: skip
            started = time.perf_counter()
            finished = job_run(str(job.id))
            timings[name] = time.perf_counter() - started
            assert finished is not None and finished.status == "done", finished and finished.error
            print(f"import {name:<13}: {finished.done} memories in {timings[name]:.2f} s"
                  f" ({finished.done / timings[name]:,.0f} memories/s)")  # fmt: skip
        rows = sum(counts)
        print(f"graph step inside the import: {graph_seconds[0]:.2f} s"
              f" ({graph_seconds[0] / timings['with graph']:.0%} of the import;"
              f" {rows / graph_seconds[0]:,.0f} entities+relations+mentions/s)")  # fmt: skip
        copied = [Model.objects.filter(tenant=copies[0]).count() for Model in (Entity, Relation, Mention)]
        print(f"imported graph: {copied[0]} entities, {copied[1]} relations, {copied[2]} mentions"
              f" ({'same' if copied == counts else 'DIFFERENT'} counts)")  # fmt: skip
    finally:
        for tenant in (source, *copies):
            tenant.delete()


if __name__ == "__main__":
    main()

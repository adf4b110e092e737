"""Streams against threads: the worker's model run as 1 stream of 2 intra-op threads or as 2
streams of 1 thread (one shared ONNX Runtime session), on long and on short texts.

    .venv/bin/python bench/embed_streams.py [--long 384] [--short 1024] [--rounds 5] [--configs 1x2,2x1]

A configuration `SxT` is S threads taking chunks of 32 texts (EASYMEMORY_EMBED_BATCH) from one
queue, as the pipeline's streams do, each calling `encode()` on the one session made with T
intra-op threads (`memory.embeddings`, the default backend). Long texts are chunks of the
generated vault (bench/ingest_vault.py: a heading path and 40-70 words); short texts are the
chat-like memories of bench/ingest.py (10-60 words). The configurations run in turn, round after
round (so a change in the machine's load falls on all of them); prints texts/s per configuration
and kind (median of the rounds, and every round), CPU ms per text, the ratio to the first
configuration, and the load average before and after. In-process, no database: the model alone.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHUNK = 32


def long_texts(count: int, seed: int = 3) -> list[str]:
    from bench.ingest_vault import paragraph

    rng = random.Random(seed)
    out = []
    for number in range(count):
        note = rng.randrange(5000)
        out.append(f"Note {note} > Section {number % 4 + 1} of note {note}\n\n{paragraph(rng, rng.randint(40, 70))}")
    return out


def run(model: Any, streams: int, texts: list[str]) -> tuple[float, float]:
    """Seconds and process CPU seconds to embed `texts` in chunks of CHUNK on `streams` threads."""
    chunks: queue.Queue[list[str]] = queue.Queue()
    for start in range(0, len(texts), CHUNK):
        chunks.put(texts[start : start + CHUNK])
    errors: list[BaseException] = []

    def stream() -> None:
        while True:
            try:
                chunk = chunks.get_nowait()
            except queue.Empty:
                return
            try:
                model.encode(chunk, batch_size=CHUNK)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=stream) for _ in range(streams)]
    started, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long", type=int, default=384, help="vault-like texts (300-450 characters)")
    parser.add_argument("--short", type=int, default=1024, help="chat-like memories (10-60 words)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--configs", default="1x2,2x1", help="STREAMSxTHREADS, comma-separated; the first is the base")
    args = parser.parse_args()
    configs = [tuple(int(x) for x in item.split("x")) for item in args.configs.split(",")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("EASYMEMORY_DATA_DIR", tempfile.mkdtemp(prefix="bench-streams-"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import django

    django.setup()
    from bench.ingest import texts_for
    from memory import embeddings

    name = embeddings.model_name()
    base, runtime = embeddings._resolve(name)
    models = {threads: embeddings._load_runtime(base, runtime, threads) for _, threads in configs}
    kinds = {"long": long_texts(args.long), "short": texts_for(args.short, "note", seed=7)}
    kinds = {kind: texts for kind, texts in kinds.items() if texts}
    some = next(iter(models.values()))
    for kind, texts in kinds.items():
        tokens = [len(e.ids) for e in some.tokenizer.encode_batch(texts)]
        print(f"{kind}: {len(texts)} texts, tokens median {statistics.median(tokens):.0f}, max {max(tokens)}")
    for streams, threads in configs:  # warm-up: each session's first runs of each shape
        for texts in kinds.values():
            run(models[threads], streams, texts[: CHUNK * 2])
    load_before = os.getloadavg()
    rates: dict[tuple[str, tuple[int, int]], list[float]] = {}
    cpu_ms: dict[tuple[str, tuple[int, int]], list[float]] = {}
    for _ in range(args.rounds):
        for kind, texts in kinds.items():
            for config in configs:
                seconds, cpu = run(models[config[1]], config[0], texts)
                rates.setdefault((kind, config), []).append(len(texts) / seconds)
                cpu_ms.setdefault((kind, config), []).append(cpu * 1000 / len(texts))
    load_after = os.getloadavg()
    print(f"{name} ({runtime}), chunks of {CHUNK}, {args.rounds} rounds, configurations in turn")
    print(f"{'texts':6} {'streams x threads':18} {'texts/s':>8} {'ratio':>6} {'CPU ms/text':>11}  rounds")
    for kind in kinds:
        first = statistics.median(rates[(kind, configs[0])])
        for config in configs:
            rate = statistics.median(rates[(kind, config)])
            rounds = " ".join(f"{x:.1f}" for x in rates[(kind, config)])
            print(
                f"{kind:6} {f'{config[0]} x {config[1]}':18} {rate:8.1f} {rate / first:5.2f}× "
                f"{statistics.median(cpu_ms[(kind, config)]):11.2f}  {rounds}"
            )
    print(
        f"load average before {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after {' '.join(f'{x:.2f}' for x in load_after)} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()

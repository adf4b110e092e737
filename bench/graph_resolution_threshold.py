"""Measure the entity-name similarity threshold for near-duplicate resolution.

Embeds labelled pairs of entity names (same entity written differently vs. different
entities with similar names) with the configured embedding model and reports, for each
threshold, precision and recall of "same entity" (with the service's digit guard applied). Run from the repository root:

    DJANGO_SETTINGS_MODULE=config.settings python bench/graph_resolution_threshold.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

from config.startup import data_dir_prepare

data_dir_prepare()  # the data directory and secret key, as every entry point does
django.setup()

from graph.services import same_digits  # noqa: E402
from memory import embeddings  # noqa: E402

SAME = [
    ("Marco Rossi", "Marco Rossi (Acme)"),
    ("Acme Robotics", "Acme Robotics Inc"),
    ("Acme Robotics", "Acme Robotics Ltd."),
    ("OpenAI", "OpenAI Inc."),
    ("New York City", "New York"),
    ("PostgreSQL", "Postgres"),
    ("Kubernetes", "Kubernetes cluster"),
    ("Project Apollo", "Apollo project"),
    ("Google", "Google LLC"),
    ("United States", "United States of America"),
    ("San Francisco", "San Francisco, CA"),
    ("Dr. Jane Smith", "Jane Smith"),
    ("the search engine", "search engine"),
    ("Visual Studio Code", "VS Code editor"),
    ("Microsoft Corporation", "Microsoft"),
    ("阿里巴巴集团", "阿里巴巴"),
    ("Q3 planning meeting", "Q3 planning"),
    ("Marco Rossi", "Mr Marco Rossi"),
    ("Acme", "ACME Corp"),
    ("Berlin, Germany", "Berlin"),
]
DIFFERENT = [
    ("Marco Rossi", "Maria Rossi"),
    ("Marco Rossi", "Marco Bianchi"),
    ("Acme Robotics", "Acme Foods"),
    ("Google", "Microsoft"),
    ("Berlin", "Munich"),
    ("PostgreSQL", "MySQL"),
    ("Project Apollo", "Project Gemini"),
    ("Jane Smith", "John Smith"),
    ("New York", "New Jersey"),
    ("OpenAI", "Anthropic"),
    ("Alice", "Alicia Keys"),
    ("vim", "emacs"),
    ("San Francisco", "San Diego"),
    ("Kubernetes", "Docker"),
    ("阿里巴巴", "腾讯"),
    ("Q3 planning", "Q4 planning"),
    ("Python", "Java"),
    ("Milan", "Turin"),
    ("Bob", "Rob"),
    ("Apple", "Apple pie"),
]


def main() -> None:
    name = embeddings.model_name()
    pairs = [(a, b, True) for a, b in SAME] + [(a, b, False) for a, b in DIFFERENT]
    texts = sorted({t for a, b, _ in pairs for t in (a, b)})
    vectors = dict(zip(texts, embeddings.embed_texts(texts, name), strict=True))
    scored = [(sum(x * y for x, y in zip(vectors[a], vectors[b], strict=True)), same, a, b) for a, b, same in pairs]
    print(f"model {name}: {len(SAME)} same-entity pairs, {len(DIFFERENT)} different-entity pairs")
    print("threshold precision recall")
    for threshold in [0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]:
        # The service never merges names whose digits differ ("Q3 planning" / "Q4 planning").
        predicted = [s for s in scored if s[0] >= threshold and same_digits(s[2], s[3])]
        tp = sum(1 for s in predicted if s[1])
        precision = tp / len(predicted) if predicted else 1.0
        print(f"{threshold:9.2f} {precision:9.2f} {tp / len(SAME):6.2f}")
    print("hardest different-entity pairs:")
    for score, _, a, b in sorted((s for s in scored if not s[1]), reverse=True)[:5]:
        print(f"  {score:.3f}  {a!r} / {b!r}")


if __name__ == "__main__":
    main()

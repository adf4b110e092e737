"""Search-only ablations on the tenants an `easymemory eval locomo FILE --keep-tenants` run left behind.

    EASYMEMORY_DATA_DIR=DIR .venv/bin/python bench/locomo_search_only.py FILE --run RUN \
        [--k 10] [--variant NAME:SETTING=VALUE,SETTING=VALUE ...]

`RUN` is the 8-character run id in the kept tenants' slugs (`eval-<run>-<sample_id>`). Every
question of categories 1-4 goes through `search()` once per variant, variants interleaved question
by question, with the named settings overridden (a variant without settings is the defaults); the
stored memories are the same for every row, so the rows differ by the ranking alone. Prints turn
and session recall@k overall and by category, and the median time of one `search()` call per
variant (after one untimed search per question, so that no variant pays for embedding the
query), with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_variant(raw: str) -> tuple[str, dict[str, Any]]:
    name, _, assignments = raw.partition(":")
    overrides: dict[str, Any] = {}
    for item in filter(None, assignments.split(",")):
        key, _, value = item.partition("=")
        overrides[key.strip()] = float(value) if any(c in value for c in ".e") else int(value)
    return name, overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--run", required=True, help="run id of the kept tenants")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--variant", action="append", default=[], help="NAME:SETTING=VALUE,... (repeatable)")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import override_settings

    from accounts.models import Tenant
    from accounts.principal import Principal
    from accounts.scoping import scoped
    from memory.evaluation import CATEGORY_NAMES, load_locomo, recall_at, session_of
    from memory.models import Memory
    from memory.search import search

    variants = [parse_variant(raw) for raw in args.variant] or [("defaults", {})]
    print("load average before:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    turn: dict[str, list[tuple[int, float]]] = {name: [] for name, _ in variants}
    session: dict[str, list[tuple[int, float]]] = {name: [] for name, _ in variants}
    took: dict[str, list[float]] = {name: [] for name, _ in variants}
    for conversation in load_locomo(args.file):
        tenant = Tenant.objects.get(slug=f"eval-{args.run}-{conversation.sample_id}")
        principal = Principal.system(tenant)
        holds: dict[Any, set[str]] = {}
        for mid, meta in scoped(Memory, tenant).values_list("id", "metadata"):
            holds.setdefault(mid, set()).add(str(meta.get("dia_id")))
        sessions = {t.dia_id: t.session for t in conversation.turns}
        for question in conversation.questions:
            evidence_sessions = [session_of(e, sessions) for e in question.evidence]
            search(principal, question.question, k=args.k)  # untimed: every variant then finds the query's
            # embedding in the cache, so the times compare the ranking alone
            for name, overrides in variants:
                weights = {**settings.EASYMEMORY_SEARCH_WEIGHTS}
                extra = {key: value for key, value in overrides.items() if not key.startswith("EASYMEMORY_WEIGHT_")}
                for key, value in overrides.items():
                    if key.startswith("EASYMEMORY_WEIGHT_"):
                        weights[key.removeprefix("EASYMEMORY_WEIGHT_").lower()] = float(value)
                with override_settings(EASYMEMORY_SEARCH_WEIGHTS=weights, **extra):
                    start = time.perf_counter()
                    hits = search(principal, question.question, k=args.k)
                    took[name].append(time.perf_counter() - start)
                ranked = [holds[hit.memory.id] for hit in hits]
                turn[name].append((question.category, recall_at(ranked, question.evidence, args.k)))
                as_sessions = [{session_of(d, sessions) for d in ids} for ids in ranked]
                session[name].append((question.category, recall_at(as_sessions, evidence_sessions, args.k)))
    print("load average after:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    categories = sorted({c for c, _ in next(iter(turn.values()))})
    header = f"{'variant':<34}{'turn':>8}{'session':>9}" + "".join(f"{CATEGORY_NAMES[c][:9]:>11}" for c in categories)
    print(f"\nR@{args.k}, {len(next(iter(turn.values())))} questions")
    print(header + f"{'p50 ms':>9}")
    for name, _ in variants:
        rows = turn[name]
        by_category = [statistics.fmean(v for c, v in rows if c == cat) for cat in categories]
        line = f"{name:<34}{statistics.fmean(v for _, v in rows):>8.3f}"
        line += f"{statistics.fmean(v for _, v in session[name]):>9.3f}"
        line += "".join(f"{value:>11.3f}" for value in by_category)
        print(line + f"{statistics.median(took[name]) * 1000:>9.1f}")


if __name__ == "__main__":
    main()

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.progress import ProgressBar
from memory.enrichment import reconcile_steps
from memory.services import memory_reconcile


class Command(BaseCommand):
    help = (
        "Re-queue memories whose derived data (embedding, graph extraction) is missing or failed, and"
        " rebuild missing or drifted full-text statistics of large tenants."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=10_000)

    def handle(self, *args: Any, **options: Any) -> None:
        from memory.term_stats import term_stats_refresh

        # One pass for the embeddings, one per registered step (the graph's), one for the statistics.
        steps = reconcile_steps()
        passes = len(steps) + 2
        with ProgressBar(self.stderr, "reconcile", unit="passes", total=passes) as bar:
            count = memory_reconcile(limit=options["limit"])
            bar.update(1, embeddings=count)
            bar.write(self.stdout, f"re-queued {count} memories")
            for done, (label, step) in enumerate(steps.items(), start=2):
                step_count = step(limit=options["limit"])
                bar.update(done, **{label.split()[0]: step_count})
                bar.write(self.stdout, f"re-queued {step_count} memories for {label}")
            rebuilt = term_stats_refresh()
            bar.update(passes, term_statistics=len(rebuilt))
            bar.write(self.stdout, f"rebuilt full-text statistics of {len(rebuilt)} tenants")

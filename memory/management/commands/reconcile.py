from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from config.progress import ProgressBar
from memory.services import memory_reconcile


class Command(BaseCommand):
    help = (
        "Re-queue memories whose derived data (embedding, graph extraction) is missing or failed, and"
        " rebuild missing or drifted full-text statistics of large tenants."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=10_000)

    def handle(self, *args: Any, **options: Any) -> None:
        from graph.services import graph_reconcile
        from memory.term_stats import term_stats_refresh

        # Three passes over every tenant; the bar counts passes and shows what each found.
        with ProgressBar(self.stderr, "reconcile", unit="passes", total=3) as bar:
            count = memory_reconcile(limit=options["limit"])
            bar.update(1, embeddings=count)
            bar.write(self.stdout, f"re-queued {count} memories")
            graph_count = graph_reconcile(limit=options["limit"])
            bar.update(2, graph=graph_count)
            bar.write(self.stdout, f"re-queued {graph_count} memories for graph extraction")
            rebuilt = term_stats_refresh()
            bar.update(3, term_statistics=len(rebuilt))
            bar.write(self.stdout, f"rebuilt full-text statistics of {len(rebuilt)} tenants")

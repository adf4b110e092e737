from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

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
        count = memory_reconcile(limit=options["limit"])
        self.stdout.write(f"re-queued {count} memories")
        for label, step in reconcile_steps().items():
            step_count = step(limit=options["limit"])
            self.stdout.write(f"re-queued {step_count} memories for {label}")
        from memory.term_stats import term_stats_refresh

        rebuilt = term_stats_refresh()
        self.stdout.write(f"rebuilt full-text statistics of {len(rebuilt)} tenants")

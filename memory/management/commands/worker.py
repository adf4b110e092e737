"""`easymemory worker`: a Celery worker for some kinds of background work (team deployments).

Team mode runs one worker per kind of work, each with its own concurrency, so a slow LLM never
holds up embeddings: `easymemory worker --queues embeddings --concurrency 2` and
`easymemory worker --queues llm --concurrency 4`. The command replaces itself with the Celery
process, so signals from a container runtime or a process manager reach Celery directly.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Run a background worker for the given kinds of work (embeddings, llm, imports; default all)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queues",
            default="",
            help=f"comma-separated kinds of work: {', '.join(settings.EASYMEMORY_QUEUES)} (default: all)",
        )
        parser.add_argument("--concurrency", type=int, default=2, help="tasks run at once (threads)")
        parser.add_argument("--name", default="", help="node name prefix, e.g. embeddings (shown as NAME@host)")

    def handle(self, *args: Any, **options: Any) -> None:
        from config.cli import worker_command

        kinds = [kind.strip() for kind in options["queues"].split(",") if kind.strip()]
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1")
        try:
            command = worker_command(options["concurrency"], kinds or None, name=options["name"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"worker for {', '.join(kinds) or 'all queues'}: {command[command.index('-Q') + 1]}")
        self.stdout.flush()
        os.execv(command[0], command)  # noqa: S606 - our own interpreter and arguments

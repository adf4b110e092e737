from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ingest.cli import add_job_arguments, read_source, run_job
from ingest.models import JobKind

SOURCES = {"slack": JobKind.SLACK, "mbox": JobKind.MBOX, "json": JobKind.JSON}


class Command(BaseCommand):
    help = "Import a Slack export zip, an mbox mailbox, or JSON (Mem0-style, or an EasyMemory export)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", choices=sorted(SOURCES))
        parser.add_argument("path")
        add_job_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        name, data = read_source(options["path"])
        params = {"filename": name, "size": len(data)}
        run_job(options, SOURCES[options["source"]], params, self.stdout, upload=(name, data), stderr=self.stderr)

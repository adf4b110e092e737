from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingest.cli import add_job_arguments, read_source, run_job
from ingest.models import JobKind
from ingest.sources.files import SUPPORTED, extension_of


class Command(BaseCommand):
    help = "Remember a document: .md, .txt, .pdf, .docx or .html."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        add_job_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if extension_of(options["path"]) not in SUPPORTED:
            raise CommandError(f"unsupported file type; use one of {', '.join(sorted(SUPPORTED))}")
        name, data = read_source(options["path"])
        params = {"filename": name, "size": len(data)}
        run_job(options, JobKind.FILE, params, self.stdout, upload=(name, data), stderr=self.stderr)

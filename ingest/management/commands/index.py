from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingest.cli import add_job_arguments, run_job
from ingest.models import JobKind


class Command(BaseCommand):
    help = "Index a markdown / Obsidian vault (incremental: unchanged files are skipped)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--path", required=True, help="the vault directory")
        parser.add_argument("--pattern", default="*.md", help='file name pattern (default "*.md")')
        parser.add_argument("--recursive", action="store_true", default=True, help="descend into folders (default)")
        parser.add_argument("--no-recursive", action="store_false", dest="recursive")
        add_job_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        root = Path(options["path"]).expanduser().resolve()
        if not root.is_dir():
            raise CommandError(f"{options['path']}: not a directory")
        # The local command line is the one trusted door: it may index any directory it can read.
        params = {"path": str(root), "pattern": options["pattern"], "recursive": options["recursive"], "trusted": True}
        run_job(options, JobKind.VAULT, params, self.stdout, stderr=self.stderr)
